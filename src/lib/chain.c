#include "chain.h"

#include <stdio.h>
#include <string.h>

#include "shapes.h"

/* The ops that move data without changing it, with their data in input 0. */
static bool moves_data(const Onnx__NodeProto *n)
{
	static const char *const ops[] = {"Transpose", "Identity", "Reshape", "Squeeze", "Unsqueeze", "Flatten"};
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
		if (bnf_node_is_onnx(n, ops[i]))
			return n->n_input >= 1 && n->input[0][0] && n->n_output >= 1;
	return false;
}

bool bnf_chain_back(const bnf_graph *gi, const char *name, bool (*is_layer)(const Onnx__NodeProto *n),
		    bnf_chain *ch)
{
	int back[BNF_CHAIN_MAX];
	int n = 0;

	ch->layer = -1;
	ch->n = 0;
	for (int hop = 0; hop <= BNF_CHAIN_MAX; hop++) {
		const bnf_value *v = bnf_graph_value(gi, name);
		const Onnx__NodeProto *node;
		if (!v || v->producer < 0 || v->producer_slot != 0)
			return false;
		node = gi->g->node[v->producer];
		if (is_layer(node)) {
			ch->layer = v->producer;
			for (int i = 0; i < n; i++) /* from the layer's reader on */
				ch->nodes[i] = back[n - 1 - i];
			ch->n = n;
			return true;
		}
		if (n == BNF_CHAIN_MAX || !moves_data(node))
			return false;
		back[n++] = v->producer;
		name = node->input[0];
	}
	return false;
}

/* The product of s's dims after axis into *inner; false when one is unknown. */
static bool inner_of(const bnf_shape *s, int axis, int64_t *inner)
{
	int64_t p = 1;
	for (int d = axis + 1; d < s->rank; d++) {
		if (s->dims[d].value < 0 || (s->dims[d].value > 0 && p > INT64_MAX / s->dims[d].value))
			return false;
		p *= s->dims[d].value;
	}
	*inner = p;
	return true;
}

/* The shape of name, or a status saying why it cannot be used. */
static bnf_axis_status shape_of(const bnf_graph *gi, const char *name, bnf_shape *s, char *why, size_t len)
{
	if (bnf_graph_shape(gi, name, s))
		return BNF_AXIS_OK;
	snprintf(why, len, s->conflict ? "the model declares a shape for '%s' that contradicts the one its nodes give"
				       : "the shape of '%s' is not known",
		 name);
	return s->conflict ? BNF_AXIS_CONFLICT : BNF_AXIS_UNKNOWN;
}

/* Through Transpose n: where axis lies in its output (in: its input's shape). */
static bnf_axis_status through_transpose(const Onnx__NodeProto *n, const bnf_shape *in, int *axis, char *why,
					 size_t len)
{
	const Onnx__AttributeProto *a = bnf_node_attr(n, "perm");
	size_t rank = a ? a->n_ints : in->rank >= 0 ? (size_t)in->rank : 0;
	int found = -1;

	if (!a && in->rank < 0) {
		snprintf(why, len, "Transpose '%s' has no perm and the rank of its input is not known", n->output[0]);
		return BNF_AXIS_UNKNOWN;
	}
	if (rank > BNF_SHAPE_MAX_RANK) {
		snprintf(why, len, "Transpose '%s' has a perm of %zu axes", n->output[0], rank);
		return BNF_AXIS_MOVED;
	}
	for (size_t i = 0; i < rank; i++) {
		int64_t src = a ? a->ints[i] : (int64_t)(rank - 1 - i);
		if (src == *axis) {
			if (found >= 0)
				break; /* a perm naming an axis twice is invalid: the runtime refuses it */
			found = (int)i;
		}
	}
	if (found < 0 || (in->rank >= 0 && rank != (size_t)in->rank)) {
		snprintf(why, len, "Transpose '%s' does not keep the channel axis as one axis", n->output[0]);
		return BNF_AXIS_MOVED;
	}
	*axis = found;
	return BNF_AXIS_OK;
}

/* Through a node that keeps every element's position (Reshape, Squeeze,
 * Unsqueeze, Flatten): the axis of out with the same size and inner product. */
static bnf_axis_status through_reshape(const Onnx__NodeProto *n, const bnf_shape *in, const bnf_shape *out,
				       int *axis, char *why, size_t len)
{
	int64_t c, inner, inner_out;

	if (*axis < 0 || *axis >= in->rank) {
		snprintf(why, len, "'%s' has no axis %d", n->input[0], *axis);
		return BNF_AXIS_MOVED;
	}
	c = in->dims[*axis].value;
	if (c < 0 || !inner_of(in, *axis, &inner)) {
		snprintf(why, len, "the dims of '%s' from the channel axis on are not all known", n->input[0]);
		return BNF_AXIS_UNKNOWN;
	}
	for (int j = 0; j < out->rank; j++) {
		if (out->dims[j].value != c || !inner_of(out, j, &inner_out) || inner_out != inner)
			continue;
		*axis = j;
		return BNF_AXIS_OK;
	}
	snprintf(why, len, "%s '%s' splits or merges the %lld channels", n->op_type, n->output[0], (long long)c);
	return BNF_AXIS_MOVED;
}

bnf_axis_status bnf_chain_axis(const bnf_graph *gi, const bnf_chain *ch, int axis, int *out, char *why, size_t len)
{
	const Onnx__NodeProto *layer = gi->g->node[ch->layer];
	bnf_shape in, next;
	bnf_axis_status st = BNF_AXIS_OK;
	bool known = bnf_graph_shape(gi, layer->output[0], &in);

	why[0] = '\0';
	if (axis < 0) { /* the last axis: the rank must be known */
		if (!known)
			return shape_of(gi, layer->output[0], &in, why, len);
		axis = in.rank - 1;
	}
	if (axis < 0 || (known && axis >= in.rank)) {
		snprintf(why, len, "'%s' has no axis %d", layer->output[0], axis);
		return BNF_AXIS_MOVED;
	}
	for (int i = 0; i < ch->n && st == BNF_AXIS_OK; i++) {
		const Onnx__NodeProto *n = gi->g->node[ch->nodes[i]];
		bool next_known = bnf_graph_shape(gi, n->output[0], &next);
		if (in.conflict || (next.conflict && !bnf_node_is_onnx(n, "Identity")))
			return shape_of(gi, in.conflict ? n->input[0] : n->output[0], &in, why, len);
		if (bnf_node_is_onnx(n, "Identity")) {
			if (!next_known)
				continue; /* the same value under another name */
		} else if (bnf_node_is_onnx(n, "Transpose")) {
			st = through_transpose(n, &in, &axis, why, len);
			if (st == BNF_AXIS_OK && next_known && axis >= next.rank) {
				snprintf(why, len, "'%s' has rank %d; the channels would be on its axis %d", n->output[0],
					 next.rank, axis);
				st = BNF_AXIS_MOVED;
			}
		} else if (!known || !next_known)
			st = shape_of(gi, known ? n->output[0] : n->input[0], &in, why, len);
		else
			st = through_reshape(n, &in, &next, &axis, why, len);
		in = next;
		known = next_known;
	}
	*out = axis;
	return st;
}
