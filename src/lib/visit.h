/* One walk over a graph and every graph nested in its nodes' attributes
 * (If branches, Loop and Scan bodies, ...), for every use that needs it:
 * counting, naming, indexing, reaching every tensor. */
#ifndef BNF_VISIT_H
#define BNF_VISIT_H

#include <stddef.h>

#include "onnx.pb-c.h"

/* What to call on the way.  Any callback may be NULL.  A callback returns
 * 0 to go on, or -1 to stop the walk (bnf_visit_graph then returns -1). */
typedef struct bnf_visitor {
	/* Each graph, before its nodes: the one the walk starts from (owner
	 * and attr NULL, depth 0) and every nested one, with the node and the
	 * attribute that hold it. */
	int (*graph)(Onnx__GraphProto *g, Onnx__NodeProto *owner, Onnx__AttributeProto *attr, int depth, void *ctx);
	/* Each node of a graph, in listed order, before the graphs it holds. */
	int (*node)(Onnx__GraphProto *g, Onnx__NodeProto *node, size_t index, int depth, void *ctx);
	/* Each graph again, after its nodes and their graphs. */
	int (*graph_end)(Onnx__GraphProto *g, int depth, void *ctx);
	void *ctx;
} bnf_visitor;

/* Walk g depth first, in file order.  0, or -1 when a callback stopped it. */
int bnf_visit_graph(Onnx__GraphProto *g, const bnf_visitor *v);

/* The k-th graph held by node's attributes (an attribute's g first, then
 * its graphs, attribute by attribute), or NULL past the last; *attr (may be
 * NULL) is set to the attribute that holds it. */
Onnx__GraphProto *bnf_node_subgraph(const Onnx__NodeProto *node, size_t k, Onnx__AttributeProto **attr);

#endif
