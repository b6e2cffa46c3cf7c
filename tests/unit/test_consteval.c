/* Constants the model computes from others (bnf_graph_const_eval), on
 * graphs built here: each op on float and integer values, both opset forms
 * where they differ, the spec's clamping and negative axes and indices,
 * broadcasting, one rounding, and the bounds (cap, budget, depth) and
 * invalid computations.  Expected values are worked out by hand. */
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "constants.h"
#include "graph.h"
#include "tap.h"

#define MAX_PARTS 512

/* A graph under construction; everything it allocates is freed at once. */
typedef struct tb {
	Onnx__GraphProto g;
	Onnx__NodeProto *node[128];
	Onnx__TensorProto *init[32];
	void *mem[MAX_PARTS];
	size_t n_mem;
	bnf_graph gi;
	bool built;
} tb;

static void *tb_alloc(tb *b, size_t size)
{
	void *p = calloc(1, size ? size : 1);
	if (!p || b->n_mem == MAX_PARTS)
		abort();
	b->mem[b->n_mem++] = p;
	return p;
}

static void tb_start(tb *b)
{
	memset(b, 0, sizeof(*b));
	onnx__graph_proto__init(&b->g);
	b->g.node = b->node;
	b->g.initializer = b->init;
}

static Onnx__TensorProto *tb_tensor(tb *b, const char *name, int dtype, size_t rank, const int64_t *dims)
{
	Onnx__TensorProto *t = tb_alloc(b, sizeof(*t));
	onnx__tensor_proto__init(t);
	t->name = (char *)name;
	t->has_data_type = 1;
	t->data_type = dtype;
	t->n_dims = rank;
	t->dims = tb_alloc(b, rank * sizeof(int64_t));
	if (rank) /* a scalar has no dims to copy (dims may be NULL) */
		memcpy(t->dims, dims, rank * sizeof(int64_t));
	b->init[b->g.n_initializer++] = t;
	return t;
}

static size_t count(size_t rank, const int64_t *dims)
{
	size_t n = 1;
	for (size_t i = 0; i < rank; i++)
		n *= (size_t)dims[i];
	return n;
}

/* Initializers: float32 (float_data), float64 (double_data), int64 (int64_data). */
static void init_f(tb *b, const char *name, size_t rank, const int64_t *dims, const float *v)
{
	Onnx__TensorProto *t = tb_tensor(b, name, BNF_DT_FLOAT, rank, dims);
	t->n_float_data = count(rank, dims);
	t->float_data = tb_alloc(b, t->n_float_data * sizeof(float));
	memcpy(t->float_data, v, t->n_float_data * sizeof(float));
}

static void init_d(tb *b, const char *name, size_t rank, const int64_t *dims, const double *v)
{
	Onnx__TensorProto *t = tb_tensor(b, name, BNF_DT_DOUBLE, rank, dims);
	t->n_double_data = count(rank, dims);
	t->double_data = tb_alloc(b, t->n_double_data * sizeof(double));
	memcpy(t->double_data, v, t->n_double_data * sizeof(double));
}

static void init_i(tb *b, const char *name, size_t rank, const int64_t *dims, const int64_t *v)
{
	Onnx__TensorProto *t = tb_tensor(b, name, BNF_DT_INT64, rank, dims);
	t->n_int64_data = count(rank, dims);
	t->int64_data = tb_alloc(b, t->n_int64_data * sizeof(int64_t));
	memcpy(t->int64_data, v, t->n_int64_data * sizeof(int64_t));
}

/* A 1-D int64 initializer of n values. */
static void ints(tb *b, const char *name, size_t n, const int64_t *v)
{
	int64_t d = (int64_t)n;
	init_i(b, name, 1, &d, v);
}

/* A node reading in0, in1, ... (NULL-terminated) and writing out. */
static Onnx__NodeProto *node(tb *b, const char *op, const char *out, ...)
{
	Onnx__NodeProto *n = tb_alloc(b, sizeof(*n));
	va_list ap;
	const char *in;

	onnx__node_proto__init(n);
	n->op_type = (char *)op;
	n->input = tb_alloc(b, 8 * sizeof(char *));
	va_start(ap, out);
	while ((in = va_arg(ap, const char *)) && n->n_input < 8)
		n->input[n->n_input++] = (char *)in;
	va_end(ap);
	n->output = tb_alloc(b, sizeof(char *));
	n->output[0] = (char *)out;
	n->n_output = 1;
	n->attribute = tb_alloc(b, 4 * sizeof(void *));
	b->node[b->g.n_node++] = n;
	return n;
}

static Onnx__AttributeProto *attr(tb *b, Onnx__NodeProto *n, const char *name)
{
	Onnx__AttributeProto *a = tb_alloc(b, sizeof(*a));
	onnx__attribute_proto__init(a);
	a->name = (char *)name;
	n->attribute[n->n_attribute++] = a;
	return a;
}

static void attr_i(tb *b, Onnx__NodeProto *n, const char *name, int64_t v)
{
	Onnx__AttributeProto *a = attr(b, n, name);
	a->has_type = 1;
	a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
	a->has_i = 1;
	a->i = v;
}

static void attr_ints(tb *b, Onnx__NodeProto *n, const char *name, size_t k, const int64_t *v)
{
	Onnx__AttributeProto *a = attr(b, n, name);
	a->has_type = 1;
	a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
	a->n_ints = k;
	a->ints = tb_alloc(b, k * sizeof(int64_t));
	memcpy(a->ints, v, k * sizeof(int64_t));
}

