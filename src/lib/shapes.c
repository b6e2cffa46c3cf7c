#include "shapes.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "common.h"
#include "constants.h"
#include "shapes_internal.h"

/* How a rule's first output gets its element type when the rule leaves it 0. */
enum {
	ELEM_IN0 = 0,   /* that of input 0 */
	ELEM_IN1 = -1,  /* that of input 1 (Where, CastLike) */
	ELEM_RULE = -2, /* the rule sets it, or it stays unknown */
};

typedef struct shape_op {
	const char *op_type;
	bnf_shape_rule rule;
	int elem;       /* an ELEM_* above, or a fixed TensorProto.DataType */
} shape_op;

/* The ops whose shapes are inferred; every other op's outputs are unknown
 * unless the model declares them. */
static const shape_op SHAPE_OPS[] = {
	/* elementwise, one input: the shape of input 0 */
	{"Relu", bnf_rule_same, ELEM_IN0}, {"Sigmoid", bnf_rule_same, ELEM_IN0},
	{"Tanh", bnf_rule_same, ELEM_IN0}, {"LeakyRelu", bnf_rule_same, ELEM_IN0},
	{"Elu", bnf_rule_same, ELEM_IN0}, {"Selu", bnf_rule_same, ELEM_IN0},
	{"HardSigmoid", bnf_rule_same, ELEM_IN0}, {"HardSwish", bnf_rule_same, ELEM_IN0},
	{"Softplus", bnf_rule_same, ELEM_IN0}, {"Softsign", bnf_rule_same, ELEM_IN0},
	{"Gelu", bnf_rule_same, ELEM_IN0}, {"Erf", bnf_rule_same, ELEM_IN0},
	{"Abs", bnf_rule_same, ELEM_IN0}, {"Neg", bnf_rule_same, ELEM_IN0},
	{"Exp", bnf_rule_same, ELEM_IN0}, {"Log", bnf_rule_same, ELEM_IN0},
	{"Sqrt", bnf_rule_same, ELEM_IN0}, {"Reciprocal", bnf_rule_same, ELEM_IN0},
	{"Floor", bnf_rule_same, ELEM_IN0}, {"Ceil", bnf_rule_same, ELEM_IN0},
	{"Round", bnf_rule_same, ELEM_IN0}, {"Sign", bnf_rule_same, ELEM_IN0},
	{"Sin", bnf_rule_same, ELEM_IN0}, {"Cos", bnf_rule_same, ELEM_IN0},
	{"Tan", bnf_rule_same, ELEM_IN0}, {"Asin", bnf_rule_same, ELEM_IN0},
	{"Acos", bnf_rule_same, ELEM_IN0}, {"Atan", bnf_rule_same, ELEM_IN0},
	{"Sinh", bnf_rule_same, ELEM_IN0}, {"Cosh", bnf_rule_same, ELEM_IN0},
	{"Asinh", bnf_rule_same, ELEM_IN0}, {"Acosh", bnf_rule_same, ELEM_IN0},
	{"Atanh", bnf_rule_same, ELEM_IN0}, {"Not", bnf_rule_same, ELEM_IN0},
	{"BitwiseNot", bnf_rule_same, ELEM_IN0}, {"Clip", bnf_rule_same, ELEM_IN0},
	{"Softmax", bnf_rule_same, ELEM_IN0}, {"LogSoftmax", bnf_rule_same, ELEM_IN0},
	{"Hardmax", bnf_rule_same, ELEM_IN0}, {"Celu", bnf_rule_same, ELEM_IN0},
	{"Mish", bnf_rule_same, ELEM_IN0}, {"ThresholdedRelu", bnf_rule_same, ELEM_IN0},
	{"Shrink", bnf_rule_same, ELEM_IN0}, {"IsNaN", bnf_rule_same, BNF_ELEM_BOOL},
	{"IsInf", bnf_rule_same, BNF_ELEM_BOOL}, {"Identity", bnf_rule_same, ELEM_IN0},
	/* ONNX gives PRelu the shape of X: the slope broadcasts to it */
	{"PRelu", bnf_rule_same, ELEM_IN0},
	{"LRN", bnf_rule_same, ELEM_IN0}, {"InstanceNormalization", bnf_rule_same, ELEM_IN0},
	{"LpNormalization", bnf_rule_same, ELEM_IN0},
	{"MeanVarianceNormalization", bnf_rule_same, ELEM_IN0},
	{"BatchNormalization", bnf_rule_batchnorm, ELEM_IN0},
	{"Dropout", bnf_rule_same_all, ELEM_IN0},
	{"Cast", bnf_rule_cast, ELEM_RULE}, {"CastLike", bnf_rule_same, ELEM_IN1},
	/* several inputs, multidirectional broadcasting (7, 8: since which opset) */
	{"Add", bnf_rule_broadcast7, ELEM_IN0}, {"Sub", bnf_rule_broadcast7, ELEM_IN0},
	{"Mul", bnf_rule_broadcast7, ELEM_IN0}, {"Div", bnf_rule_broadcast7, ELEM_IN0},
	{"Pow", bnf_rule_broadcast7, ELEM_IN0}, {"Mod", bnf_rule_broadcast, ELEM_IN0},
	{"Max", bnf_rule_broadcast8, ELEM_IN0}, {"Min", bnf_rule_broadcast8, ELEM_IN0},
	{"Sum", bnf_rule_broadcast8, ELEM_IN0}, {"Mean", bnf_rule_broadcast8, ELEM_IN0},
	{"Equal", bnf_rule_broadcast7, BNF_ELEM_BOOL}, {"Less", bnf_rule_broadcast7, BNF_ELEM_BOOL},
	{"Greater", bnf_rule_broadcast7, BNF_ELEM_BOOL}, {"LessOrEqual", bnf_rule_broadcast, BNF_ELEM_BOOL},
	{"GreaterOrEqual", bnf_rule_broadcast, BNF_ELEM_BOOL},
	{"And", bnf_rule_broadcast7, BNF_ELEM_BOOL}, {"Or", bnf_rule_broadcast7, BNF_ELEM_BOOL},
	{"Xor", bnf_rule_broadcast7, BNF_ELEM_BOOL}, {"BitShift", bnf_rule_broadcast, ELEM_IN0},
	{"BitwiseAnd", bnf_rule_broadcast, ELEM_IN0}, {"BitwiseOr", bnf_rule_broadcast, ELEM_IN0},
	{"BitwiseXor", bnf_rule_broadcast, ELEM_IN0}, {"Where", bnf_rule_where, ELEM_IN1},
	/* matrices, convolution, pooling */
	{"MatMul", bnf_rule_matmul, ELEM_IN0}, {"Gemm", bnf_rule_gemm, ELEM_IN0},
	{"Conv", bnf_rule_conv, ELEM_IN0}, {"ConvTranspose", bnf_rule_conv_transpose, ELEM_IN0},
	{"MaxPool", bnf_rule_pool, ELEM_IN0}, {"AveragePool", bnf_rule_pool, ELEM_IN0},
	{"LpPool", bnf_rule_pool, ELEM_IN0}, {"GlobalAveragePool", bnf_rule_global_pool, ELEM_IN0},
	{"GlobalMaxPool", bnf_rule_global_pool, ELEM_IN0}, {"GlobalLpPool", bnf_rule_global_pool, ELEM_IN0},
	/* reductions */
	{"ReduceMean", bnf_rule_reduce, ELEM_IN0}, {"ReduceSum", bnf_rule_reduce, ELEM_IN0},
	{"ReduceMax", bnf_rule_reduce, ELEM_IN0}, {"ReduceMin", bnf_rule_reduce, ELEM_IN0},
	{"ReduceProd", bnf_rule_reduce, ELEM_IN0}, {"ReduceL1", bnf_rule_reduce, ELEM_IN0},
	{"ReduceL2", bnf_rule_reduce, ELEM_IN0}, {"ReduceLogSum", bnf_rule_reduce, ELEM_IN0},
	{"ReduceLogSumExp", bnf_rule_reduce, ELEM_IN0}, {"ReduceSumSquare", bnf_rule_reduce, ELEM_IN0},
	{"ArgMax", bnf_rule_reduce, BNF_ELEM_INT64}, {"ArgMin", bnf_rule_reduce, BNF_ELEM_INT64},
	{"CumSum", bnf_rule_same, ELEM_IN0},
	/* moving, selecting and making data */
	{"Reshape", bnf_rule_reshape, ELEM_IN0}, {"Transpose", bnf_rule_transpose, ELEM_IN0},
	{"Squeeze", bnf_rule_squeeze, ELEM_IN0}, {"Unsqueeze", bnf_rule_unsqueeze, ELEM_IN0},
	{"Flatten", bnf_rule_flatten, ELEM_IN0}, {"Concat", bnf_rule_concat, ELEM_IN0},
	{"Expand", bnf_rule_expand, ELEM_IN0}, {"Slice", bnf_rule_slice, ELEM_IN0},
	{"Gather", bnf_rule_gather, ELEM_IN0}, {"Shape", bnf_rule_shape, BNF_ELEM_INT64},
	{"Size", bnf_rule_size, BNF_ELEM_INT64}, {"Pad", bnf_rule_pad, ELEM_IN0},
	{"Resize", bnf_rule_resize, ELEM_IN0}, {"Upsample", bnf_rule_resize, ELEM_IN0},
	{"Tile", bnf_rule_tile, ELEM_IN0}, {"ConstantOfShape", bnf_rule_constant_of_shape, ELEM_RULE},
	{"Constant", bnf_rule_constant, ELEM_RULE}, {"DepthToSpace", bnf_rule_depth_space, ELEM_IN0},
	{"SpaceToDepth", bnf_rule_depth_space, ELEM_IN0},
};

