#include "constants.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "payload.h"

#define MAX_CHAIN 64 /* Identity hops followed before giving up (cycles) */

static bnf_const_status resolve_const(const bnf_graph *gi, const char *name, bnf_const *c,
				      bool in_shape);

/* Resolve a ConstantOfShape node: a shape from a constant int tensor and a
 * one-element value (float32 0 by default). */
static bnf_const_status const_of_shape(const bnf_graph *gi, const Onnx__NodeProto *node,
				       bnf_const *c)
{
	bnf_const shape;
	const Onnx__AttributeProto *val = bnf_node_attr(node, "value");
	int64_t dims[BNF_MAX_RANK];
	size_t numel = 1;
	bnf_const_status st;

	if (node->n_input < 1)
		return BNF_CONST_NOT_CONSTANT;
	/* in_shape: a shape made by another ConstantOfShape is never an int
	 * tensor bnfold reads, and following it could loop (a node that reads
	 * its own output). */
	st = resolve_const(gi, node->input[0], &shape, true);
	if (st != BNF_CONST_OK) {
		snprintf(c->msg, sizeof(c->msg), "shape of ConstantOfShape: %.200s", shape.msg);
		return st;
	}
	if (shape.view.rank != 1 || shape.view.numel > BNF_MAX_RANK ||
	    bnf_tview_read_i64(&shape.view, dims) < 0) {
		snprintf(c->msg, sizeof(c->msg), "ConstantOfShape shape is not a short 1-D integer tensor");
		return BNF_CONST_UNSUPPORTED;
	}
	memset(&c->view, 0, sizeof(c->view));
	c->view.rank = shape.view.numel;
	for (size_t i = 0; i < c->view.rank; i++) {
		if (dims[i] < 0 || !bnf_mul_size(numel, (size_t)dims[i], &numel)) {
			snprintf(c->msg, sizeof(c->msg), "ConstantOfShape shape is negative or overflows");
			return BNF_CONST_MALFORMED;
		}
		c->view.dims[i] = dims[i];
	}
	c->view.numel = numel;
	c->view.uniform = true;
	c->view.dtype = BNF_DT_FLOAT;
	c->view.fill = 0.0;
	if (val && val->t) {
		bnf_tview vv;
		double x;
		if (bnf_tview_from_tensor(val->t, &vv, c->msg, sizeof(c->msg)) != BNF_TENSOR_OK ||
		    vv.numel != 1 || !bnf_dtype_is_float(vv.dtype)) {
			snprintf(c->msg, sizeof(c->msg), "ConstantOfShape value is not one float");
			return BNF_CONST_UNSUPPORTED;
		}
		bnf_tview_read(&vv, &x);
		c->view.dtype = vv.dtype;
		c->view.fill = x;
	}
	return BNF_CONST_OK;
}

int bnf_reshape_dims(const int64_t *in_dims, size_t in_rank, size_t numel, int64_t *dims, size_t rank,
		     bool allowzero)
{
	size_t known = 1;
	int infer = -1;

	for (size_t i = 0; i < rank; i++) {
		if (dims[i] == 0 && !allowzero) {
			if (i >= in_rank)
				return -1;
			dims[i] = in_dims[i];
		}
		if (dims[i] == -1) {
			if (infer >= 0)
				return -1;
			infer = (int)i;
			continue;
		}
		if (dims[i] < 0 || (uint64_t)dims[i] > SIZE_MAX || !bnf_mul_size(known, (size_t)dims[i], &known))
			return -1;
	}
	if (infer >= 0) {
		if (known == 0 || numel % known != 0)
			return -1;
		dims[infer] = (int64_t)(numel / known);
		known = numel;
	}
	return known == numel ? 0 : -1;
}

/* Resolve Reshape(constant, constant shape): the data as it is, with new
 * dims (0 copies the input dim unless allowzero, -1 is inferred). Never
 * edited in place: the fold writes a new tensor. */