static void tb_build(tb *b, int opset)
{
	if (!b->built && bnf_graph_build(&b->gi, &b->g, NULL, "test", 8, opset, false, NULL) < 0)
		abort();
	b->built = true;
}

static bnf_const_status eval_in(tb *b, int opset, const char *name, bnf_const *c)
{
	tb_build(b, opset);
	return bnf_graph_const_eval(&b->gi, name, c);
}

static void tb_end(tb *b)
{
	if (b->built)
		bnf_graph_free(&b->gi);
	for (size_t i = 0; i < b->n_mem; i++)
		free(b->mem[i]);
}

/* c has these dims and values (read back through the view). */
static bool is(const bnf_const *c, int dtype, size_t rank, const int64_t *dims, const double *want)
{
	size_t n = count(rank, dims);
	double *x = malloc((n ? n : 1) * sizeof(double));
	bool ok = c->view.dtype == dtype && c->view.rank == rank && c->view.numel == n && x;

	for (size_t i = 0; ok && i < rank; i++)
		ok = c->view.dims[i] == dims[i];
	if (ok)
		bnf_tview_read(&c->view, x);
	for (size_t i = 0; ok && i < n; i++)
		ok = x[i] == want[i];
	if (!ok) {
		printf("#   got dtype %d rank %zu numel %zu:", c->view.dtype, c->view.rank, c->view.numel);
		for (size_t i = 0; x && i < c->view.numel && i < n && i < 16; i++)
			printf(" %g", x[i]);
		printf(" (%s)\n", c->msg);
	}
	free(x);
	return ok;
}

/* Evaluate name in a graph of opset; expect st (and print why if not). */
static bnf_const_status expect(tb *b, int opset, const char *name, bnf_const *c, bnf_const_status want)
{
	bnf_const_status st = eval_in(b, opset, name, c);
	if (st != want)
		printf("#   %s: status %d, not %d: %s\n", name, st, want, c->msg);
	return st;
}

/* Axes as the opset has them: an attribute before 13, an input from 13. */
static void axes_of(tb *b, Onnx__NodeProto *n, int opset, const char *name, size_t k, const int64_t *v)
{
	if (opset < 13) {
		attr_ints(b, n, "axes", k, v);
		return;
	}
	ints(b, name, k, v);
	n->input[n->n_input++] = (char *)name;
}

/* Evaluate name and check it; the value is released. */
#define CHECK(b, opset, name, dtype, rank, dims, want, ...)                                 \
	do {                                                                                \
		bnf_const c_;                                                               \
		bnf_const_status st_ = expect(b, opset, name, &c_, BNF_CONST_OK);           \
		OK(st_ == BNF_CONST_OK && is(&c_, dtype, rank, dims, want), __VA_ARGS__);   \
		bnf_const_release(&c_);                                                     \
	} while (0)
#define FAILS(b, opset, name, status, ...)                                                  \
	do {                                                                                \
		bnf_const c_;                                                               \
		OK(expect(b, opset, name, &c_, status) == status, __VA_ARGS__);             \
		bnf_const_release(&c_);                                                     \
	} while (0)

static void test_unsqueeze_squeeze(int opset)
{
	static const float k[3] = {1, 2, 3};
	static const int64_t ki[2] = {7, -8}, d3 = 3, d2 = 2;
	static const double v3[3] = {1, 2, 3}, vi[2] = {7, -8};
	tb b;

	tb_start(&b);
	init_f(&b, "k", 1, &d3, k);
	init_i(&b, "ki", 1, &d2, ki);
	axes_of(&b, node(&b, "Unsqueeze", "u1", "k", NULL), opset, "a1", 2, (int64_t[]){1, 2});
	axes_of(&b, node(&b, "Unsqueeze", "u2", "k", NULL), opset, "a2", 2, (int64_t[]){-1, 0});
	axes_of(&b, node(&b, "Unsqueeze", "u3", "k", NULL), opset, "a3", 1, (int64_t[]){2});
	axes_of(&b, node(&b, "Unsqueeze", "ui", "ki", NULL), opset, "a4", 1, (int64_t[]){0});
	axes_of(&b, node(&b, "Squeeze", "s1", "u1", NULL), opset, "a5", 1, (int64_t[]){-1});
	node(&b, "Squeeze", "s2", "u2", NULL);
	axes_of(&b, node(&b, "Squeeze", "s3", "u1", NULL), opset, "a6", 1, (int64_t[]){0});
	axes_of(&b, node(&b, "Squeeze", "s4", "u1", NULL), opset, "a7", 0, (int64_t[]){0});
	CHECK(&b, opset, "u1", BNF_DT_FLOAT, 3, ((int64_t[]){3, 1, 1}), v3, "opset %d: Unsqueeze [3] axes 1,2 is [3,1,1]", opset);
	CHECK(&b, opset, "u2", BNF_DT_FLOAT, 3, ((int64_t[]){1, 3, 1}), v3, "opset %d: Unsqueeze axes -1,0 is [1,3,1]", opset);
	FAILS(&b, opset, "u3", BNF_CONST_INVALID, "opset %d: Unsqueeze axis 2 of a rank-2 result is invalid", opset);
	CHECK(&b, opset, "ui", BNF_DT_INT64, 2, ((int64_t[]){1, 2}), vi, "opset %d: Unsqueeze of int64", opset);
	CHECK(&b, opset, "s1", BNF_DT_FLOAT, 2, ((int64_t[]){3, 1}), v3, "opset %d: Squeeze axis -1 of [3,1,1] is [3,1]", opset);
	CHECK(&b, opset, "s2", BNF_DT_FLOAT, 1, &d3, v3, "opset %d: Squeeze without axes removes every 1", opset);
	FAILS(&b, opset, "s3", BNF_CONST_INVALID, "opset %d: Squeeze of an axis of size 3 is invalid", opset);
	CHECK(&b, opset, "s4", BNF_DT_FLOAT, 1, &d3, v3, "opset %d: Squeeze with empty axes removes every 1, as absent axes do",
	      opset);
	tb_end(&b);
}

