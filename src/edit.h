/* Graph surgery: apply the fold plans to a model in memory. */
#ifndef BNF_EDIT_H
#define BNF_EDIT_H

#include <stdbool.h>

#include "onnx.pb-c.h"
#include "result.h"

typedef struct bnf_fold_options {
	bool fold_overridable; /* fold initializers that are also graph inputs (IR >= 4) */
	/* Bytes that new weight tensors (copies of shared weights, weights made
	 * by ConstantOfShape) may take in all; a fold that would need more is
	 * skipped as weight_too_large.  0 = BNF_MAX_NEW_BYTES. */
	size_t max_new_bytes;
} bnf_fold_options;

/* Find every BatchNormalization in the model (subgraphs included), fold
 * those that fold exactly, and record each fusion and skip in res.  The
 * model is edited in place: folded BN nodes removed, weights and biases
 * rewritten (or copied when shared), parameters that no longer have a
 * reader removed.  Returns 0, or -1 after bnf_error() on malformed input
 * (naming `path` and the node) or lack of memory; then the model may be
 * half-edited and must not be written. */
int bnf_fold_model(Onnx__ModelProto *m, const char *path, const bnf_fold_options *opt,
		   bnf_result *res);

#endif
