/* Inside shape inference: what one op's rule is given, the helpers the
 * rules share (shapes.c), and the rules themselves (shapes_nn.c: arithmetic,
 * matrix, convolution and pooling ops; shapes_layout.c: ops that move,
 * select or make data; shapes_slice.c: Slice, Pad, Resize, whose sizes
 * come from per-axis lists).  Only shapes*.c and tests include it. */
#ifndef BNF_SHAPES_INTERNAL_H
#define BNF_SHAPES_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "graph.h"
#include "shape.h"

/* Outputs of one node given shapes; the rest stay unknown (Split, Loop...). */
#define BNF_SHAPE_MAX_OUT 8
/* Longest integer list a rule reads from an attribute or a constant:
 * two per axis (pads). */
#define BNF_SHAPE_MAX_INTS (2 * BNF_SHAPE_MAX_RANK)

enum {
	BNF_ELEM_FLOAT = 1,
	BNF_ELEM_INT64 = 7,
	BNF_ELEM_BOOL = 9,
};

/* One node whose output shapes a rule works out. */
typedef struct bnf_shape_node {
	const bnf_graph *gi;
	const Onnx__NodeProto *node;
	int opset;               /* default-domain opset of the graph */
} bnf_shape_node;

/* A rule: fill out[0..n_out) (each unknown on entry, n_out <=
 * BNF_SHAPE_MAX_OUT) from the node's inputs, attributes and constants,
 * following ONNX's inference for the op; leave an output unknown whenever
 * the inputs are unknown, inconsistent or out of range.  Output 0's
 * elem_type is then set from the table, unless the table says the rule
 * sets it; the rule sets those of the other outputs. */
typedef void (*bnf_shape_rule)(const bnf_shape_node *sn, bnf_shape *out, size_t n_out);

/* --- helpers (shapes.c) --- */

/* True when op_type (default domain) is one whose output shapes the table
 * of rules infers. */
bool bnf_shapes_covers(const char *op_type);

/* The shape of input i, true when its rank is known (false for a missing
 * or empty input). */
bool bnf_shape_input(const bnf_shape_node *sn, size_t i, bnf_shape *s);
/* True when input i is present (a non-empty name). */
bool bnf_shape_has_input(const bnf_shape_node *sn, size_t i);
/* The integers of constant input i (rank 0 or 1, int32 or int64, at most
 * cap of them) into v: their number, or -1 when the input is missing, not
 * a constant bnfold resolves, or not such a tensor. */
int bnf_shape_const_ints(const bnf_shape_node *sn, size_t i, int64_t *v, size_t cap);
/* The same for a 1-D float constant (Resize scales) read as doubles. */
int bnf_shape_const_floats(const bnf_shape_node *sn, size_t i, double *v, size_t cap);
/* The integers of attribute name (at most cap copied to v): how many it
 * holds (possibly more than cap), -1 when it is absent, -2 when it is not
 * a list of integers. */
int bnf_shape_attr_ints(const Onnx__NodeProto *node, const char *name, int64_t *v, size_t cap);
/* The string attribute name equals s (absent: def is compared instead). */
bool bnf_shape_attr_is(const Onnx__NodeProto *node, const char *name, const char *def, const char *s);
/* axis in [-rank, rank) made non-negative into *out; false out of range. */
bool bnf_shape_axis(int64_t axis, int rank, int *out);
/* a*b and a+b of sizes (>= 0) into *r; false on overflow or a negative size. */
bool bnf_dim_mul(int64_t a, int64_t b, int64_t *r);
bool bnf_dim_add(int64_t a, int64_t b, int64_t *r);
/* *out of rank r with every dim unknown: what ONNX gives when the rank
 * follows from the input but the sizes need a list it cannot read. */
void bnf_shape_rank_only(bnf_shape *out, int r);
/* A dim of known size v (v >= 0), or unknown when v < 0. */
bnf_dim bnf_dim_of(int64_t v);
/* ONNX's multidirectional broadcasting of n shapes of known rank into
 * *out: false when they are incompatible or the rank exceeds the limit. */
bool bnf_shape_broadcast(const bnf_shape *in, size_t n, bnf_shape *out);

/* --- rules (shapes_nn.c) --- */
void bnf_rule_same(const bnf_shape_node *sn, bnf_shape *out, size_t n_out);
void bnf_rule_same_all(const bnf_shape_node *sn, bnf_shape *out, size_t n_out);
void bnf_rule_batchnorm(const bnf_shape_node *sn, bnf_shape *out, size_t n_out);
void bnf_rule_broadcast(const bnf_shape_node *sn, bnf_shape *out, size_t n_out);
void bnf_rule_broadcast7(const bnf_shape_node *sn, bnf_shape *out, size_t n_out);
void bnf_rule_broadcast8(const bnf_shape_node *sn, bnf_shape *out, size_t n_out);
void bnf_rule_where(const bnf_shape_node *sn, bnf_shape *out, size_t n_out);
void bnf_rule_matmul(const bnf_shape_node *sn, bnf_shape *out, size_t n_out);
void bnf_rule_gemm(const bnf_shape_node *sn, bnf_shape *out, size_t n_out);
void bnf_rule_conv(const bnf_shape_node *sn, bnf_shape *out, size_t n_out);
void bnf_rule_pool(const bnf_shape_node *sn, bnf_shape *out, size_t n_out);
void bnf_rule_conv_transpose(const bnf_shape_node *sn, bnf_shape *out, size_t n_out);
void bnf_rule_global_pool(const bnf_shape_node *sn, bnf_shape *out, size_t n_out);
void bnf_rule_cast(const bnf_shape_node *sn, bnf_shape *out, size_t n_out);
void bnf_rule_reduce(const bnf_shape_node *sn, bnf_shape *out, size_t n_out);

/* --- rules (shapes_layout.c) --- */
void bnf_rule_reshape(const bnf_shape_node *sn, bnf_shape *out, size_t n_out);
void bnf_rule_transpose(const bnf_shape_node *sn, bnf_shape *out, size_t n_out);
void bnf_rule_squeeze(const bnf_shape_node *sn, bnf_shape *out, size_t n_out);
void bnf_rule_unsqueeze(const bnf_shape_node *sn, bnf_shape *out, size_t n_out);
void bnf_rule_flatten(const bnf_shape_node *sn, bnf_shape *out, size_t n_out);
void bnf_rule_concat(const bnf_shape_node *sn, bnf_shape *out, size_t n_out);
void bnf_rule_expand(const bnf_shape_node *sn, bnf_shape *out, size_t n_out);
void bnf_rule_gather(const bnf_shape_node *sn, bnf_shape *out, size_t n_out);
void bnf_rule_shape(const bnf_shape_node *sn, bnf_shape *out, size_t n_out);
void bnf_rule_size(const bnf_shape_node *sn, bnf_shape *out, size_t n_out);
void bnf_rule_tile(const bnf_shape_node *sn, bnf_shape *out, size_t n_out);
void bnf_rule_constant_of_shape(const bnf_shape_node *sn, bnf_shape *out, size_t n_out);
void bnf_rule_constant(const bnf_shape_node *sn, bnf_shape *out, size_t n_out);
void bnf_rule_depth_space(const bnf_shape_node *sn, bnf_shape *out, size_t n_out);

/* --- rules (shapes_slice.c) --- */
void bnf_rule_slice(const bnf_shape_node *sn, bnf_shape *out, size_t n_out);
void bnf_rule_pad(const bnf_shape_node *sn, bnf_shape *out, size_t n_out);
void bnf_rule_resize(const bnf_shape_node *sn, bnf_shape *out, size_t n_out);

#endif