static void test_flatten_transpose_reshape(void)
{
	static const int64_t d[3] = {2, 3, 4}, d23[2] = {2, 3}, d3 = 3;
	float f[24], t[6] = {0, 1, 2, 3, 4, 5}, k[3] = {1, 2, 3};
	double v[24];
	tb b;

	for (int i = 0; i < 24; i++)
		f[i] = (float)(v[i] = i);
	tb_start(&b);
	init_f(&b, "f", 3, d, f);
	init_f(&b, "t", 2, d23, t);
	init_f(&b, "k", 1, &d3, k);
	ints(&b, "two", 1, (int64_t[]){2});
	node(&b, "Flatten", "fl1", "f", NULL);
	attr_i(&b, node(&b, "Flatten", "fl2", "f", NULL), "axis", -1);
	attr_i(&b, node(&b, "Flatten", "fl3", "f", NULL), "axis", 0);
	attr_i(&b, node(&b, "Flatten", "fl4", "f", NULL), "axis", 4);
	node(&b, "Transpose", "tr1", "t", NULL);
	attr_ints(&b, node(&b, "Transpose", "tr2", "f", NULL), "perm", 3, (int64_t[]){1, 0, 2});
	attr_ints(&b, node(&b, "Transpose", "tr3", "t", NULL), "perm", 2, (int64_t[]){0, 0});
	node(&b, "Reshape", "rs1", "k", "two", NULL);
	node(&b, "Neg", "kn", "k", NULL);
	node(&b, "Reshape", "rs2", "kn", "two", NULL);
	CHECK(&b, 13, "fl1", BNF_DT_FLOAT, 2, ((int64_t[]){2, 12}), v, "Flatten of [2,3,4] is [2,12]");
	CHECK(&b, 13, "fl2", BNF_DT_FLOAT, 2, ((int64_t[]){6, 4}), v, "Flatten axis -1 is [6,4]");
	CHECK(&b, 13, "fl3", BNF_DT_FLOAT, 2, ((int64_t[]){1, 24}), v, "Flatten axis 0 is [1,24]");
	FAILS(&b, 13, "fl4", BNF_CONST_INVALID, "Flatten axis 4 of rank 3 is invalid");
	CHECK(&b, 13, "tr1", BNF_DT_FLOAT, 2, ((int64_t[]){3, 2}), ((double[]){0, 3, 1, 4, 2, 5}),
	      "Transpose without perm reverses the axes");
	CHECK(&b, 13, "tr2", BNF_DT_FLOAT, 3, ((int64_t[]){3, 2, 4}),
	      ((double[]){0, 1, 2, 3, 12, 13, 14, 15, 4, 5, 6, 7, 16, 17, 18, 19, 8, 9, 10, 11, 20, 21, 22, 23}),
	      "Transpose perm 1,0,2");
	FAILS(&b, 13, "tr3", BNF_CONST_INVALID, "Transpose perm 0,0 is invalid");
	FAILS(&b, 13, "rs1", BNF_CONST_INVALID, "Reshape of 3 constants to [2] is invalid, not malformed");
	FAILS(&b, 13, "rs2", BNF_CONST_INVALID, "Reshape of 3 computed values to [2] is invalid");
	tb_end(&b);
}

static void test_expand_concat(void)
{
	static const float e[3] = {1, 2, 3}, a[2] = {1, 2}, bb[4] = {3, 4, 5, 6}, c3[3] = {7, 8, 9};
	static const int64_t d31[2] = {3, 1}, d21[2] = {2, 1}, d22[2] = {2, 2}, one = 1;
	double want[24];
	tb b;

	for (int i = 0; i < 24; i++)
		want[i] = (i / 4) % 3 + 1;
	tb_start(&b);
	init_f(&b, "e", 2, d31, e);
	init_f(&b, "a", 2, d21, a);
	init_f(&b, "bb", 2, d22, bb);
	init_f(&b, "c3", 2, d31, c3);
	init_i(&b, "five", 1, &one, (int64_t[]){5});
	ints(&b, "i12", 2, (int64_t[]){1, 2});
	ints(&b, "s214", 3, (int64_t[]){2, 1, 4});
	ints(&b, "s224", 3, (int64_t[]){2, 2, 4});
	ints(&b, "s3", 1, (int64_t[]){3});
	ints(&b, "huge", 2, (int64_t[]){1 << 20, 1 << 20});
	node(&b, "Expand", "x1", "e", "s214", NULL);
	node(&b, "Expand", "x2", "five", "s3", NULL);
	node(&b, "Expand", "x3", "e", "s224", NULL);
	node(&b, "Expand", "x4", "five", "huge", NULL);
	attr_i(&b, node(&b, "Concat", "c1", "a", "bb", NULL), "axis", -1);
	attr_i(&b, node(&b, "Concat", "c2", "i12", "five", NULL), "axis", 0);
	attr_i(&b, node(&b, "Concat", "c3x", "a", "c3", NULL), "axis", 1);
	attr_i(&b, node(&b, "Concat", "c4", "a", "i12", NULL), "axis", 0);
	attr_i(&b, node(&b, "Concat", "c5", "a", "bb", NULL), "axis", 2);
	CHECK(&b, 13, "x1", BNF_DT_FLOAT, 3, ((int64_t[]){2, 3, 4}), want, "Expand [3,1] to [2,1,4] is [2,3,4]");
	CHECK(&b, 13, "x2", BNF_DT_INT64, 1, ((int64_t[]){3}), ((double[]){5, 5, 5}), "Expand of int64 [1] to [3]");
	FAILS(&b, 13, "x3", BNF_CONST_INVALID, "Expand [3,1] to [2,2,4] does not broadcast: invalid");
	FAILS(&b, 13, "x4", BNF_CONST_TOO_LARGE, "Expand to 2^40 elements is too large");
	CHECK(&b, 13, "c1", BNF_DT_FLOAT, 2, ((int64_t[]){2, 3}), ((double[]){1, 3, 4, 2, 5, 6}),
	      "Concat [2,1] and [2,2] on axis -1");
	CHECK(&b, 13, "c2", BNF_DT_INT64, 1, ((int64_t[]){3}), ((double[]){1, 2, 5}), "Concat of int64 on axis 0");
	FAILS(&b, 13, "c3x", BNF_CONST_INVALID, "Concat of [2,1] and [3,1] on axis 1 is invalid");
	FAILS(&b, 13, "c4", BNF_CONST_INVALID, "Concat of float and int64 is invalid");
	FAILS(&b, 13, "c5", BNF_CONST_INVALID, "Concat on axis 2 of rank 2 is invalid");
	tb_end(&b);
}