static bnf_const_status reshape(const bnf_graph *gi, const Onnx__NodeProto *node, bnf_const *c)
{
	bnf_const shape;
	int64_t dims[BNF_MAX_RANK];
	bool allowzero = bnf_node_attr_int(node, "allowzero", 0) != 0;
	bnf_const_status st;

	st = bnf_graph_const(gi, node->input[1], &shape);
	if (st != BNF_CONST_OK) {
		snprintf(c->msg, sizeof(c->msg), "shape of Reshape: %.200s", shape.msg);
		return st;
	}
	if (shape.view.rank != 1 || shape.view.numel > BNF_MAX_RANK || bnf_tview_read_i64(&shape.view, dims) < 0) {
		snprintf(c->msg, sizeof(c->msg), "Reshape shape is not a short 1-D integer tensor");
		return BNF_CONST_UNSUPPORTED;
	}
	st = bnf_graph_const(gi, node->input[0], c);
	if (st != BNF_CONST_OK)
		return st;
	if (bnf_reshape_dims(c->view.dims, c->view.rank, c->view.numel, dims, shape.view.numel, allowzero) < 0) {
		snprintf(c->msg, sizeof(c->msg), "Reshape of %zu elements to the given shape is invalid", c->view.numel);
		return BNF_CONST_INVALID;
	}
	c->view.rank = shape.view.numel;
	memcpy(c->view.dims, dims, c->view.rank * sizeof(dims[0]));
	c->exclusive = false;
	return BNF_CONST_OK;
}

static bnf_const_status from_tensor_status(bnf_tensor_status ts)
{
	switch (ts) {
	case BNF_TENSOR_OK: return BNF_CONST_OK;
	case BNF_TENSOR_MALFORMED: return BNF_CONST_MALFORMED;
	case BNF_TENSOR_BAD_DTYPE: return BNF_CONST_BAD_DTYPE;
	default: return BNF_CONST_UNSUPPORTED;
	}
}

/* Resolve a Constant node's value into c. */
static bnf_const_status constant_node(const Onnx__NodeProto *node, const bnf_payloads *pl, bnf_const *c)
{
	Onnx__AttributeProto *a;
	bnf_tensor_status ts;

	if ((a = bnf_node_attr(node, "value")) && a->t) {
		ts = bnf_tview_from_tensor(a->t, &c->view, c->msg, sizeof(c->msg));
		bnf_tview_bind(&c->view, pl);
		if (ts != BNF_TENSOR_OK)
			return from_tensor_status(ts);
		c->tensor = a->t;
		return BNF_CONST_OK;
	}
	memset(&c->view, 0, sizeof(c->view));
	c->view.dtype = BNF_DT_FLOAT;
	if ((a = bnf_node_attr(node, "value_float")) && a->has_f) {
		c->view.numel = 1;
		c->view.uniform = true;
		c->view.fill = a->f;
		return BNF_CONST_OK;
	}
	if ((a = bnf_node_attr(node, "value_floats"))) {
		c->view.rank = 1;
		c->view.dims[0] = (int64_t)a->n_floats;
		c->view.numel = a->n_floats;
		c->view.floats = a->floats;
		return BNF_CONST_OK;
	}
	snprintf(c->msg, sizeof(c->msg), "Constant node holds no float tensor bnfold reads");
	return BNF_CONST_UNSUPPORTED;
}

/* c from the initializer t that v names in cur, unless the model's
 * training assigns it or a caller may override it.  exclusive: nothing
 * else reads the names on the way to it. */
static bnf_const_status from_initializer(const bnf_graph *cur, const bnf_value *v, const char *name,
					 bool exclusive, bnf_const *c)
{
	Onnx__TensorProto *t = cur->g->initializer[v->init];
	bnf_tensor_status ts;

	if (v->trained) {
		snprintf(c->msg, sizeof(c->msg),
			 "'%s' is an initializer that the model's training_info assigns, so it is not a constant", name);
		return BNF_CONST_NOT_CONSTANT;
	}
	if (v->is_input && !bnf_graph_inputs_are_defaults(cur)) {
		snprintf(c->msg, sizeof(c->msg),
			 "'%s' is an initializer also listed as a graph input, so a caller may override it", name);
		return BNF_CONST_OVERRIDABLE;
	}
	ts = bnf_tview_from_tensor(t, &c->view, c->msg, sizeof(c->msg));
	bnf_tview_bind(&c->view, cur->payloads);
	if (ts != BNF_TENSOR_OK)
		return from_tensor_status(ts);
	c->tensor = t;
	c->exclusive = exclusive;
	c->is_initializer = true;
	c->is_graph_input = v->is_input;
	return BNF_CONST_OK;
}

