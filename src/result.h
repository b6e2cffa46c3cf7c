/* What one run found, folded and skipped: filled by edit.c, read by
 * report.c and main.c.  Strings are owned copies. */
#ifndef BNF_RESULT_H
#define BNF_RESULT_H

#include <stdbool.h>
#include <stddef.h>

#include "fold.h"

typedef struct bnf_fusion {
	char *graph, *layer, *layer_op, *bn, *bn_output, *weight, *bias;
	const char *pattern;
	size_t channels;
	int dtype;
	double eps;
	bool bias_created;
	bool weight_copied;
} bnf_fusion;

typedef struct bnf_skip {
	char *graph, *bn, *bn_output, *layer; /* layer may be NULL */
	bnf_reason reason;
	char *message;
} bnf_skip;

typedef struct bnf_result {
	bnf_fusion *fusions;
	size_t n_fusions;
	bnf_skip *skips;
	size_t n_skips;
	size_t bn_found;
	size_t nodes_before, nodes_after;
	size_t inputs_removed; /* graph inputs dropped with --fold-overridable */
	size_t new_bytes;      /* bytes of the new weight tensors created */
	long long ir_version;
	long long opset;       /* -1 when the default domain is not imported */
	char *producer_name, *producer_version;
} bnf_result;

void bnf_result_free(bnf_result *r);

#endif
