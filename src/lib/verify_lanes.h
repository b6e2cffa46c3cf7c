/* The float32 sums of the numeric check in four lanes, with an AVX2 build
 * and a baseline build that give the same bits.  Internal to verify_*.c. */
#ifndef BNF_VERIFY_LANES_H
#define BNF_VERIFY_LANES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Whether this build sums in lanes at all: GNU C vectors on a
 * little-endian host.  Without, bnf_verify_lanes_f32 does not exist and
 * every element is summed one by one. */
#if defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define BNF_VERIFY_LANES 1
#else
#define BNF_VERIFY_LANES 0
#endif

/* Ask the CPU once whether it has AVX2.  Call it before starting a thread
 * that sums: the answer is the one static it writes, written here only. */
void bnf_verify_lanes_probe(void);

/* Whether bnf_verify_lanes_f32 may take its AVX2 build: the probe found
 * AVX2 (false before bnf_verify_lanes_probe) and no_simd is false. */
bool bnf_verify_lanes_avx2(bool no_simd);

#if BNF_VERIFY_LANES
/* The six sums of one float32 element w scaled by sc (wf: w * sc rounded
 * to float32) -- w x1, w x2, wf x1, wf x2, |w x1|, |w x2| -- over the
 * first n - n % 4 little-endian float32 elements of raw, added to a[0..6).
 * Lane k takes the elements j with j % 4 == k, in order; the lanes are
 * added as (0 + 1) + (2 + 3) at the end.  Returns how many elements it
 * took, or adds nothing and returns 0 when a folded value leaves float's
 * range (the caller's element-by-element sums decide those).  avx2 from
 * bnf_verify_lanes_avx2: both builds give the same results. */
size_t bnf_verify_lanes_f32(const uint8_t *raw, double sc, const double *x1, const double *x2, size_t n,
			    double a[6], bool avx2);
#endif

#endif