static void test_cast(void)
{
	static const double x = 1.0 + 0x1p-11 + 0x1p-30;
	static const float fl[3] = {-2.7f, 2.7f, 0.5f}, fnan = NAN, big = 3e9f;
	static const int64_t one = 1, d3 = 3, d2 = 2;
	tb b;

	tb_start(&b);
	init_d(&b, "x", 1, &one, &x);
	init_f(&b, "fl", 1, &d3, fl);
	init_f(&b, "fnan", 1, &one, &fnan);
	init_f(&b, "big", 1, &one, &big);
	init_i(&b, "ki", 1, &d2, (int64_t[]){3, -4});
	attr_i(&b, node(&b, "Cast", "h", "x", NULL), "to", BNF_DT_FLOAT16);
	attr_i(&b, node(&b, "Cast", "hf", "x", NULL), "to", BNF_DT_FLOAT);
	attr_i(&b, node(&b, "Cast", "hh", "hf", NULL), "to", BNF_DT_FLOAT16);
	attr_i(&b, node(&b, "Cast", "t", "fl", NULL), "to", BNF_DT_INT64);
	attr_i(&b, node(&b, "Cast", "n", "fnan", NULL), "to", BNF_DT_INT64);
	attr_i(&b, node(&b, "Cast", "o", "big", NULL), "to", BNF_DT_INT32);
	attr_i(&b, node(&b, "Cast", "f", "ki", NULL), "to", BNF_DT_FLOAT);
	attr_i(&b, node(&b, "Cast", "s", "ki", NULL), "to", 8); /* string */
	/* 1 + 2^-11 + 2^-30 lies just above the midpoint of float16's 1 and
	 * 1 + 2^-10: one rounding gives the upper; through float32 (which
	 * drops 2^-30) the tie goes to even, 1. */
	CHECK(&b, 13, "h", BNF_DT_FLOAT16, 1, &one, ((double[]){1.0 + 0x1p-10}), "Cast float64 to float16 rounds once");
	CHECK(&b, 13, "hh", BNF_DT_FLOAT16, 1, &one, ((double[]){1.0}), "Cast through float32 rounds twice, as a runtime does");
	CHECK(&b, 13, "t", BNF_DT_INT64, 1, &d3, ((double[]){-2, 2, 0}), "Cast float to int64 truncates toward zero");
	FAILS(&b, 13, "n", BNF_CONST_NOT_CONSTANT, "Cast of NaN to int64 is not evaluated");
	FAILS(&b, 13, "o", BNF_CONST_NOT_CONSTANT, "Cast of 3e9 to int32 is not evaluated");
	CHECK(&b, 13, "f", BNF_DT_FLOAT, 1, &d2, ((double[]){3, -4}), "Cast int64 to float");
	FAILS(&b, 13, "s", BNF_CONST_NOT_CONSTANT, "Cast to string is not evaluated");
	tb_end(&b);
}

