/* The fold driver: every graph of a model, its subgraphs and function
 * bodies, planned, checked and edited until nothing more folds. */
#ifndef BNF_DRIVER_H
#define BNF_DRIVER_H

#include <stdbool.h>

#include "common.h"
#include "onnx.pb-c.h"
#include "fold_options.h"
#include "result.h"


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