/* The row of node's op type, or NULL.  Runs once per node of every graph:
 * the domain is checked once and names are compared only when their first
 * letters agree. */
static const shape_op *shape_op_for(const Onnx__NodeProto *node)
{
	const char *op = node->op_type;
	if (!op || !op[0] || (node->domain && node->domain[0] && strcmp(node->domain, "ai.onnx") != 0))
		return NULL;
	for (size_t i = 0; i < sizeof(SHAPE_OPS) / sizeof(SHAPE_OPS[0]); i++)
		if (SHAPE_OPS[i].op_type[0] == op[0] && strcmp(SHAPE_OPS[i].op_type, op) == 0)
			return &SHAPE_OPS[i];
	return NULL;
}

bool bnf_shapes_covers(const char *op_type)
{
	for (size_t i = 0; i < sizeof(SHAPE_OPS) / sizeof(SHAPE_OPS[0]); i++)
		if (strcmp(SHAPE_OPS[i].op_type, op_type) == 0)
			return true;
	return false;
}

/* --- helpers shared by the rules --- */

bool bnf_shape_has_input(const bnf_shape_node *sn, size_t i)
{
	return i < sn->node->n_input && sn->node->input[i] && sn->node->input[i][0];
}

bool bnf_shape_input(const bnf_shape_node *sn, size_t i, bnf_shape *s)
{
	if (bnf_shape_has_input(sn, i) && bnf_graph_shape(sn->gi, sn->node->input[i], s))
		return true;
	*s = bnf_shape_unknown(); /* not a conflict's mark: that is the input's */
	return false;
}

