/* Static shapes: what is known of a value's dims before the model runs.
 * The index (graph.h) keeps one table of them per graph; shapes.c fills it
 * from the model's declarations and ONNX's inference rules. */
#ifndef BNF_SHAPE_H
#define BNF_SHAPE_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#define BNF_SHAPE_MAX_RANK 8 /* a value of higher rank has an unknown shape here */

typedef struct bnf_dim {
	int64_t value;     /* the size (>= 0), or -1 when unknown */
	/* When unknown: the model's name for it (dim_param), which every dim
	 * of the same name shares, so two dims of one name are equal; NULL when
	 * nothing is known.  Points into the model, valid while it is. */
	const char *param;
} bnf_dim;

typedef struct bnf_shape {
	int rank;          /* -1 when unknown (dims then mean nothing) */
	bnf_dim dims[BNF_SHAPE_MAX_RANK];
	int elem_type;     /* ONNX TensorProto.DataType, 0 when unknown */
	/* The model declares (value_info, graph output) a shape that
	 * contradicts the one its nodes give; rank is then -1. */
	bool conflict;
} bnf_shape;

/* A shape of unknown rank. */
static inline bnf_shape bnf_shape_unknown(void)
{
	bnf_shape s = {.rank = -1};
	return s;
}

/* True when every dim of s is a known size (rank known). */
static inline bool bnf_shape_static(const bnf_shape *s)
{
	if (s->rank < 0)
		return false;
	for (int i = 0; i < s->rank; i++)
		if (s->dims[i].value < 0)
			return false;
	return true;
}

/* Two dims known to be equal: the same size, or the same dim_param. */
static inline bool bnf_dim_same(const bnf_dim *a, const bnf_dim *b)
{
	if (a->value >= 0 || b->value >= 0)
		return a->value == b->value;
	return a->param && b->param && strcmp(a->param, b->param) == 0;
}

#endif
