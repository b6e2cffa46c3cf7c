/* How many nodes of each op type a model holds, before and after folding:
 * what `bnfold --stats` prints as a table. */
#ifndef BNF_OP_COUNTS_H
#define BNF_OP_COUNTS_H

#include <stdbool.h>
#include <stddef.h>

#include "onnx.pb-c.h"

typedef struct bnf_op_count {
	char *domain;   /* "" for the default domain ("ai.onnx" is the same one) */
	char *op_type;
	size_t before, after;
} bnf_op_count;

/* Sorted by op type, then domain: one row per (domain, op type). */
typedef struct bnf_op_counts {
	bnf_op_count *v;
	size_t n, cap;
} bnf_op_counts;

/* Count the nodes of m (its graph, every subgraph and every function body,
 * as nodes_before and nodes_after count them) by op type into c, as the
 * counts before folding (after false) or after it (after true); rows are
 * added for op types seen only now.  *total gets the number of nodes.  0,
 * or -1 when memory runs out (c is left as it was). */
int bnf_op_counts_add(bnf_op_counts *c, const Onnx__ModelProto *m, bool after, size_t *total);
void bnf_op_counts_free(bnf_op_counts *c);

#endif