/* True (with the reason in c->msg) when an attribute of node refers to
 * an attribute of the enclosing function: inside a function body, set per
 * call. */
static bool takes_function_attr(const Onnx__NodeProto *node, const char *name, bnf_const *c)
{
	for (size_t a = 0; a < node->n_attribute; a++) {
		const char *ref = node->attribute[a]->ref_attr_name;
		if (ref && ref[0]) {
			snprintf(c->msg, sizeof(c->msg), "'%s' comes from a %s node whose %s is the function's attribute '%s'",
				 name, node->op_type ? node->op_type : "?",
				 node->attribute[a]->name ? node->attribute[a]->name : "attribute", ref);
			return true;
		}
	}
	return false;
}

/* c from node of cur producing name, other than an Identity: a Constant,
 * a ConstantOfShape (not when resolving a shape, in_shape) or a Reshape of
 * constants; anything else is computed at run time. */
static bnf_const_status from_producer(const bnf_graph *cur, const Onnx__NodeProto *node, const char *name,
				      bool exclusive, bool in_shape, bnf_const *c)
{
	if (bnf_node_is_onnx(node, "Constant")) {
		bnf_const_status st = constant_node(node, cur->payloads, c);
		if (st == BNF_CONST_OK && c->tensor)
			c->exclusive = exclusive;
		return st;
	}
	if (bnf_node_is_onnx(node, "ConstantOfShape")) {
		if (in_shape) {
			snprintf(c->msg, sizeof(c->msg), "'%s' is made by another ConstantOfShape", name);
			return BNF_CONST_UNSUPPORTED;
		}
		return const_of_shape(cur, node, c);
	}
	if (bnf_node_is_onnx(node, "Reshape") && node->n_input == 2)
		return reshape(cur, node, c);
	snprintf(c->msg, sizeof(c->msg), "'%s' is computed by a %s node at run time", name,
		 node->op_type ? node->op_type : "?");
	return BNF_CONST_NOT_CONSTANT;
}

/* Follow name through Identity nodes and out to enclosing graphs to what
 * defines it.  in_shape: resolving the shape of a ConstantOfShape. */
static bnf_const_status resolve_const(const bnf_graph *gi, const char *name, bnf_const *c,
				      bool in_shape)
{
	bool exclusive = true;
	const bnf_graph *cur = gi;

	memset(c, 0, sizeof(*c));
	for (int hop = 0; hop < MAX_CHAIN; hop++) {
		const bnf_value *v = bnf_graph_value(cur, name);
		const Onnx__NodeProto *node;

		if (!v || (v->init < 0 && v->producer < 0 && !v->is_input)) {
			if (cur->parent) { /* outer-scope name */
				cur = cur->parent;
				exclusive = false;
				continue;
			}
			snprintf(c->msg, sizeof(c->msg), "'%s' is not defined in the graph", name);
			return BNF_CONST_NOT_CONSTANT;
		}
		if (v->n_consumers != 1 || v->is_output)
			exclusive = false;
		if (v->init >= 0)
			return from_initializer(cur, v, name, exclusive, c);
		if (v->producer < 0) {
			snprintf(c->msg, sizeof(c->msg), cur->is_function ? "'%s' is an input of the function, set per call"
									  : "'%s' is a graph input, set at run time", name);
			return BNF_CONST_NOT_CONSTANT;
		}
		node = cur->g->node[v->producer];
		if (takes_function_attr(node, name, c))
			return BNF_CONST_NOT_CONSTANT;
		if (bnf_node_is_onnx(node, "Identity") && node->n_input == 1) {
			name = node->input[0];
			continue;
		}
		return from_producer(cur, node, name, exclusive, in_shape, c);
	}
	snprintf(c->msg, sizeof(c->msg), "'%s' is reached through more than %d Identity nodes", name, MAX_CHAIN);
	return BNF_CONST_NOT_CONSTANT;
}

bnf_const_status bnf_graph_const(const bnf_graph *gi, const char *name, bnf_const *c)
{
	return resolve_const(gi, name, c, false);
}

void bnf_const_release(bnf_const *c)
{
	free(c->owned);
	c->owned = NULL;
	c->view.doubles = NULL;
}
