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

/* Resolve Reshape(constant, constant shape): the data as it is, with new
 * dims (0 copies the input dim unless allowzero, -1 is inferred). Never
 * edited in place: the fold writes a new tensor. */
static bnf_const_status reshape(const bnf_graph *gi, const Onnx__NodeProto *node, bnf_const *c)
{
	bnf_const shape;
	int64_t dims[BNF_MAX_RANK];
	bool allowzero = bnf_node_attr_int(node, "allowzero", 0) != 0;
	size_t known = 1;
	int infer = -1;
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
	for (size_t i = 0; i < shape.view.numel; i++) {
		if (dims[i] == 0 && !allowzero) {
			if (i >= c->view.rank)
				goto bad;
			dims[i] = c->view.dims[i];
		}
		if (dims[i] == -1) {
			if (infer >= 0)
				goto bad;
			infer = (int)i;
			continue;
		}
		if (dims[i] < 0 || !bnf_mul_size(known, (size_t)dims[i], &known))
			goto bad;
	}
	if (infer >= 0) {
		if (known == 0 || c->view.numel % known != 0)
			goto bad;
		dims[infer] = (int64_t)(c->view.numel / known);
		known = c->view.numel;
	}
	if (known != c->view.numel)
		goto bad;
	c->view.rank = shape.view.numel;
	memcpy(c->view.dims, dims, c->view.rank * sizeof(dims[0]));
	c->exclusive = false;
	return BNF_CONST_OK;
bad:
	snprintf(c->msg, sizeof(c->msg), "Reshape of %zu elements to the given shape is invalid", c->view.numel);
	return BNF_CONST_INVALID;
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

static int type_rank(const Onnx__ValueInfoProto *vi)
{
	const Onnx__TypeProto *tp = vi->type;
	if (!tp || tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !tp->tensor_type ||
	    !tp->tensor_type->shape)
		return -1;
	return (int)tp->tensor_type->shape->n_dim;
}

/* Ops whose output 0 has the rank of their input 0 (unary elementwise). */
static bool keeps_rank(const Onnx__NodeProto *n)
{
	static const char *const ops[] = {
		"Relu", "LeakyRelu", "PRelu", "Sigmoid", "HardSigmoid", "Tanh", "Elu", "Selu", "Celu", "Softplus",
		"Softsign", "HardSwish", "Mish", "Gelu", "Erf", "Abs", "Neg", "Exp", "Log", "Sqrt", "Reciprocal",
		"Floor", "Ceil", "Round", "Sign", "Clip", "Cast", "Identity", "Dropout", "Sin", "Cos",
	};
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
		if (bnf_node_is_onnx(n, ops[i]))
			return true;
	return false;
}

static int rank_of(const bnf_graph *gi, const char *name, int depth)
{
	for (const bnf_graph *cur = gi; cur; cur = cur->parent) {
		const Onnx__GraphProto *g = cur->g;
		const bnf_value *v = bnf_graph_value(cur, name);
		if (v && v->init >= 0)
			return (int)g->initializer[v->init]->n_dims;
		for (size_t i = 0; i < g->n_input; i++)
			if (g->input[i]->name && strcmp(g->input[i]->name, name) == 0)
				return type_rank(g->input[i]);
		for (size_t i = 0; i < g->n_value_info; i++)
			if (g->value_info[i]->name && strcmp(g->value_info[i]->name, name) == 0)
				return type_rank(g->value_info[i]);
		for (size_t i = 0; i < g->n_output; i++)
			if (g->output[i]->name && strcmp(g->output[i]->name, name) == 0)
				return type_rank(g->output[i]);
		if (v && v->producer >= 0) {
			/* Not recorded: follow a rank-preserving producer back. */
			const Onnx__NodeProto *n = g->node[v->producer];
			if (v->producer_slot == 0 && depth < 64 && n->n_input >= 1 && n->input[0][0] && keeps_rank(n))
				return rank_of(cur, n->input[0], depth + 1);
			return -1;
		}
		if (v && v->is_input)
			return -1;
	}
	return -1;
}

int bnf_graph_rank(const bnf_graph *gi, const char *name)
{
	return rank_of(gi, name, 0);
}

void bnf_const_release(bnf_const *c)
{
	free(c->owned);
	c->owned = NULL;
	c->view.doubles = NULL;
}

#define EVAL_MAX_ELEMS (1u << 20) /* parameters, not weights */

static bnf_const_status eval(const bnf_graph *gi, const char *name, bnf_const *c, int depth);

/* The node of this graph or an enclosing one producing name, or NULL. */
static const Onnx__NodeProto *producer_of(const bnf_graph *gi, const char *name)
{
	for (const bnf_graph *cur = gi; cur; cur = cur->parent) {
		const bnf_value *v = bnf_graph_value(cur, name);
		if (v && (v->producer >= 0 || v->init >= 0 || v->is_input))
			return v->producer >= 0 ? cur->g->node[v->producer] : NULL;
	}
	return NULL;
}

static bool evaluable(const Onnx__NodeProto *n)
{
	static const char *const ops[] = {"Add", "Sub", "Mul", "Div", "Sqrt", "Neg", "Abs", "Reciprocal"};
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
		if (bnf_node_is_onnx(n, ops[i]))
			return true;
	return false;
}

/* One result of op (the index in eval_node's tables) on u (and v). */
static double apply_op(int op, double u, double v)
{
	switch (op) {
	case 0: return u + v;
	case 1: return u - v;
	case 2: return u * v;
	case 3: return u / v;
	case 4: return sqrt(u);
	case 5: return -u;
	case 6: return fabs(u);
	default: return 1.0 / u;
	}
}

/* c = op over the arity values in (equal shapes, or one of them a single
 * value), each result rounded to the type.  out names the result for
 * messages; c->msg already says why it would not be constant. */
static bnf_const_status compute(const bnf_const *in, int arity, int op, const char *out, bnf_const *c)
{
	const bnf_tview *a = &in[0].view, *b = arity == 2 ? &in[1].view : a;
	const bnf_tview *shape = a->numel >= b->numel ? a : b;
	double *x[2] = {0};
	bnf_const_status st = BNF_CONST_UNSUPPORTED;

	if (arity == 2 && a->numel != b->numel && a->numel != 1 && b->numel != 1) {
		snprintf(c->msg, sizeof(c->msg), "'%s' broadcasts in a way bnfold does not evaluate", out);
		return BNF_CONST_UNSUPPORTED;
	}
	if (arity == 2 && a->numel == b->numel && a->rank != b->rank)
		return BNF_CONST_UNSUPPORTED;
	for (int i = 0; i < arity; i++)
		if (!(x[i] = malloc((in[i].view.numel ? in[i].view.numel : 1) * sizeof(double))))
			goto out;
	for (int i = 0; i < arity; i++)
		bnf_tview_read(&in[i].view, x[i]);
	memset(&c->view, 0, sizeof(c->view));
	c->view = *shape;
	c->view.tensor = NULL;
	c->view.raw = NULL;
	c->view.src = NULL;
	c->view.lazy = NULL;
	c->view.uniform = false;
	c->view.floats = NULL;
	if (!(c->owned = malloc((shape->numel ? shape->numel : 1) * sizeof(double))))
		goto out;
	for (size_t k = 0; k < shape->numel; k++) {
		double u = x[0][a->numel == 1 ? 0 : k], v = arity == 2 ? x[1][b->numel == 1 ? 0 : k] : 0;
		c->owned[k] = bnf_round_to(shape->dtype, apply_op(op, u, v));
	}
	c->view.doubles = c->owned;
	c->tensor = NULL;
	c->exclusive = false;
	st = BNF_CONST_OK;
out:
	free(x[0]);
	free(x[1]);
	return st;
}

static bnf_const_status eval_node(const bnf_graph *gi, const Onnx__NodeProto *n, bnf_const *c, int depth)
{
	static const char *const binary[] = {"Add", "Sub", "Mul", "Div"};
	static const char *const unary[] = {"Sqrt", "Neg", "Abs", "Reciprocal"};
	bnf_const in[2];
	int op = -1, arity = 0;
	bnf_const_status st = BNF_CONST_NOT_CONSTANT;

	for (int i = 0; i < 4; i++) {
		if (bnf_node_is_onnx(n, binary[i]))
			op = i, arity = 2;
		if (bnf_node_is_onnx(n, unary[i]))
			op = 4 + i, arity = 1;
	}
	memset(in, 0, sizeof(in));
	snprintf(c->msg, sizeof(c->msg), "'%s' is computed by a %s node at run time", n->n_output ? n->output[0] : "?",
		 n->op_type ? n->op_type : "?");
	if (op < 0 || (int)n->n_input != arity || gi->opset < 7)
		return BNF_CONST_NOT_CONSTANT;
	for (int i = 0; i < arity; i++) {
		st = eval(gi, n->input[i], &in[i], depth + 1);
		if (st != BNF_CONST_OK || !bnf_dtype_is_float(in[i].view.dtype) || in[i].view.numel > EVAL_MAX_ELEMS ||
		    in[i].view.dtype != in[0].view.dtype) {
			if (st == BNF_CONST_OK)
				st = BNF_CONST_NOT_CONSTANT;
			goto out;
		}
	}
	st = compute(in, arity, op, n->output[0], c);
out:
	bnf_const_release(&in[0]);
	bnf_const_release(&in[1]);
	return st;
}

static bnf_const_status eval(const bnf_graph *gi, const char *name, bnf_const *c, int depth)
{
	bnf_const_status st = bnf_graph_const(gi, name, c);
	const Onnx__NodeProto *n;

	if (st != BNF_CONST_NOT_CONSTANT || depth > 16 || !(n = producer_of(gi, name)) || !evaluable(n))
		return st;
	return eval_node(gi, n, c, depth);
}

bnf_const_status bnf_graph_const_eval(const bnf_graph *gi, const char *name, bnf_const *c)
{
	return eval(gi, name, c, 0);
}