static void test_slice(void)
{
	float s10[10], s12[12];
	static const int64_t d10 = 10, d34[2] = {3, 4};
	tb b;

	for (int i = 0; i < 12; i++) {
		if (i < 10)
			s10[i] = (float)i;
		s12[i] = (float)i;
	}
	tb_start(&b);
	init_f(&b, "v", 1, &d10, s10);
	init_f(&b, "m", 2, d34, s12);
	ints(&b, "st1", 1, (int64_t[]){-1});
	ints(&b, "en1", 1, (int64_t[]){INT64_MIN});
	ints(&b, "ax0", 1, (int64_t[]){0});
	ints(&b, "sp1", 1, (int64_t[]){-2});
	ints(&b, "st2", 2, (int64_t[]){1, -1});
	ints(&b, "en2", 2, (int64_t[]){3, -5});
	ints(&b, "ax2", 2, (int64_t[]){-2, 1});
	ints(&b, "sp2", 2, (int64_t[]){1, -1});
	ints(&b, "zero", 1, (int64_t[]){0});
	ints(&b, "en3", 1, (int64_t[]){1000});
	Onnx__NodeProto *old = node(&b, "Slice", "o1", "v", NULL);
	attr_ints(&b, old, "starts", 1, (int64_t[]){2});
	attr_ints(&b, old, "ends", 1, (int64_t[]){-3});
	node(&b, "Slice", "n1", "v", "st1", "en1", "ax0", "sp1", NULL);
	node(&b, "Slice", "n2", "m", "st2", "en2", "ax2", "sp2", NULL);
	node(&b, "Slice", "n3", "v", "st1", "en1", "ax0", "zero", NULL);
	node(&b, "Slice", "n4", "v", "zero", "en3", NULL);
	CHECK(&b, 9, "o1", BNF_DT_FLOAT, 1, ((int64_t[]){5}), ((double[]){2, 3, 4, 5, 6}),
	      "opset 9: Slice attributes starts 2, ends -3");
	tb_end(&b);

	tb_start(&b);
	init_f(&b, "v", 1, &d10, s10);
	init_f(&b, "m", 2, d34, s12);
	ints(&b, "st1", 1, (int64_t[]){-1});
	ints(&b, "en1", 1, (int64_t[]){INT64_MIN});
	ints(&b, "ax0", 1, (int64_t[]){0});
	ints(&b, "sp1", 1, (int64_t[]){-2});
	ints(&b, "st2", 2, (int64_t[]){1, -1});
	ints(&b, "en2", 2, (int64_t[]){3, -5});
	ints(&b, "ax2", 2, (int64_t[]){-2, 1});
	ints(&b, "sp2", 2, (int64_t[]){1, -1});
	ints(&b, "zero", 1, (int64_t[]){0});
	ints(&b, "en3", 1, (int64_t[]){1000});
	node(&b, "Slice", "n1", "v", "st1", "en1", "ax0", "sp1", NULL);
	node(&b, "Slice", "n2", "m", "st2", "en2", "ax2", "sp2", NULL);
	node(&b, "Slice", "n3", "v", "st1", "en1", "ax0", "zero", NULL);
	node(&b, "Slice", "n4", "v", "zero", "en3", NULL);
	CHECK(&b, 13, "n1", BNF_DT_FLOAT, 1, ((int64_t[]){5}), ((double[]){9, 7, 5, 3, 1}),
	      "Slice from -1 to INT64_MIN by -2 is 9,7,5,3,1");
	CHECK(&b, 13, "n2", BNF_DT_FLOAT, 2, ((int64_t[]){2, 4}), ((double[]){7, 6, 5, 4, 11, 10, 9, 8}),
	      "Slice rows 1..3, columns from -1 down past -5 (clamped), axes -2 and 1");
	FAILS(&b, 13, "n3", BNF_CONST_INVALID, "Slice with step 0 is invalid");
	CHECK(&b, 13, "n4", BNF_DT_FLOAT, 1, &d10, ((double[]){0, 1, 2, 3, 4, 5, 6, 7, 8, 9}),
	      "Slice end 1000 is clamped to the dim");
	tb_end(&b);
}

static void test_gather_shape(void)
{
	static const float g[6] = {1, 2, 3, 4, 5, 6};
	static const int64_t d32[2] = {3, 2}, d2 = 2, d3 = 3;
	float f[24] = {0};
	tb b;

	tb_start(&b);
	init_f(&b, "g", 2, d32, g);
	init_f(&b, "f", 3, (int64_t[]){2, 3, 4}, f);
	ints(&b, "i2", 2, (int64_t[]){-1, 0});
	init_i(&b, "m1", 0, NULL, (int64_t[]){-1});
	init_i(&b, "z", 0, NULL, (int64_t[]){0});
	ints(&b, "i3", 1, (int64_t[]){3});
	ints(&b, "m1v", 1, (int64_t[]){-1});
	node(&b, "Gather", "g1", "g", "i2", NULL);
	attr_i(&b, node(&b, "Gather", "g2", "g", "m1", NULL), "axis", 1);
	node(&b, "Gather", "g3", "g", "i3", NULL);
	node(&b, "Shape", "sh", "f", NULL);
	Onnx__NodeProto *part = node(&b, "Shape", "sh15", "f", NULL);
	attr_i(&b, part, "start", 1);
	attr_i(&b, part, "end", -1);
	node(&b, "Size", "sz", "f", NULL);
	node(&b, "Shape", "shx", "x", NULL);
	/* f reshaped to [f.shape[0], -1] the way exporters compute it */
	node(&b, "Gather", "n0", "sh", "z", NULL);
	node(&b, "Unsqueeze", "n0u", "n0", "ax0", NULL);
	ints(&b, "ax0", 1, (int64_t[]){0});
	attr_i(&b, node(&b, "Concat", "newshape", "n0u", "m1v", NULL), "axis", 0);
	node(&b, "Reshape", "r", "f", "newshape", NULL);
	node(&b, "Shape", "shr", "r", NULL);
	b.g.n_input = 1;
	b.g.input = tb_alloc(&b, sizeof(void *));
	b.g.input[0] = tb_alloc(&b, sizeof(Onnx__ValueInfoProto));
	onnx__value_info_proto__init(b.g.input[0]);
	b.g.input[0]->name = "x";
	CHECK(&b, 15, "g1", BNF_DT_FLOAT, 2, ((int64_t[]){2, 2}), ((double[]){5, 6, 1, 2}), "Gather rows -1 and 0");
	CHECK(&b, 15, "g2", BNF_DT_FLOAT, 1, &d3, ((double[]){2, 4, 6}), "Gather axis 1, scalar index -1");
	FAILS(&b, 15, "g3", BNF_CONST_INVALID, "Gather index 3 of a dim of 3 is invalid");
	CHECK(&b, 15, "sh", BNF_DT_INT64, 1, &d3, ((double[]){2, 3, 4}), "Shape of an initializer [2,3,4]");
	CHECK(&b, 15, "sh15", BNF_DT_INT64, 1, ((int64_t[]){1}), ((double[]){3}), "Shape start 1, end -1 (opset 15)");
	CHECK(&b, 15, "sz", BNF_DT_INT64, 0, NULL, ((double[]){24}), "Size of [2,3,4]");
	FAILS(&b, 15, "shx", BNF_CONST_NOT_CONSTANT, "Shape of an input of unknown shape is not constant");
	CHECK(&b, 15, "shr", BNF_DT_INT64, 1, &d2, ((double[]){2, 12}), "Shape -> Gather -> Unsqueeze -> Concat -> Reshape");
	{
		bnf_const c;
		int64_t v[3] = {0};
		OK(eval_in(&b, 15, "sh", &c) == BNF_CONST_OK && bnf_tview_read_i64(&c.view, v) == 0 && v[0] == 2 &&
		   v[2] == 4, "bnf_tview_read_i64 reads a computed int64 view");
		bnf_const_release(&c);
	}
	tb_end(&b);
}

