/* What one run found, folded and skipped: filled by edit.c, read by
 * report.c and main.c.  Strings are owned copies. */
#ifndef BNF_RESULT_H
#define BNF_RESULT_H

#include <stdbool.h>
#include <stddef.h>

#include "fold.h"
#include "verify.h"

typedef struct bnf_fusion {
	/* bn and bn_output name the node that went (a BN, or a Mul/Add);
	 * layer_op_after differs from layer_op when a MatMul became a Gemm. */
	char *graph, *layer, *layer_op, *layer_op_after, *bn, *node_op, *bn_output, *weight, *bias;
	const char *pattern;
	bool is_bn;
	size_t channels;
	int dtype;
	double eps;
	bool bias_created;
	bool weight_copied;
	bool verified;        /* verify holds the numeric check of this fusion */
	bnf_verify verify;
} bnf_fusion;

typedef struct bnf_skip {
	char *graph, *bn, *bn_output, *layer; /* layer may be NULL */
	bnf_reason reason;
	char *message;
} bnf_skip;

typedef struct bnf_result {
	bnf_fusion *fusions;  /* BN fusions and Mul/Add fusions (is_bn false) */
	size_t n_fusions;
	bnf_skip *skips;
	size_t n_skips;
	size_t bn_found;
	size_t nodes_before, nodes_after;
	size_t inputs_removed; /* graph inputs dropped with --fold-overridable */
	size_t new_bytes;      /* bytes of the new weight tensors created */
	bool unscanned_nonfinite; /* a weight left unscanned (defer_scan) folded to NaN or Inf */
	struct bnf_verify_batch *pending; /* checks left to run (defer_verify), or NULL */
	long long ir_version;
	long long opset;       /* -1 when the default domain is not imported */
	char *producer_name, *producer_version;
} bnf_result;

void bnf_result_free(bnf_result *r);
/* Start the checks left in r->pending on a thread of their own (to run
 * while the model is written). */
void bnf_result_verify_start(bnf_result *r);
/* Wait for them and record their results in r->fusions: only then do the
 * verify counts below hold.  0, or -1 after bnf_error() (out of memory). */
int bnf_result_verify_finish(bnf_result *r);
/* How many of the fusions removed a BatchNormalization. */
size_t bnf_result_bn_folded(const bnf_result *r);
/* How many fusions were verified, and how many of those failed the check. */
size_t bnf_result_verified(const bnf_result *r);
size_t bnf_result_verify_failed(const bnf_result *r);

#endif
