/* The sums of the numeric check over a weight, per output channel and
 * probe: one pass over a range of the weight's elements (verify_sums.c),
 * and the weight cut into units of work summed by one or two threads
 * (verify_units.c).  Internal to verify_*.c. */
#ifndef BNF_VERIFY_SUMS_H
#define BNF_VERIFY_SUMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "source.h"
#include "verify.h"

#define BNF_VERIFY_CHUNK (1 << 15) /* weight elements per step */

/* Probe slots per output channel: 0 = zero input, 1..BNF_VERIFY_RANDOM =
 * random inputs, then the border probe of a BN before a padding Conv. */
#define BNF_VERIFY_P_ZERO 0
#define BNF_VERIFY_P_BORDER (BNF_VERIFY_RANDOM + 1)
#define BNF_VERIFY_NPROBE (BNF_VERIFY_RANDOM + 2)

/* The weight seen as [d0, d1, inner] and which channels each (a, b) row
 * serves, worked out from the layer's own definition. */
typedef struct bnf_verify_geom {
	size_t d0, d1, inner;
	size_t out_channels; /* of the layer output */
	size_t in_channels;  /* of the layer input (Conv) */
	size_t terms;        /* weight elements per output channel */
	size_t rows_per_group;
	size_t tap_stride, tap_len; /* border probe: tap index = (k / tap_stride) % tap_len */
} bnf_verify_geom;

/* What every pass over the weight of one case reads. */
typedef struct bnf_verify_ctx {
	const bnf_verify_case *vc;
	const bnf_plan *p;
	const bnf_verify_geom *g;
	const double *sd, *s;  /* BN: sqrt(var + eps) and gamma / sqrt(var + eps) per channel */
	const double *x1, *x2; /* the random probe inputs, one per position of the receptive field */
	bool avx2;             /* the float32 lanes take their AVX2 build (verify_lanes.h) */
} bnf_verify_ctx;

/* The sums of passes over the weight and their scratch, the state of the
 * one thread that sums into them (each thread that sums has its own).  At
 * o * BNF_VERIFY_NPROBE + q for output channel o and probe q: R the
 * original, F the folded, M the magnitude of the original's terms. */
typedef struct bnf_verify_acc {
	double *R, *F, *M;
	double *w, *wf;  /* BNF_VERIFY_CHUNK weight elements: as read, as stored after the fold */
	uint8_t *bytes;  /* BNF_VERIFY_CHUNK float32 elements copied from the input file */
	bnf_window win;  /* the weight's bytes in the input file, read in place */
} bnf_verify_acc;

/* Allocate a's arrays for out_channels, the sums zeroed; false when memory
 * runs out (bnf_verify_acc_free then frees what was allocated).  a starts
 * zeroed ({0}). */
bool bnf_verify_acc_alloc(bnf_verify_acc *a, size_t out_channels);
/* Free a's arrays and drop its window. */
void bnf_verify_acc_free(bnf_verify_acc *a);

/* Add to a the sums of weight elements [first, last) (first a multiple of
 * BNF_VERIFY_CHUNK).  Returns NULL, or the problem found (static text:
 * the plan's layout does not fit the weight). */
const char *bnf_verify_pass(const bnf_verify_ctx *x, bnf_verify_acc *a, size_t first, size_t last);

/* The sums over the whole weight into *even (allocated by
 * bnf_verify_acc_alloc for x->g->out_channels), by units of work in two
 * sets -- on a second thread when the weight is large, threads is not 1
 * and there are two CPUs (bnf_verify_config) -- added in the same order
 * either way, so the same sums.  Sets *problem to a problem found, or
 * NULL.  0, or -1 when memory runs out (no message). */
int bnf_verify_sum_units(const bnf_verify_ctx *x, int threads, bnf_verify_acc *even, const char **problem);

#endif