static void test_arith(void)
{
	static const float m[3] = {1, 2, 3}, n[3] = {10, 20, 30}, q[4] = {10, 20, 30, 40}, tiny = 0x1p-30f, uno = 1;
	static const int64_t d3 = 3, d1331[4] = {1, 3, 1, 1}, d31[2] = {3, 1}, d14[2] = {1, 4}, d2 = 2, one = 1;
	tb b;

	tb_start(&b);
	init_f(&b, "m", 1, &d3, m);
	init_f(&b, "n", 4, d1331, n);
	init_f(&b, "p", 2, d31, m);
	init_f(&b, "q", 2, d14, q);
	init_f(&b, "q4", 1, (int64_t[]){4}, q);
	init_f(&b, "tiny", 1, &one, &tiny);
	init_f(&b, "uno", 1, &one, &uno);
	init_i(&b, "ia", 1, &d2, (int64_t[]){5, -3});
	init_i(&b, "ib", 0, NULL, (int64_t[]){4});
	init_i(&b, "ibig", 1, &one, (int64_t[]){(int64_t)1 << 53});
	node(&b, "Mul", "mn", "m", "n", NULL);
	node(&b, "Add", "pq", "p", "q", NULL);
	node(&b, "Add", "bad", "m", "q4", NULL);
	node(&b, "Add", "r", "uno", "tiny", NULL);
	node(&b, "Mul", "im", "ia", "ib", NULL);
	node(&b, "Div", "id", "ia", "ib", NULL);
	node(&b, "Add", "ix", "ibig", "ib", NULL);
	CHECK(&b, 13, "mn", BNF_DT_FLOAT, 4, ((int64_t[]){1, 3, 1, 3}),
	      ((double[]){10, 20, 30, 20, 40, 60, 30, 60, 90}), "[3] * [1,3,1,1] broadcasts to [1,3,1,3]");
	CHECK(&b, 13, "pq", BNF_DT_FLOAT, 2, ((int64_t[]){3, 4}),
	      ((double[]){11, 21, 31, 41, 12, 22, 32, 42, 13, 23, 33, 43}), "[3,1] + [1,4] is [3,4]");
	FAILS(&b, 13, "bad", BNF_CONST_INVALID, "[3] + [4] does not broadcast: invalid");
	CHECK(&b, 13, "r", BNF_DT_FLOAT, 1, &one, ((double[]){1}), "float32 1 + 2^-30 rounds to 1");
	CHECK(&b, 13, "im", BNF_DT_INT64, 1, &d2, ((double[]){20, -12}), "int64 [2] * scalar");
	FAILS(&b, 13, "id", BNF_CONST_NOT_CONSTANT, "int64 Div is not evaluated");
	FAILS(&b, 13, "ix", BNF_CONST_NOT_CONSTANT, "an int64 of 2^53 is not evaluated");
	tb_end(&b);
}

/* Dims of 2^53 and more: Shape refuses them (they would come back
 * rounded, or past INT64_MAX), and an empty tensor whose other dims
 * multiply past 2^63 moves without a product overflowing; a Slice step of
 * 2^62 along a dim of 1 or 4. */
