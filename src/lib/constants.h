/* What the names of an indexed graph hold, as far as can be known without
 * running it: constants, found through initializers, Constant, Identity,
 * ConstantOfShape and Reshape nodes and enclosing graphs, or computed from
 * them (const_eval.c).  Shapes are shapes.h's.  Reads the index (graph.h),
 * never changes it. */
#ifndef BNF_CONSTANTS_H
#define BNF_CONSTANTS_H

#include <stdbool.h>

#include "graph.h"
#include "tensor.h"

/* Why a name does or does not resolve to a constant. */
typedef enum {
	BNF_CONST_OK = 0,
	BNF_CONST_NOT_CONSTANT,  /* computed at run time or a plain graph input */
	BNF_CONST_OVERRIDABLE,   /* initializer that is also a graph input (IR >= 4) */
	BNF_CONST_MALFORMED,     /* inconsistent tensor: bad input */
	BNF_CONST_UNSUPPORTED,   /* a constant bnfold cannot read (external data, sparse, ...) */
	BNF_CONST_BAD_DTYPE,     /* a tensor of a data type bnfold does not read */
	/* A value computed from constants that the model itself gets wrong (a
	 * Reshape to a wrong element count, an index out of range, shapes that
	 * do not broadcast): the model fails there at run time.  Not
	 * MALFORMED, which is stored bytes that contradict their dims. */
	BNF_CONST_INVALID,
	/* A value computed from constants would take more than the cap
	 * (bnf_graph.eval_max_bytes, as doubles), or more than is left of the
	 * run's budget (bnf_graph.eval_spend). */
	BNF_CONST_TOO_LARGE,
} bnf_const_status;

typedef struct bnf_const {
	bnf_tview view;
	/* The tensor that holds the data (initializer or Constant attribute);
	 * NULL when the value is synthesized (ConstantOfShape, value_float). */
	Onnx__TensorProto *tensor;
	/* True when nothing but the one consumer that asked reaches `tensor`
	 * (every name on the way has one reader, none is a graph output, and
	 * the tensor lives in the asking graph), so it may be edited in place. */
	bool exclusive;
	bool is_initializer;  /* the source is an initializer (not a Constant node) */
	bool is_graph_input;  /* ... that is also listed as a graph input */
	char msg[256];        /* why not OK, for reports and errors */
	double *owned;        /* computed values (bnf_graph_const_eval), freed by bnf_const_release */
} bnf_const;

/* Resolve name, read by one node input of gi's graph, to a constant.
 * BNF_CONST_OK with c filled in; any other status says why not, with the
 * reason in c->msg.  Reports nothing. */
bnf_const_status bnf_graph_const(const bnf_graph *gi, const char *name, bnf_const *c);

/* The work all queries of one run may do when gi->eval_spend is set:
 * bytes of values computed into memory, as a multiple of the cap on one
 * value, and node evaluations. */
#define BNF_EVAL_RUN_FACTOR 4
#define BNF_EVAL_RUN_NODES ((size_t)1 << 20)

/* As bnf_graph_const, and also evaluate what the model computes from
 * constants (const_eval.c): Identity, Reshape, Unsqueeze, Squeeze,
 * Flatten, Expand, Concat, Transpose, Cast, Slice, Gather, Shape (of any
 * value whose shape is static, bnf_graph_shape), Size, and Add, Sub, Mul,
 * Div with multidirectional broadcasting, Sqrt, Neg, Abs, Reciprocal; on
 * float32/64/16 and bfloat16, and on int32/int64 for all but Div and the
 * unary arithmetic.  Each result is rounded once to its type, as a
 * runtime would; an integer of magnitude 2^53 or more is not evaluated.
 * Ops that only change dims (Reshape, Unsqueeze, Squeeze, Flatten) keep
 * their input's data where it is; any other value is computed into memory,
 * at most gi->eval_max_bytes as doubles (BNF_CONST_TOO_LARGE beyond).  One
 * query evaluates a bounded number of nodes, a bounded depth deep
 * (BNF_CONST_NOT_CONSTANT beyond).  With gi->eval_spend set, every value
 * computed into memory adds its bytes there and every node evaluated adds
 * one, and a query that would go past the run's total
 * (BNF_EVAL_RUN_FACTOR x the cap, BNF_EVAL_RUN_NODES) fails,
 * BNF_CONST_TOO_LARGE for bytes, BNF_CONST_NOT_CONSTANT for nodes, with a
 * message saying the run's budget is spent; values that only change dims
 * cost no bytes.  A computation the model gets wrong (wrong element count,
 * index or axis out of range, shapes that do not broadcast) is
 * BNF_CONST_INVALID.  A computed value has no tensor to edit; release it
 * with bnf_const_release after reading. */
bnf_const_status bnf_graph_const_eval(const bnf_graph *gi, const char *name, bnf_const *c);
/* As bnf_graph_const_eval with a smaller cap: every value computed on the
 * way takes at most max_bytes as doubles (and never more than gi's cap),
 * BNF_CONST_TOO_LARGE beyond.  For callers that read short lists (shapes,
 * axes), so a large value on the way is refused at once instead of being
 * computed only to be found too long. */
bnf_const_status bnf_graph_const_eval_capped(const bnf_graph *gi, const char *name, size_t max_bytes,
					     bnf_const *c);
void bnf_const_release(bnf_const *c);

/* The dims of Reshape(x, dims[rank]) where x has in_dims[in_rank] and
 * numel elements: 0 copies the input dim (unless allowzero), one -1 is
 * inferred; dims is completed in place.  -1 when the shape is invalid. */
int bnf_reshape_dims(const int64_t *in_dims, size_t in_rank, size_t numel, int64_t *dims, size_t rank,
		     bool allowzero);


#endif
