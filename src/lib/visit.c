#include "visit.h"

Onnx__GraphProto *bnf_node_subgraph(const Onnx__NodeProto *node, size_t k, Onnx__AttributeProto **attr)
{
	for (size_t a = 0; a < node->n_attribute; a++) {
		Onnx__AttributeProto *at = node->attribute[a];
		size_t count = at->n_graphs + (at->g ? 1 : 0);
		if (k < count) {
			if (attr)
				*attr = at;
			return at->g ? (k == 0 ? at->g : at->graphs[k - 1]) : at->graphs[k];
		}
		k -= count;
	}
	return NULL;
}

static int visit(Onnx__GraphProto *g, Onnx__NodeProto *owner, Onnx__AttributeProto *attr, int depth,
		 const bnf_visitor *v)
{
	if (v->graph && v->graph(g, owner, attr, depth, v->ctx) < 0)
		return -1;
	for (size_t n = 0; n < g->n_node; n++) {
		Onnx__NodeProto *node = g->node[n];
		Onnx__AttributeProto *at;
		Onnx__GraphProto *sg;
		if (v->node && v->node(g, node, n, depth, v->ctx) < 0)
			return -1;
		for (size_t k = 0; (sg = bnf_node_subgraph(node, k, &at)) != NULL; k++)
			if (visit(sg, node, at, depth + 1, v) < 0)
				return -1;
	}
	return v->graph_end ? v->graph_end(g, depth, v->ctx) : 0;
}

int bnf_visit_graph(Onnx__GraphProto *g, const bnf_visitor *v)
{
	return visit(g, NULL, NULL, 0, v);
}