static void test_huge_dims(void)
{
	static const int64_t big = (int64_t)1 << 62, dz[3] = {0, big, 4}, dg[3] = {3, big, 0}, da[2] = {0, big},
			     dw[3] = {(int64_t)1 << 40, 3, 0};
	static const float k[4] = {1, 2, 3, 4};
	bnf_shape sx = {.rank = 2, .dims = {{.value = 1}, {.value = INT64_MAX}}};
	tb b;

	tb_start(&b);
	init_f(&b, "z", 3, dz, k);
	init_f(&b, "g", 3, dg, k);
	init_f(&b, "a", 2, da, k);
	init_f(&b, "w", 3, dw, k);
	init_f(&b, "k", 4, ((int64_t[]){1, 4, 1, 1}), k);
	ints(&b, "none", 0, (int64_t[]){0});
	ints(&b, "zero", 1, (int64_t[]){0});
	ints(&b, "one", 1, (int64_t[]){1});
	ints(&b, "three", 1, (int64_t[]){3});
	ints(&b, "four", 1, (int64_t[]){4});
	ints(&b, "lowest", 1, (int64_t[]){INT64_MIN});
	ints(&b, "big", 1, &big);
	ints(&b, "mbig", 1, (int64_t[]){-big});
	ints(&b, "ez_shape", 3, dz);
	node(&b, "Shape", "shz", "z", NULL);
	node(&b, "Shape", "shx", "x", NULL);
	attr_i(&b, node(&b, "Concat", "cc", "a", "a", NULL), "axis", 1);
	attr_i(&b, node(&b, "Concat", "cz", "z", "z", NULL), "axis", 0);
	node(&b, "Transpose", "tz", "z", NULL);
	node(&b, "Slice", "sz", "z", "zero", "one", "one", "big", NULL);
	node(&b, "Add", "az", "z", "z", NULL);
	node(&b, "Expand", "ez", "z", "ez_shape", NULL);
	attr_i(&b, node(&b, "Flatten", "fz2", "z", NULL), "axis", 2);
	node(&b, "Flatten", "fz1", "z", NULL);
	attr_i(&b, node(&b, "Gather", "gz", "g", "none", NULL), "axis", 2);
	attr_i(&b, node(&b, "Gather", "gw", "w", "zero", NULL), "axis", 1);
	node(&b, "Slice", "sk0", "k", "zero", "one", "zero", "big", NULL);
	node(&b, "Slice", "sk1", "k", "one", "four", "one", "big", NULL);
	node(&b, "Slice", "sk2", "k", "three", "lowest", "one", "mbig", NULL);
	b.g.n_input = 1;
	b.g.input = tb_alloc(&b, sizeof(void *));
	b.g.input[0] = tb_alloc(&b, sizeof(Onnx__ValueInfoProto));
	onnx__value_info_proto__init(b.g.input[0]);
	b.g.input[0]->name = "x";
	tb_build(&b, 13);
	if (bnf_graph_set_shape(&b.gi, "x", &sx) < 0)
		abort();
	FAILS(&b, 13, "shz", BNF_CONST_NOT_CONSTANT, "Shape of an empty [0,2^62,4] is not evaluated");
	FAILS(&b, 13, "shx", BNF_CONST_NOT_CONSTANT, "Shape of a value declared [1,INT64_MAX] is not evaluated");
	FAILS(&b, 13, "cc", BNF_CONST_TOO_LARGE, "Concat of two [0,2^62] on axis 1: the dims add up past INT64_MAX");
	CHECK(&b, 13, "cz", BNF_DT_FLOAT, 3, dz, NULL, "Concat of two [0,2^62,4] on axis 0 is [0,2^62,4]");
	CHECK(&b, 13, "tz", BNF_DT_FLOAT, 3, ((int64_t[]){4, big, 0}), NULL, "Transpose of [0,2^62,4] is [4,2^62,0]");
	CHECK(&b, 13, "sz", BNF_DT_FLOAT, 3, ((int64_t[]){0, 1, 4}), NULL, "Slice of [0,2^62,4], step 2^62 on axis 1");
	CHECK(&b, 13, "az", BNF_DT_FLOAT, 3, dz, NULL, "[0,2^62,4] + [0,2^62,4] is empty");
	CHECK(&b, 13, "ez", BNF_DT_FLOAT, 3, dz, NULL, "Expand of [0,2^62,4] to its own shape");
	CHECK(&b, 13, "fz2", BNF_DT_FLOAT, 2, ((int64_t[]){0, 4}), NULL, "Flatten axis 2 of [0,2^62,4] is [0,4]");
	FAILS(&b, 13, "fz1", BNF_CONST_TOO_LARGE, "Flatten axis 1 of [0,2^62,4] would have a dim of 2^64");
	CHECK(&b, 13, "gz", BNF_DT_FLOAT, 3, dg, NULL, "Gather of no indices on axis 2 of [3,2^62,0], at once");
	CHECK(&b, 13, "gw", BNF_DT_FLOAT, 3, ((int64_t[]){(int64_t)1 << 40, 1, 0}), NULL,
	      "Gather of [2^40,3,0] on axis 1 is empty, at once");
	CHECK(&b, 13, "sk0", BNF_DT_FLOAT, 4, ((int64_t[]){1, 4, 1, 1}), ((double[]){1, 2, 3, 4}),
	      "Slice step 2^62 along a dim of 1 takes it");
	CHECK(&b, 13, "sk1", BNF_DT_FLOAT, 4, ((int64_t[]){1, 1, 1, 1}), ((double[]){2}), "Slice 1..4 step 2^62 takes one");
	CHECK(&b, 13, "sk2", BNF_DT_FLOAT, 4, ((int64_t[]){1, 1, 1, 1}), ((double[]){4}),
	      "Slice 3 down to INT64_MIN step -2^62 takes one");
	tb_end(&b);
}

/* x_k = Concat(x_{k-1}, x_{k-1}): 2^k - 1 nodes to evaluate for x_k. */
static void concat_tree(tb *b, int levels)
{
	static char names[20][16]; /* room for "x" and any int */
	static const float z = 0;
	static const int64_t one = 1;

	snprintf(names[0], sizeof(names[0]), "x0");
	init_f(b, names[0], 1, &one, &z);
	for (int k = 1; k <= levels; k++) {
		snprintf(names[k], sizeof(names[k]), "x%d", k);
		attr_i(b, node(b, "Concat", names[k], names[k - 1], names[k - 1], NULL), "axis", 0);
	}
}

