/* The nodes that only move data between a layer and the node that folds
 * into it (Transpose, Identity, Reshape, Squeeze, Unsqueeze, Flatten), and
 * where the layer's output channels are once through them.  Reads the index
 * and its shapes (graph.h); the planner and verify each ask on their own. */
#ifndef BNF_CHAIN_H
#define BNF_CHAIN_H

#include <stdbool.h>
#include <stddef.h>

#include "graph.h"

#define BNF_CHAIN_MAX 16 /* nodes followed between a layer and its reader */

typedef struct bnf_chain {
	int layer;                 /* the layer's node index, -1 when none was reached */
	int nodes[BNF_CHAIN_MAX];  /* the data-moving nodes, from the layer's reader on */
	int n;
} bnf_chain;

/* Follow name back through data-moving nodes (default domain, data in
 * input 0, output 0 followed) to output 0 of a node is_layer accepts;
 * true with ch filled when one is reached.  Says nothing of how often the
 * values on the way are read: the caller checks that. */
bool bnf_chain_back(const bnf_graph *gi, const char *name, bool (*is_layer)(const Onnx__NodeProto *n),
		    bnf_chain *ch);

typedef enum {
	BNF_AXIS_OK,       /* the channels lie on one axis at the end, *axis */
	BNF_AXIS_UNKNOWN,  /* a shape the rule needs is not known */
	BNF_AXIS_CONFLICT, /* ... is declared against what the nodes give */
	BNF_AXIS_MOVED,    /* the channels are split, merged or dropped on the way */
} bnf_axis_status;

/* Where axis `axis` of the layer's output (-1: its last axis) lies at the
 * end of ch, with why in `why` when not BNF_AXIS_OK.
 *
 * Why this is exact: an element's index along an axis of size C is
 * floor(L / inner) mod C, L its row-major position and inner the product
 * of the dims after the axis.  Reshape, Squeeze, Unsqueeze and Flatten keep
 * every L, so an output axis of the same size C and the same inner product
 * gives every element the channel it had; Transpose moves axes and keeps
 * each element's index along every axis; Identity changes nothing. */
bnf_axis_status bnf_chain_axis(const bnf_graph *gi, const bnf_chain *ch, int axis, int *out, char *why,
			       size_t len);

#endif
