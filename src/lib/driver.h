/* The fold driver: every graph of a model, its subgraphs and function
 * bodies, planned, checked and edited until nothing more folds. */
#ifndef BNF_DRIVER_H
#define BNF_DRIVER_H

#include <stdbool.h>

#include "common.h"
#include "onnx.pb-c.h"
#include "result.h"

struct bnf_payloads;

typedef struct bnf_fold_options {
	bool fold_overridable; /* fold initializers that are also graph inputs (IR >= 4) */
	/* Payloads not in memory (payload.h), or NULL when the whole model is.
	 * With it, a folded weight read from the input file becomes a computed
	 * payload instead of being materialised. */
	struct bnf_payloads *payloads;
	/* Zero is the default: every fusion is checked numerically before it
	 * is applied (verify.h), against the default tolerance of its dtype. */
	bool no_verify;        /* skip the check (--no-verify) */
	bool tolerance_set;    /* check against `tolerance` (--tolerance) instead */
	double tolerance;
	/* How the checks run (bnf_verify_config): the same numbers either way. */
	bool no_simd;          /* the baseline code, even on a CPU with AVX2 */
	int threads;           /* 1: sum each weight on one thread; 0: two when there are two CPUs */
	/* Bytes that new weight tensors (copies of shared weights, weights made
	 * by ConstantOfShape) may take in all; a fold that would need more is
	 * skipped as weight_too_large.  0 = BNF_MAX_NEW_BYTES. */
	size_t max_new_bytes;
	/* Do not scan weights that are read in place (bnf_tview_in_place)
	 * for NaN, Inf and overflow before folding;
	 * scaling them flags any such value instead (res->unscanned_nonfinite,
	 * or bnf_output.nonfinite when written), and the caller then folds
	 * again without this: the same result, one pass over the weights less
	 * when nothing is wrong. */
	bool defer_scan;
	/* Leave the checks that can run later (bnf_verify_plan_later) in
	 * res->pending, unrun: the caller runs them with
	 * bnf_result_verify_start / _finish while it writes the model, and
	 * must not read the verify results before. */
	bool defer_verify;
} bnf_fold_options;

/* Find every BatchNormalization in the model (subgraphs included), fold
 * those that fold exactly, and record each fusion and skip in res.  Unless
 * opt->no_verify, each fusion is checked numerically (bnf_verify_plan)
 * before it is applied, or later (opt->defer_verify), and the outcome is
 * recorded with it; a fusion that fails
 * the check is applied all the same, so the caller must not write the
 * model when bnf_result_verify_failed() is not 0.  The model is edited in
 * place: folded BN nodes removed, weights and biases rewritten (or copied
 * when shared), parameters that no longer have a reader removed.  Returns
 * 0, or -1 after recording in fail (may be NULL) one line naming `path`
 * (and the node): BNFOLD_E_NOT_ONNX for a malformed model (no graph, a
 * cycle, a name produced twice, inconsistent tensor data, or more folded
 * tensors than one model may have), BNFOLD_E_NOMEM when memory runs out;
 * then the model may be half-edited and must not be written.  A fusion
 * that fails its check is not an error (see above). */
int bnf_fold_model(Onnx__ModelProto *m, const char *path, const bnf_fold_options *opt,
		   bnf_result *res, bnf_err *fail);

#endif
