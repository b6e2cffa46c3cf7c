/* The float32 sums in four lanes: one macro text for the AVX2 build and
 * the baseline build, so both do the same operations in the same order;
 * which one runs is decided at run time. */
#include "verify_lanes.h"

#include "common.h"

#include <float.h>
#include <pthread.h>
#include <string.h>

/* Whether the CPU has AVX2, set once (pthread_once: two calls may probe at
 * the same time from two threads).  The one CPU probe of the library;
 * whether to use it is the caller's (bnf_verify_config.no_simd). */
static int cpu_avx2;
static pthread_once_t cpu_probed = PTHREAD_ONCE_INIT;

/* The AVX2 build: x86-64, a compiler with the target attribute, and
 * BNF_USE_AVX2 (meson.build: not -Dportable=true). */
#if BNF_VERIFY_LANES && BNF_USE_AVX2 && defined(__x86_64__) && defined(__has_attribute)
#if __has_attribute(target)
#define LANES_AVX2 1
#endif
#endif

static void probe(void)
{
#ifdef LANES_AVX2
	cpu_avx2 = __builtin_cpu_supports("avx2");
#else
	cpu_avx2 = 0;
#endif
}

void bnf_verify_lanes_probe(void)
{
	pthread_once(&cpu_probed, probe);
}

bool bnf_verify_lanes_avx2(bool no_simd)
{
	bnf_verify_lanes_probe();
	return !no_simd && cpu_avx2 > 0;
}

#if BNF_VERIFY_LANES
typedef double v2d __attribute__((vector_size(16)));
typedef float v2f __attribute__((vector_size(8)));
typedef int64_t v2l __attribute__((vector_size(16)));

/* |x| lane by lane (macros: no vector arguments or results in calls) */
#define V2_ABS(x) ((v2d)((v2l)(x) & INT64_MAX))
#define V4_ABS(x) ((v4d)((v4l)(x) & INT64_MAX))

/* One step of the lanes from element j of raw, x1, x2 (vectors VD of
 * doubles, VF of as many floats): the six sums in s0..s5, and in big the
 * lanes whose folded value leaves float's range.  One text for both
 * builds, so that they do the same operations in the same order. */
#define LANES_STEP(VD, VF, ABS, j)                                                  \
	do {                                                                        \
		VF fv_;                                                             \
		VD w_, y_, wf_, p1_, p2_, t1_, t2_;                                 \
		memcpy(&fv_, raw + 4 * (j), sizeof(fv_));                           \
		w_ = __builtin_convertvector(fv_, VD);                              \
		y_ = w_ * sc;                                                       \
		big |= ABS(y_) > FLT_MAX;                                           \
		wf_ = __builtin_convertvector(__builtin_convertvector(y_, VF), VD); \
		memcpy(&p1_, x1 + (j), sizeof(p1_));                                \
		memcpy(&p2_, x2 + (j), sizeof(p2_));                                \
		t1_ = w_ * p1_;                                                     \
		t2_ = w_ * p2_;                                                     \
		s0 += t1_;                                                          \
		s1 += t2_;                                                          \
		s2 += wf_ * p1_;                                                    \
		s3 += wf_ * p2_;                                                    \
		s4 += ABS(t1_);                                                     \
		s5 += ABS(t2_);                                                     \
	} while (0)

/* The four lanes, summed in order within each, bound the rounding no
 * worse than one sum in order.  Two builds with the same lanes and the
 * same order of every operation, so the same results: pairs of 2-lane
 * vectors (any CPU), and one 4-lane vector on x86-64 CPUs with AVX2,
 * twice as fast. */
struct lanes2 {
	v2d s[6];
	v2l big;
};

/* Two lanes of the four: elements first, first + 1 of every group of four
 * among the n4 elements from raw (n4 a multiple of 4). */
static void lanes_half(const uint8_t *raw, double sc, const double *x1, const double *x2, size_t n4, size_t first,
		       struct lanes2 *l)
{
	v2d s0 = l->s[0], s1 = l->s[1], s2 = l->s[2], s3 = l->s[3], s4 = l->s[4], s5 = l->s[5];
	v2l big = l->big;

	for (size_t j = first; j < n4; j += 4)
		LANES_STEP(v2d, v2f, V2_ABS, j);
	l->s[0] = s0, l->s[1] = s1, l->s[2] = s2, l->s[3] = s3, l->s[4] = s4, l->s[5] = s5;
	l->big = big;
}

static size_t lanes_pairs(const uint8_t *raw, double sc, const double *x1, const double *x2, size_t n, double a[6])
{
	enum { BLOCK = 256 }; /* elements per step, a multiple of 4: in the L1 cache for the second half */
	struct lanes2 lo = {{{0, 0}}, {0, 0}}, hi = lo;
	size_t n4 = n - n % 4;

	for (size_t j = 0; j < n4; j += BLOCK) {
		size_t m = n4 - j < BLOCK ? n4 - j : BLOCK;
		for (size_t b = 0; b < 4 * m; b += 64)
			__builtin_prefetch(raw + 4 * j + b + BNF_PREFETCH_AHEAD);
		lanes_half(raw + 4 * j, sc, x1 + j, x2 + j, m, 0, &lo);
		lanes_half(raw + 4 * j, sc, x1 + j, x2 + j, m, 2, &hi);
	}
	if (lo.big[0] | lo.big[1] | hi.big[0] | hi.big[1])
		return 0;
	for (int q = 0; q < 6; q++)
		a[q] += (lo.s[q][0] + lo.s[q][1]) + (hi.s[q][0] + hi.s[q][1]);
	return n4;
}

#ifdef LANES_AVX2
typedef double v4d __attribute__((vector_size(32)));
typedef float v4f __attribute__((vector_size(16)));
typedef int64_t v4l __attribute__((vector_size(32)));

__attribute__((target("avx2")))
static size_t lanes_avx2(const uint8_t *raw, double sc, const double *x1, const double *x2, size_t n, double a[6])
{
	v4d z = {0, 0, 0, 0}, s0 = z, s1 = z, s2 = z, s3 = z, s4 = z, s5 = z;
	v4l big = {0, 0, 0, 0};
	size_t j = 0;

	for (; j + 4 <= n; j += 4) {
		if (j % 16 == 0)
			__builtin_prefetch(raw + 4 * j + BNF_PREFETCH_AHEAD);
		LANES_STEP(v4d, v4f, V4_ABS, j);
	}
	if (big[0] | big[1] | big[2] | big[3])
		return 0;
	a[0] += (s0[0] + s0[1]) + (s0[2] + s0[3]);
	a[1] += (s1[0] + s1[1]) + (s1[2] + s1[3]);
	a[2] += (s2[0] + s2[1]) + (s2[2] + s2[3]);
	a[3] += (s3[0] + s3[1]) + (s3[2] + s3[3]);
	a[4] += (s4[0] + s4[1]) + (s4[2] + s4[3]);
	a[5] += (s5[0] + s5[1]) + (s5[2] + s5[3]);
	return j;
}
#endif

size_t bnf_verify_lanes_f32(const uint8_t *raw, double sc, const double *x1, const double *x2, size_t n,
			    double a[6], bool avx2)
{
#ifdef LANES_AVX2
	if (avx2)
		return lanes_avx2(raw, sc, x1, x2, n, a);
#else
	(void)avx2;
#endif
	return lanes_pairs(raw, sc, x1, x2, n, a);
}
#endif