/* Bytes (as doubles) any value computed on the way to a list a rule reads
 * may take: the lists hold a few numbers, and what they are computed from
 * (Shape -> Gather -> Concat) is as small.  A rule per node reading a
 * large value in full would cost its size once per reader. */
#define LIST_EVAL_BYTES ((size_t)64 << 10)

/* The constant input i as a view of rank <= 1 and at most cap elements
 * into *c (released by the caller); false when there is none. */
static bool const_vector(const bnf_shape_node *sn, size_t i, size_t cap, bnf_const *c)
{
	memset(c, 0, sizeof(*c));
	if (!bnf_shape_has_input(sn, i))
		return false;
	if (bnf_graph_const_eval_capped(sn->gi, sn->node->input[i], LIST_EVAL_BYTES, c) != BNF_CONST_OK)
		return false;
	return c->view.rank <= 1 && c->view.numel <= cap;
}

int bnf_shape_const_ints(const bnf_shape_node *sn, size_t i, int64_t *v, size_t cap)
{
	bnf_const c;
	int n = -1;

	if (const_vector(sn, i, cap, &c) && bnf_tview_read_i64(&c.view, v) == 0)
		n = (int)c.view.numel;
	bnf_const_release(&c);
	return n;
}

int bnf_shape_const_floats(const bnf_shape_node *sn, size_t i, double *v, size_t cap)
{
	bnf_const c;
	int n = -1;

	if (const_vector(sn, i, cap, &c) && c.view.rank == 1 && bnf_dtype_is_float(c.view.dtype)) {
		bnf_tview_read(&c.view, v);
		n = (int)c.view.numel;
	}
	bnf_const_release(&c);
	return n;
}

