/* Which BatchNormalization nodes fold, and the folding arithmetic.
 * Pure: reads the graph index and tensors, never edits, writes or prints. */
#ifndef BNF_FOLD_H
#define BNF_FOLD_H

#include <stdbool.h>
#include <stddef.h>

#include "graph.h"

/* Every reason a BN is left in place: stable snake_case codes used in the
 * report (src/report.schema.json) and documented in README.md. */
#define BNF_REASONS(X)                                                                        \
	X(BNF_FOLD, "fold", "folds")                                                          \
	X(BNF_NO_LINEAR_PRODUCER, "no_linear_producer",                                       \
	  "input 0 is not the output of a Conv, so there is no weight to fold into")          \
	X(BNF_LAYER_OUTPUT_HAS_OTHER_CONSUMERS, "layer_output_has_other_consumers",           \
	  "the layer's output is also read by another node, which needs the unfolded values")\
	X(BNF_LAYER_OUTPUT_IS_GRAPH_OUTPUT, "layer_output_is_graph_output",                   \
	  "the layer's output is also a graph output")                                        \
	X(BNF_BN_MALFORMED, "bn_malformed", "the BatchNormalization lacks one of its 5 inputs")\
	X(BNF_BN_TRAINING_MODE, "bn_training_mode",                                           \
	  "the BatchNormalization computes batch statistics (training mode or its running "   \
	  "statistics outputs are used)")                                                     \
	X(BNF_BN_NOT_SPATIAL, "bn_not_spatial", "spatial=0: parameters per activation, not per channel") \
	X(BNF_PARAM_NOT_CONSTANT, "param_not_constant", "a BN parameter is computed or supplied at run time") \
	X(BNF_PARAM_IS_GRAPH_INPUT, "param_is_graph_input",                                   \
	  "a parameter or weight is an initializer also listed as a graph input (IR >= 4), "  \
	  "so a caller may override it; --fold-overridable folds it anyway")                  \
	X(BNF_WEIGHT_NOT_CONSTANT, "weight_not_constant", "the layer's weight or bias is not a constant") \
	X(BNF_BAD_WEIGHT_SHAPE, "bad_weight_shape", "the layer's weight or bias has a shape the layer cannot have") \
	X(BNF_CHANNEL_MISMATCH, "channel_mismatch", "a parameter's length differs from the layer's output channels") \
	X(BNF_UNSUPPORTED_DTYPE, "unsupported_dtype", "a weight or parameter is not float32/float64/float16/bfloat16") \
	X(BNF_DTYPE_MISMATCH, "dtype_mismatch", "the layer's weight and bias have different types") \
	X(BNF_UNSUPPORTED_STORAGE, "unsupported_storage",                                     \
	  "a tensor is stored in a way this version does not rewrite (external data, rank > 8, "\
	  "a new tensor inside a subgraph of an IR < 4 model)")                               \
	X(BNF_WEIGHT_TOO_LARGE, "weight_too_large",                                           \
	  "the folded weight must be a new tensor (the weight is shared or made by "          \
	  "ConstantOfShape) and new tensors would exceed the input's size and 256 MiB")       \
	X(BNF_NONPOSITIVE_VARIANCE, "nonpositive_variance", "var + epsilon <= 0 for some channel") \
	X(BNF_NON_FINITE_PARAM, "non_finite_param", "NaN or Inf in a parameter, weight or bias") \
	X(BNF_OVERFLOW, "overflow", "a folded value does not fit the tensor's type")

typedef enum {
#define BNF_REASON_ENUM(id, code, text) id,
	BNF_REASONS(BNF_REASON_ENUM)
#undef BNF_REASON_ENUM
	BNF_REASON_COUNT
} bnf_reason;

/* "no_linear_producer", ... */
const char *bnf_reason_code(bnf_reason r);
/* One-line explanation of the code. */
const char *bnf_reason_text(bnf_reason r);

/* --- arithmetic, on plain arrays --- */

/* s[c] = gamma[c] / sqrt(var[c] + eps) for n channels, in double.
 * Returns BNF_NON_FINITE_PARAM when any input or eps is NaN/Inf,
 * BNF_NONPOSITIVE_VARIANCE when var + eps <= 0, else BNF_FOLD; *bad is set
 * to the first offending channel. */
bnf_reason bnf_bn_scale(const double *gamma, const double *mean, const double *var,
			const double *beta, double eps, size_t n, double *s, size_t *bad);

/* out[c] = (b[c] - mean[c]) * s[c] + beta[c]; b may be NULL (no bias: 0). */
void bnf_bn_bias(const double *b, const double *mean, const double *beta, const double *s,
		 size_t n, double *out);

/* Where the output channel lives in a weight tensor laid out as rows of
 * `per_group * inner` elements: element i belongs to channel
 * (row / rows_per_group) * per_group + (i / inner) % per_group,
 * with row = i / (per_group * inner).
 *   Conv [C_out, C_in/g, k...]:           inner = prod(dims[1:]), per_group = C_out, rows_per_group = 1
 *   ConvTranspose [C_in, C_out/g, k...]:   inner = prod(dims[2:]), per_group = C_out/g, rows_per_group = C_in/g
 *   Gemm B [K, N] (transB = 0):            inner = 1, per_group = N, rows_per_group = K */
typedef struct bnf_layout {
	size_t inner;
	size_t per_group;
	size_t rows_per_group;
	size_t channels;
} bnf_layout;

size_t bnf_layout_channel(const bnf_layout *l, size_t i);

/* A payload transform: out[i] = in[i] * scale[channel(i)], stored as dtype. */
typedef struct bnf_transform {
	int dtype;
	bnf_layout layout;
	const double *scale;
} bnf_transform;

/* Apply the transform to elements [first, first + n) of `src` and store them,
 * rounded once, into out (n * dtype size bytes). */
void bnf_transform_apply(const bnf_transform *tf, const bnf_tview *src, size_t first, size_t n,
			 double *scratch, unsigned char *out);

/* --- the decision for one BN --- */

typedef struct bnf_plan {
	bnf_reason reason;
	char message[400];
	int bn_node;
	int layer_node;       /* -1 when there is no candidate layer */
	const char *pattern;  /* "conv_bn" */
	size_t channels;
	int dtype;            /* weight dtype */
	double eps;
	bnf_const weight;
	bnf_const bias;       /* valid when has_bias */
	bool has_bias;
	bnf_transform transform;
	double *scale;        /* channels values */
	double *new_bias;     /* channels values, unrounded */
} bnf_plan;

/* Decide whether node bn_index of gi (a BatchNormalization) folds, filling p.
 * Returns 0 with p->reason set (BNF_FOLD or why not), or -1 after
 * bnf_error() when the model is malformed (inconsistent tensor data) or
 * memory runs out. */
int bnf_plan_bn(const bnf_graph *gi, int bn_index, bnf_plan *p);
void bnf_plan_free(bnf_plan *p);

#endif
