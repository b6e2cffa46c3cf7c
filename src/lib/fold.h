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
	  "input 0 is not the output of a Conv, ConvTranspose, Gemm or MatMul, and the BN "   \
	  "does not feed a Conv alone: there is no weight to fold into")                      \
	X(BNF_LAYER_OUTPUT_HAS_OTHER_CONSUMERS, "layer_output_has_other_consumers",           \
	  "the layer's output is also read by another node, which needs the unfolded values")\
	X(BNF_LAYER_OUTPUT_IS_GRAPH_OUTPUT, "layer_output_is_graph_output",                   \
	  "the layer's output is also a graph output")                                        \
	X(BNF_BN_MALFORMED, "bn_malformed", "the BatchNormalization lacks one of its 5 inputs")\
	X(BNF_BN_TRAINING_MODE, "bn_training_mode",                                           \
	  "the BatchNormalization computes batch statistics (training mode or its running "   \
	  "statistics outputs are used)")                                                     \
	X(BNF_BN_NOT_SPATIAL, "bn_not_spatial", "spatial=0: parameters per activation, not per channel") \
	X(BNF_ATTRIBUTE_REFERENCE, "attribute_reference",                                     \
	  "an attribute of the BN or its layer refers to an attribute of the function it is "  \
	  "in (ref_attr_name), so its value is set per call")                                 \
	X(BNF_PARAM_NOT_CONSTANT, "param_not_constant",                                       \
	  "a BN parameter is computed or supplied at run time, or assigned by training_info")  \
	X(BNF_PARAM_IS_GRAPH_INPUT, "param_is_graph_input",                                   \
	  "a parameter or weight is an initializer also listed as a graph input (IR >= 4), "  \
	  "so a caller may override it; --fold-overridable folds it anyway")                  \
	X(BNF_WEIGHT_NOT_CONSTANT, "weight_not_constant", "the layer's weight or bias (Gemm: B or C; MatMul: B) is not a constant") \
	X(BNF_BAD_WEIGHT_SHAPE, "bad_weight_shape", "the layer's weight or bias has a shape the fold cannot use") \
	X(BNF_CHANNEL_MISMATCH, "channel_mismatch", "a parameter's length differs from the layer's channels") \
	X(BNF_UNSUPPORTED_DTYPE, "unsupported_dtype", "a weight or parameter is not float32/float64/float16/bfloat16") \
	X(BNF_DTYPE_MISMATCH, "dtype_mismatch", "the layer's weight and bias have different types") \
	X(BNF_UNSUPPORTED_STORAGE, "unsupported_storage",                                     \
	  "a tensor is stored in a way this version does not rewrite (rank > 8, "              \
	  "a new tensor inside a subgraph of an IR < 4 model or inside a function body)")     \
	X(BNF_WEIGHT_TOO_LARGE, "weight_too_large",                                           \
	  "the folded weight must be a new tensor (the weight is shared or made by "          \
	  "ConstantOfShape) and new tensors would exceed the input's size and 256 MiB")       \
	X(BNF_NONPOSITIVE_VARIANCE, "nonpositive_variance", "var + epsilon <= 0 for some channel") \
	X(BNF_NON_FINITE_PARAM, "non_finite_param", "NaN or Inf in a parameter, weight or bias") \
	X(BNF_OVERFLOW, "overflow", "a folded value does not fit the tensor's type")          \
	X(BNF_BN_BEFORE_CONV_WITH_PADDING, "bn_before_conv_with_padding",                     \
	  "the BN feeds a Conv that pads its input; the BN's shift would wrongly reach the padded border") \
	X(BNF_SHAPE_UNKNOWN, "shape_unknown",                                                 \
	  "the rank of an input is not recorded in the model, so the channel axis is unknown") \
	X(BNF_UNSUPPORTED_OPSET, "unsupported_opset",                                         \
	  "the rewrite needs broadcasting that this opset (< 7) does not have")

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

/* --- the decision for one node --- */

typedef enum {
	BNF_ABSORB_OUTPUT, /* the node after the layer goes; the layer takes its output name */
	BNF_ABSORB_INPUT,  /* a BN before the layer goes; the layer reads the BN's input */
} bnf_absorb;

typedef struct bnf_plan {
	bnf_reason reason;
	char message[400];
	int node;             /* the BatchNormalization / Mul / Add node that goes away */
	bool is_bn;
	int layer_node;       /* the layer it folds into, -1 when there is none */
	int tail_node;        /* BNF_ABSORB_OUTPUT: the node that takes over the removed node's
			       * output name: the layer, or the last of Transpose/Identity nodes
			       * between it and the BN that together move no axis */
	const char *pattern;  /* "conv_bn", "convtranspose_bn", "gemm_bn", "matmul_bn", "bn_conv", "conv_mul", ... */
	bnf_absorb absorb;
	size_t channels;      /* BN / per-channel constant length */
	int dtype;            /* weight dtype */
	double eps;
	bnf_const weight;
	bnf_const bias;       /* the layer's current bias (Gemm: C), valid when has_bias */
	bool has_bias;
	bool scale_weight;    /* false when only the bias changes (Add) */
	bool write_bias;      /* false when the bias stays absent (Mul on a layer without bias) */
	size_t bias_len;      /* elements of the new bias: the layer's output channels */
	bnf_transform transform;
	double *scale;        /* per channel of transform.layout */
	double *new_bias;     /* bias_len values, unrounded */
	const char *new_op_type; /* "Gemm" when a MatMul becomes one, else NULL */
	bool reset_gemm_beta; /* the Gemm's beta attribute must become 1 */
} bnf_plan;

/* Decide whether the BatchNormalization at node index `node` of gi folds
 * into the layer before it (Conv, ConvTranspose, Gemm, MatMul) or, failing
 * that, into a Conv after it.  Returns 0 with p->reason set (BNF_FOLD or
 * why not), or -1 after bnf_error() when the model is malformed
 * (inconsistent tensor data) or memory runs out. */
int bnf_plan_bn(const bnf_graph *gi, int node, bnf_plan *p);

/* The same for a Mul or Add of a per-channel constant after a Conv or
 * ConvTranspose (the form some exporters give an inference BN).  A reason
 * other than BNF_FOLD only means "leave it": such nodes are not reported. */
int bnf_plan_affine(const bnf_graph *gi, int node, bnf_plan *p);

void bnf_plan_free(bnf_plan *p);

#endif