int bnf_shape_attr_ints(const Onnx__NodeProto *node, const char *name, int64_t *v, size_t cap)
{
	const Onnx__AttributeProto *a = bnf_node_attr(node, name);

	if (!a)
		return -1;
	if (a->has_type && a->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS)
		return -2;
	for (size_t i = 0; i < a->n_ints && i < cap; i++)
		v[i] = a->ints[i];
	return a->n_ints > (size_t)INT32_MAX ? INT32_MAX : (int)a->n_ints;
}

bool bnf_shape_attr_is(const Onnx__NodeProto *node, const char *name, const char *def, const char *s)
{
	const Onnx__AttributeProto *a = bnf_node_attr(node, name);

	if (!a)
		return strcmp(def, s) == 0;
	return a->has_s && a->s.len == strlen(s) && memcmp(a->s.data, s, a->s.len) == 0;
}

bool bnf_shape_axis(int64_t axis, int rank, int *out)
{
	if (axis < -(int64_t)rank || axis >= rank)
		return false;
	*out = (int)(axis < 0 ? axis + rank : axis);
	return true;
}

bool bnf_dim_mul(int64_t a, int64_t b, int64_t *r)
{
	if (a < 0 || b < 0 || (a && b > INT64_MAX / a))
		return false;
	*r = a * b;
	return true;
}

bool bnf_dim_add(int64_t a, int64_t b, int64_t *r)
{
	if (a < 0 || b < 0 || a > INT64_MAX - b)
		return false;
	*r = a + b;
	return true;
}

void bnf_shape_rank_only(bnf_shape *out, int r)
{
	*out = bnf_shape_unknown();
	if (r < 0 || r > BNF_SHAPE_MAX_RANK)
		return;
	out->rank = r;
	for (int i = 0; i < r; i++)
		out->dims[i] = bnf_dim_of(-1);
}

bnf_dim bnf_dim_of(int64_t v)
{
	bnf_dim d = {.value = v < 0 ? -1 : v, .param = NULL};
	return d;
}

/* One dim of a broadcast over n shapes (right-aligned at position i of an
 * output of rank r): any size other than 1 wins and must agree with every
 * other such size; dims of unknown size are taken to be 1 or that size, as
 * ONNX does.  With no size other than 1, the unknown dims when they share
 * one name, else unknown.  False when sizes disagree. */
static bool broadcast_dim(const bnf_shape *in, size_t n, int r, int i, bnf_dim *out)
{
	int64_t size = 1;
	const bnf_dim *sym = NULL;
	bool same = true;

	for (size_t j = 0; j < n; j++) {
		const bnf_dim *d;
		if (i < r - in[j].rank)
			continue; /* a leading 1 */
		d = &in[j].dims[i - (r - in[j].rank)];
		if (d->value >= 0) {
			if (d->value != 1 && size != 1 && size != d->value)
				return false;
			if (d->value != 1)
				size = d->value;
		} else if (!sym) {
			sym = d;
		} else if (!bnf_dim_same(sym, d)) {
			same = false;
		}
	}
	if (size != 1 || !sym)
		*out = bnf_dim_of(size);
	else
		*out = same ? *sym : bnf_dim_of(-1);
	return true;
}

bool bnf_shape_broadcast(const bnf_shape *in, size_t n, bnf_shape *out)
{
	int r = 0;

	*out = bnf_shape_unknown();
	for (size_t j = 0; j < n; j++) {
		if (in[j].rank < 0)
			return false;
		if (in[j].rank > r)
			r = in[j].rank;
	}
	for (int i = 0; i < r; i++)
		if (!broadcast_dim(in, n, r, i, &out->dims[i]))
			return false;
	out->rank = r;
	return true;
}

/* --- declarations and merging --- */

/* The shape a value_info / graph input / graph output declares. */
static bnf_shape declared_shape(const Onnx__ValueInfoProto *vi)
{
	bnf_shape s = bnf_shape_unknown();
	const Onnx__TypeProto *tp = vi->type;
	const Onnx__TensorShapeProto *sh;

	if (!tp || tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !tp->tensor_type)
		return s;
	s.elem_type = tp->tensor_type->has_elem_type ? tp->tensor_type->elem_type : 0;
	sh = tp->tensor_type->shape;
	if (!sh || sh->n_dim > BNF_SHAPE_MAX_RANK)
		return s;
	for (size_t d = 0; d < sh->n_dim; d++) {
		const Onnx__TensorShapeProto__Dimension *dim = sh->dim[d];
		s.dims[d] = bnf_dim_of(-1);
		if (dim && dim->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE)
			s.dims[d] = bnf_dim_of(dim->dim_value);
		else if (dim && dim->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM &&
			 dim->dim_param && dim->dim_param[0])
			s.dims[d].param = dim->dim_param;
	}
	s.rank = (int)sh->n_dim;
	return s;
}

