/* What one pass of the fold driver is asked to do: shared by the driver
 * (driver.h), which reads it, and the surgery (surgery.h), which follows
 * it while editing. */
#ifndef BNF_FOLD_OPTIONS_H
#define BNF_FOLD_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>

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

#endif