static void test_bounds(void)
{
	static char names[24][16]; /* room for "y" and any int */
	static const float z = 0;
	static const int64_t one = 1;
	bnf_const c;
	clock_t t0;
	double secs;
	tb b;

	tb_start(&b);
	concat_tree(&b, 10);
	CHECK(&b, 13, "x10", BNF_DT_FLOAT, 1, ((int64_t[]){1024}), ((double[1024]){0}), "a Concat tree of 1023 nodes evaluates");
	tb_end(&b);

	tb_start(&b);
	concat_tree(&b, 15);
	t0 = clock();
	FAILS(&b, 13, "x15", BNF_CONST_NOT_CONSTANT, "a Concat tree of 32767 nodes is over the budget");
	secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
	OK(secs < 2.0, "... and gives up quickly (%.3f s)", secs);
	tb_end(&b);

	tb_start(&b);
	init_f(&b, "y0", 1, &one, &z);
	for (int k = 1; k <= 20; k++) {
		snprintf(names[k], sizeof(names[k]), "y%d", k);
		node(&b, "Neg", names[k], k == 1 ? "y0" : names[k - 1], NULL);
	}
	CHECK(&b, 13, "y16", BNF_DT_FLOAT, 1, &one, ((double[]){0}), "16 Neg nodes deep evaluates");
	FAILS(&b, 13, "y17", BNF_CONST_NOT_CONSTANT, "17 nodes deep does not");
	tb_end(&b);

	tb_start(&b);
	init_f(&b, "a", 1, (int64_t[]){5}, (float[]){1, 2, 3, 4, 5});
	attr_i(&b, node(&b, "Concat", "aa", "a", "a", NULL), "axis", 0);
	tb_build(&b, 13);
	b.gi.eval_max_bytes = 8 * sizeof(double);
	OK(bnf_graph_const_eval(&b.gi, "aa", &c) == BNF_CONST_TOO_LARGE && strstr(c.msg, "aa") && strstr(c.msg, "10"),
	   "10 values over a cap of 8 are too large, named in the message: %s", c.msg);
	bnf_const_release(&c);
	tb_end(&b);
}

/* A smaller cap for one query, and the run's budget shared by queries. */
static void test_run_budget(void)
{
	bnf_eval_spend spend = {0};
	bnf_const c;
	int runs = 0;
	tb b;

	tb_start(&b);
	init_f(&b, "a", 1, (int64_t[]){5}, (float[]){1, 2, 3, 4, 5});
	ints(&b, "s51", 2, (int64_t[]){5, 1});
	attr_i(&b, node(&b, "Concat", "aa", "a", "a", NULL), "axis", 0);
	ints(&b, "ax1", 1, (int64_t[]){1});
	node(&b, "Unsqueeze", "u", "a", "ax1", NULL);
	node(&b, "Reshape", "rr", "aa", "s51", NULL);
	tb_build(&b, 13);
	b.gi.eval_max_bytes = 16 * sizeof(double);
	OK(bnf_graph_const_eval_capped(&b.gi, "aa", 8 * sizeof(double), &c) == BNF_CONST_TOO_LARGE,
	   "10 values over a query's cap of 8 are too large: %s", c.msg);
	bnf_const_release(&c);
	OK(bnf_graph_const_eval_capped(&b.gi, "aa", SIZE_MAX, &c) == BNF_CONST_OK && c.view.numel == 10,
	   "... and evaluated with a query's cap above the graph's 16 values");
	bnf_const_release(&c);
	b.gi.eval_max_bytes = 8 * sizeof(double);
	OK(bnf_graph_const_eval_capped(&b.gi, "aa", SIZE_MAX, &c) == BNF_CONST_TOO_LARGE,
	   "a query's cap never lifts the graph's (8 values)");
	bnf_const_release(&c);
	b.gi.eval_max_bytes = 16 * sizeof(double);

	/* Each query reads 5 + 5 values and makes 10: 160 bytes of a run's 4 x 128. */
	b.gi.eval_spend = &spend;
	while (runs < 10 && bnf_graph_const_eval(&b.gi, "aa", &c) == BNF_CONST_OK) {
		bnf_const_release(&c);
		runs++;
	}
	OK(runs == 3 && spend.bytes == 480 && strstr(c.msg, "run's budget"),
	   "the run's budget of 512 bytes allows 3 queries of 160 (%d, %zu bytes): %s", runs, spend.bytes, c.msg);
	bnf_const_release(&c);
	OK(bnf_graph_const_eval(&b.gi, "u", &c) == BNF_CONST_OK && spend.bytes == 480,
	   "an Unsqueeze of a tensor kept where it is costs no bytes (%zu)", spend.bytes);
	bnf_const_release(&c);
	OK(bnf_graph_const_eval(&b.gi, "rr", &c) == BNF_CONST_TOO_LARGE,
	   "a Reshape of a computed value is refused once the budget is spent");
	bnf_const_release(&c);

	spend = (bnf_eval_spend){.nodes = BNF_EVAL_RUN_NODES - 1};
	OK(bnf_graph_const_eval(&b.gi, "u", &c) == BNF_CONST_OK, "the last node evaluation of a run is made");
	bnf_const_release(&c);
	OK(bnf_graph_const_eval(&b.gi, "u", &c) == BNF_CONST_NOT_CONSTANT && strstr(c.msg, "run's budget") &&
	   spend.nodes == BNF_EVAL_RUN_NODES,
	   "the next is not: %s", c.msg);
	bnf_const_release(&c);
	tb_end(&b);
}

int main(void)
{
	test_unsqueeze_squeeze(11);
	test_unsqueeze_squeeze(13);
	test_flatten_transpose_reshape();
	test_expand_concat();
	test_cast();
	test_slice();
	test_gather_shape();
	test_arith();
	test_huge_dims();
	test_bounds();
	test_run_budget();
	return tap_done();
}