/* The shape an initializer's dims give, or unknown. */
static bnf_shape initializer_shape(const Onnx__TensorProto *t)
{
	bnf_shape s = bnf_shape_unknown();

	s.elem_type = t->has_data_type ? t->data_type : 0;
	if (t->n_dims > BNF_SHAPE_MAX_RANK)
		return s;
	for (size_t d = 0; d < t->n_dims; d++) {
		if (t->dims[d] < 0)
			return s;
		s.dims[d] = bnf_dim_of(t->dims[d]);
	}
	s.rank = (int)t->n_dims;
	return s;
}

/* What a and b together say of one value: each dim known on one side is
 * taken, a name from b before one from a; sizes or ranks that disagree give
 * an unknown shape marked conflict. */
static bnf_shape merge(const bnf_shape *a, const bnf_shape *b)
{
	bnf_shape m = *a;

	if (!m.elem_type)
		m.elem_type = b->elem_type;
	if (a->conflict || b->conflict)
		goto conflict;
	if (b->rank < 0)
		return m;
	if (a->rank < 0) {
		int et = m.elem_type;
		m = *b;
		m.elem_type = et;
		return m;
	}
	if (a->rank != b->rank)
		goto conflict;
	for (int d = 0; d < a->rank; d++) {
		const bnf_dim *x = &a->dims[d], *y = &b->dims[d];
		if (x->value >= 0 && y->value >= 0 && x->value != y->value)
			goto conflict;
		if (x->value < 0 && (y->value >= 0 || y->param))
			m.dims[d] = *y;
	}
	return m;
conflict:
	m.rank = -1;
	m.conflict = true;
	return m;
}

/* What a node's output is, from what its rule gives (a) and what the model
 * declares for it (b, value_info or graph output).  A declaration is a
 * claim nothing checks at run time (a tool that makes inputs dynamic often
 * leaves the old sizes in value_info), so its sizes and names are never
 * taken; it may only contradict the rule (a conflict), or give the rank
 * where the rule knows nothing (onnxruntime trusts it there too). */
static bnf_shape merge_output(const bnf_shape *a, const bnf_shape *b)
{
	bnf_shape m = merge(a, b);

	if (a->rank >= 0 && !m.conflict) {
		int et = m.elem_type;
		m = *a;
		m.elem_type = et;
		return m;
	}
	if (m.conflict || m.rank < 0)
		return m;
	for (int d = 0; d < m.rank; d++)
		m.dims[d] = bnf_dim_of(-1);
	return m;
}

/* Record s for name merged with what is recorded for it already (a
 * node's output: merge_output; declarations: merge). */
static int record_merged(bnf_graph *gi, const char *name, const bnf_shape *s, bool output)
{
	const bnf_value *v = bnf_graph_value(gi, name);
	bnf_shape m = *s;

	if (v && v->shape >= 0)
		m = output ? merge_output(s, &gi->shapes[v->shape]) : merge(s, &gi->shapes[v->shape]);
	if (bnf_graph_set_shape(gi, name, &m) < 0)
		return bnf_fail(gi->fail, BNFOLD_E_NOMEM, "%s: out of memory", gi->path);
	return 0;
}

/* Record the declarations of a list of value infos for the names this
 * graph defines (a value_info may also name an outer value: not ours). */
static int declare(bnf_graph *gi, Onnx__ValueInfoProto *const *vis, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const bnf_value *v;
		bnf_shape s;
		if (!vis[i] || !vis[i]->name || !vis[i]->name[0])
			continue;
		v = bnf_graph_value(gi, vis[i]->name);
		if (!v || (v->init < 0 && v->producer < 0 && !v->is_input))
			continue;
		s = declared_shape(vis[i]);
		if (record_merged(gi, vis[i]->name, &s, false) < 0)
			return -1;
	}
	return 0;
}

/* Initializers that are also declared: the declaration must agree with
 * the dims.  One a caller may override (a graph input, IR >= 4) has the
 * declared shape, not its default's. */
