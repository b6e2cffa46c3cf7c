/* The evaluator behind bnf_graph_const_eval (constants.h), shared by its
 * two files: const_eval.c (the walk over producers, the budget, reading
 * and writing values, arithmetic, Cast, Shape, Size) and const_move.c (ops
 * that only move data: Reshape, Unsqueeze, Squeeze, Flatten, Expand,
 * Concat, Transpose, Slice, Gather).  Every evaluator fills c (the value,
 * or the reason it has none in c->msg) and returns its status; on failure
 * c owns nothing. */
#ifndef BNF_CONST_EVAL_H
#define BNF_CONST_EVAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "constants.h"

#define BNF_EVAL_BUDGET 4096 /* node evaluations in one query */
#define BNF_EVAL_DEPTH 16    /* nodes deep in one query */
#define BNF_EVAL_CHAIN 64    /* Identity nodes followed to a producer, as constants.c does */

/* What one query may still spend. */
typedef struct bnf_eval {
	size_t max_elems; /* elements any value computed into memory may have */
	size_t max_bytes; /* the same, in bytes of doubles, for messages */
	int budget;       /* node evaluations left */
	bnf_eval_spend *spend; /* the run's spending (may be NULL) */
	size_t run_bytes;      /* the run's total in bytes, with spend */
} bnf_eval;

/* A value computed into memory: integers whole and below 2^53 in
 * magnitude, floats already rounded to dtype. */
typedef struct bnf_arr {
	int dtype;
	size_t rank;
	int64_t dims[BNF_MAX_RANK];
	size_t numel;
	double *x; /* owned */
} bnf_arr;

typedef bnf_const_status (*bnf_eval_fn)(bnf_eval *e, const bnf_graph *gi, const Onnx__NodeProto *n, int depth,
					bnf_const *c);

/* Resolve or evaluate name, read by a node of gi's graph, into c. */
bnf_const_status bnf_eval_value(bnf_eval *e, const bnf_graph *gi, const char *name, int depth, bnf_const *c);
/* Input i of n (which must exist) resolved or evaluated and read into a:
 * a float or int32/int64 value within the cap.  The reason for any other
 * status goes to c->msg. */
bnf_const_status bnf_eval_input(bnf_eval *e, const bnf_graph *gi, const Onnx__NodeProto *n, size_t i, int depth,
				bnf_arr *a, bnf_const *c);
/* Input i of n as at most max integers (a scalar or a 1-D tensor): *len. */
bnf_const_status bnf_eval_ints(bnf_eval *e, const bnf_graph *gi, const Onnx__NodeProto *n, size_t i, int depth,
			       int64_t *out, size_t max, size_t *len, bnf_const *c);
/* An integer list given by attribute attr before opset `from`, by input
 * `slot` from then on; *have is false when it is absent. */
bnf_const_status bnf_eval_list(bnf_eval *e, const bnf_graph *gi, const Onnx__NodeProto *n, int depth,
			       const char *attr, int from, size_t slot, int64_t *out, size_t max, size_t *len,
			       bool *have, bnf_const *c);
/* Room for a->numel values in a->x, within the cap and what is left of
 * the run's budget, which it spends (BNF_CONST_TOO_LARGE, naming n and
 * the size). */
bnf_const_status bnf_eval_alloc(const bnf_eval *e, const Onnx__NodeProto *n, bnf_arr *a, bnf_const *c);
/* c takes a's values and shape (a is left empty); BNF_CONST_OK. */
bnf_const_status bnf_eval_result(bnf_arr *a, bnf_const *c);
void bnf_arr_free(bnf_arr *a);
/* Record "<op> '<output>': <why>" in c->msg (c's value released); st. */
bnf_const_status bnf_eval_fail(bnf_const *c, bnf_const_status st, const Onnx__NodeProto *n, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* The product of dims[rank] in *numel: 0 when a dim is 0, whatever the
 * others (an empty tensor may have dims whose product overflows); false
 * when a dim is negative or the product of nonzero dims overflows. */
bool bnf_eval_numel(const int64_t *dims, size_t rank, size_t *numel);
/* axis in [-rank, rank) as an index in [0, rank); false when outside. */
bool bnf_eval_axis(int64_t axis, size_t rank, size_t *out);
/* The multidirectional broadcast of dims a[ra] and b[rb] (numpy rules) in
 * dims[*rank]; false when a pair of dims is neither equal nor has a 1. */
bool bnf_eval_broadcast(const int64_t *a, size_t ra, const int64_t *b, size_t rb, int64_t *dims, size_t *rank);

/* A walk over the elements of a result of dims[rank] in order, keeping the
 * offset of the matching element of up to two inputs (steps may be
 * negative or 0: broadcast, reversed). */
typedef struct bnf_walk {
	size_t rank;
	int64_t dims[BNF_MAX_RANK];
	size_t idx[BNF_MAX_RANK];
	int64_t step[2][BNF_MAX_RANK];
	int64_t off[2];
} bnf_walk;

/* Start a walk at element 0; steps 0, offsets 0. */
void bnf_walk_init(bnf_walk *w, const int64_t *dims, size_t rank);
/* Input k reads an array of dims d[rd], held in memory, broadcast to the
 * walk's dims.  An empty one (a dim of 0) gets no steps: the walk over
 * its broadcast is empty too. */
void bnf_walk_broadcast(bnf_walk *w, int k, const int64_t *d, size_t rd);
/* On to the next element. */
void bnf_walk_next(bnf_walk *w);

/* const_move.c */
bnf_const_status bnf_eval_reshape(bnf_eval *e, const bnf_graph *gi, const Onnx__NodeProto *n, int depth, bnf_const *c);
bnf_const_status bnf_eval_unsqueeze(bnf_eval *e, const bnf_graph *gi, const Onnx__NodeProto *n, int depth, bnf_const *c);
bnf_const_status bnf_eval_squeeze(bnf_eval *e, const bnf_graph *gi, const Onnx__NodeProto *n, int depth, bnf_const *c);
bnf_const_status bnf_eval_flatten(bnf_eval *e, const bnf_graph *gi, const Onnx__NodeProto *n, int depth, bnf_const *c);
bnf_const_status bnf_eval_expand(bnf_eval *e, const bnf_graph *gi, const Onnx__NodeProto *n, int depth, bnf_const *c);
bnf_const_status bnf_eval_concat(bnf_eval *e, const bnf_graph *gi, const Onnx__NodeProto *n, int depth, bnf_const *c);
bnf_const_status bnf_eval_transpose(bnf_eval *e, const bnf_graph *gi, const Onnx__NodeProto *n, int depth, bnf_const *c);
bnf_const_status bnf_eval_slice(bnf_eval *e, const bnf_graph *gi, const Onnx__NodeProto *n, int depth, bnf_const *c);
bnf_const_status bnf_eval_gather(bnf_eval *e, const bnf_graph *gi, const Onnx__NodeProto *n, int depth, bnf_const *c);

#endif
