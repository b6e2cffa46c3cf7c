/* What bnfold knows as data: the reasons a node is left in place, and the
 * patterns it folds (which layer, which node, on which side), one row each.
 * The plan carries these enums; verify, the surgery and the report read the
 * rows instead of looking at op-type strings again. */
#ifndef BNF_PATTERNS_H
#define BNF_PATTERNS_H

#include <stdbool.h>

/* Every reason a BN (or a Mul/Add next to a layer) is left in place: stable snake_case codes used in the
 * report (src/report.schema.json) and documented in docs/reasons.md. */
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
	  "the rewrite needs broadcasting that this opset (< 7) does not have")                \
	X(BNF_CONSTANT_INVALID, "constant_invalid",                                           \
	  "a constant the model computes from others is invalid (a Reshape to a wrong "       \
	  "element count, an index out of range, shapes that do not broadcast), so the model " \
	  "fails there at run time")                                                          \
	X(BNF_CONSTANT_TOO_LARGE, "constant_too_large",                                       \
	  "a constant computed from others (Expand, Concat, Tile, ...) would exceed the cap "  \
	  "on new tensors, or what is left of the run's budget for computed values")           \
	X(BNF_CHANNEL_AXIS_MISMATCH, "channel_axis_mismatch",                                 \
	  "the layer's output channels do not lie on the node's channel axis: a MatMul "       \
	  "output of rank other than 2, or Reshape/Transpose/Squeeze/Unsqueeze nodes between " \
	  "them that move, split or merge the channels")                                      \
	X(BNF_SHAPE_CONFLICT, "shape_conflict",                                               \
	  "the model declares a shape (value_info, graph output) that contradicts the one its "\
	  "nodes give, so nothing about that value is trusted")                               \
	X(BNF_MATMUL_NOT_2D, "matmul_not_2d",                                                 \
	  "folding adds a bias to a MatMul, which must become a Gemm for it, and a Gemm "      \
	  "takes rank-2 input only")

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

/* The layers bnfold folds into. */
typedef enum {
	BNF_LAYER_NONE,
	BNF_LAYER_CONV,          /* W [C_out, C_in/group, k...] */
	BNF_LAYER_CONVTRANSPOSE, /* W [C_in, C_out/group, k...] */
	BNF_LAYER_GEMM,          /* B [K, N], or [N, K] with transB */
	BNF_LAYER_MATMUL,        /* B [K, N]; becomes a Gemm when it takes a bias */
} bnf_layer_kind;

/* The node that goes into the layer. */
typedef enum {
	BNF_OP_BN,  /* BatchNormalization: (x - mean) / sqrt(var + eps) * scale + B */
	BNF_OP_MUL, /* Mul by a per-channel constant */
	BNF_OP_ADD, /* Add of a per-channel constant */
} bnf_op_kind;

/* Every pattern, in report order. */
#define BNF_PATTERNS(P)                                                                  \
	P(BNF_PAT_CONV_BN, "conv_bn", BNF_LAYER_CONV, BNF_OP_BN, false)                  \
	P(BNF_PAT_CONVTRANSPOSE_BN, "convtranspose_bn", BNF_LAYER_CONVTRANSPOSE, BNF_OP_BN, false) \
	P(BNF_PAT_GEMM_BN, "gemm_bn", BNF_LAYER_GEMM, BNF_OP_BN, false)                  \
	P(BNF_PAT_MATMUL_BN, "matmul_bn", BNF_LAYER_MATMUL, BNF_OP_BN, false)            \
	P(BNF_PAT_BN_CONV, "bn_conv", BNF_LAYER_CONV, BNF_OP_BN, true)                   \
	P(BNF_PAT_CONV_MUL, "conv_mul", BNF_LAYER_CONV, BNF_OP_MUL, false)               \
	P(BNF_PAT_CONV_ADD, "conv_add", BNF_LAYER_CONV, BNF_OP_ADD, false)               \
	P(BNF_PAT_CONVTRANSPOSE_MUL, "convtranspose_mul", BNF_LAYER_CONVTRANSPOSE, BNF_OP_MUL, false) \
	P(BNF_PAT_CONVTRANSPOSE_ADD, "convtranspose_add", BNF_LAYER_CONVTRANSPOSE, BNF_OP_ADD, false) \
	P(BNF_PAT_GEMM_MUL, "gemm_mul", BNF_LAYER_GEMM, BNF_OP_MUL, false)               \
	P(BNF_PAT_GEMM_ADD, "gemm_add", BNF_LAYER_GEMM, BNF_OP_ADD, false)               \
	P(BNF_PAT_MATMUL_MUL, "matmul_mul", BNF_LAYER_MATMUL, BNF_OP_MUL, false)         \
	P(BNF_PAT_MATMUL_ADD, "matmul_add", BNF_LAYER_MATMUL, BNF_OP_ADD, false)

typedef enum {
#define BNF_PATTERN_ENUM(id, name, layer, op, before) id,
	BNF_PATTERNS(BNF_PATTERN_ENUM)
#undef BNF_PATTERN_ENUM
	BNF_PAT_COUNT,
	BNF_PAT_NONE = BNF_PAT_COUNT,
} bnf_pattern;

typedef struct bnf_pattern_row {
	const char *name;         /* in the report and --list */
	bnf_layer_kind layer;
	bnf_op_kind op;
	bool before_layer;        /* the node reads the layer's input (BN -> Conv), not its output */
} bnf_pattern_row;

/* The row of p (p < BNF_PAT_COUNT). */
const bnf_pattern_row *bnf_pattern_info(bnf_pattern p);
/* "conv_bn", ...; "none" for BNF_PAT_NONE. */
const char *bnf_pattern_name(bnf_pattern p);
/* The pattern of a layer followed (or, with before_layer, preceded) by an
 * op; BNF_PAT_NONE when bnfold has no such pattern. */
bnf_pattern bnf_pattern_find(bnf_layer_kind layer, bnf_op_kind op, bool before_layer);
/* "Conv", "ConvTranspose", "Gemm", "MatMul"; "" for BNF_LAYER_NONE. */
const char *bnf_layer_op_type(bnf_layer_kind k);
/* "BatchNormalization", "Mul", "Add". */
const char *bnf_op_type(bnf_op_kind k);

#endif