static int declare_initializers(bnf_graph *gi)
{
	for (size_t i = 0; i < gi->g->n_initializer; i++) {
		const Onnx__TensorProto *t = gi->g->initializer[i];
		const bnf_value *v = t && t->name ? bnf_graph_value(gi, t->name) : NULL;
		bnf_shape s, m;
		if (!v || v->shape < 0)
			continue; /* undeclared: bnf_graph_shape reads the dims */
		s = initializer_shape(t);
		m = merge(&s, &gi->shapes[v->shape]);
		if (!m.conflict && v->is_input && !bnf_graph_inputs_are_defaults(gi))
			continue;
		if (bnf_graph_set_shape(gi, t->name, &m) < 0)
			return bnf_fail(gi->fail, BNFOLD_E_NOMEM, "%s: out of memory", gi->path);
	}
	return 0;
}

/* --- nodes --- */

/* A node inside a function body whose attribute is the caller's: its
 * value is not known here. */
static bool takes_caller_attr(const Onnx__NodeProto *node)
{
	for (size_t a = 0; a < node->n_attribute; a++)
		if (node->attribute[a]->ref_attr_name && node->attribute[a]->ref_attr_name[0])
			return true;
	return false;
}

/* The element type the table gives output 0 of node. */
static int table_elem(const bnf_shape_node *sn, int elem)
{
	bnf_shape in;
	if (elem > 0)
		return elem;
	bnf_shape_input(sn, elem == ELEM_IN1 ? 1 : 0, &in);
	return in.elem_type;
}

static int infer_node(bnf_graph *gi, const Onnx__NodeProto *node)
{
	bnf_shape out[BNF_SHAPE_MAX_OUT];
	size_t n_out = node->n_output < BNF_SHAPE_MAX_OUT ? node->n_output : BNF_SHAPE_MAX_OUT;
	bnf_shape_node sn = {.gi = gi, .node = node, .opset = gi->opset};
	const shape_op *op = shape_op_for(node);

	for (size_t k = 0; k < BNF_SHAPE_MAX_OUT; k++)
		out[k] = bnf_shape_unknown();
	if (op && !takes_caller_attr(node) && n_out > 0) {
		op->rule(&sn, out, n_out);
		if (op->elem != ELEM_RULE)
			out[0].elem_type = table_elem(&sn, op->elem);
	}
	for (size_t k = 0; k < node->n_output; k++) {
		const bnf_shape unknown = bnf_shape_unknown();
		const char *name = node->output[k];
		if (name && name[0] && record_merged(gi, name, k < n_out ? &out[k] : &unknown, true) < 0)
			return -1;
	}
	return 0;
}

int bnf_shapes_infer(bnf_graph *gi)
{
	const Onnx__GraphProto *g = gi->g;

	if (declare(gi, g->input, g->n_input) < 0 || declare(gi, g->value_info, g->n_value_info) < 0 ||
	    declare(gi, g->output, g->n_output) < 0 || declare_initializers(gi) < 0)
		return -1;
	for (size_t k = 0; k < g->n_node; k++)
		if (infer_node(gi, g->node[gi->order[k]]) < 0)
			return -1;
	return 0;
}

/* Append text to buf (len bytes, *used taken), truncating; buf stays
 * terminated. */
static void put(char *buf, size_t len, size_t *used, const char *text, size_t n)
{
	if (*used + 1 >= len)
		return;
	if (n > len - 1 - *used)
		n = len - 1 - *used;
	memcpy(buf + *used, text, n);
	*used += n;
	buf[*used] = '\0';
}

/* Written by hand, not with snprintf: a plan's shapes are formatted for
 * every fold, and a graph may have tens of thousands. */
const char *bnf_shape_format(const bnf_shape *s, char *buf, size_t len)
{
	size_t used = 0;

	if (!len)
		return buf;
	buf[0] = '\0';
	if (s->rank < 0) {
		put(buf, len, &used, "?", 1);
		return buf;
	}
	put(buf, len, &used, "[", 1);
	for (int d = 0; d < s->rank; d++) {
		char num[24], *e = num + sizeof(num), *q = e;
		uint64_t v = (uint64_t)s->dims[d].value;
		if (d)
			put(buf, len, &used, ",", 1);
		if (s->dims[d].value < 0) {
			const char *name = s->dims[d].param ? s->dims[d].param : "?";
			put(buf, len, &used, name, strlen(name));
			continue;
		}
		do
			*--q = (char)('0' + v % 10);
		while ((v /= 10) != 0);
		put(buf, len, &used, q, (size_t)(e - q));
	}
	put(buf, len, &used, "]", 1);
	return buf;
}
