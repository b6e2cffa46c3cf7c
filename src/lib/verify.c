#include "verify.h"

#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "tensor.h"

#define CHUNK (1 << 15) /* weight elements per step */

/* Probe slots per output channel: 0 = zero input, 1..BNF_VERIFY_RANDOM =
 * random inputs, then the border probe of a BN before a padding Conv. */
#define P_ZERO 0
#define P_BORDER (BNF_VERIFY_RANDOM + 1)
#define NPROBE (BNF_VERIFY_RANDOM + 2)

_Static_assert(BNF_VERIFY_RANDOM == 2, "one 64-bit hash gives the two random probe values");

static double unit_roundoff(int dtype)
{
	switch (dtype) {
	case BNF_DT_FLOAT: return ldexp(1.0, -24);
	case BNF_DT_DOUBLE: return ldexp(1.0, -53);
	case BNF_DT_FLOAT16: return ldexp(1.0, -11);
	case BNF_DT_BFLOAT16: return ldexp(1.0, -8);
	default: return NAN;
	}
}

/* Below the smallest normal number rounding error is absolute, not relative. */
static double min_normal(int dtype)
{
	switch (dtype) {
	case BNF_DT_FLOAT: return ldexp(1.0, -126);
	case BNF_DT_DOUBLE: return DBL_MIN;
	case BNF_DT_FLOAT16: return ldexp(1.0, -14);
	case BNF_DT_BFLOAT16: return ldexp(1.0, -126);
	default: return NAN;
	}
}

double bnf_verify_default_tolerance(int dtype, size_t n)
{
	return 2.0 * unit_roundoff(dtype) + ((double)n + 8.0) * ldexp(1.0, -52);
}

/* splitmix64: each probe input is a function of its position in the
 * receptive field alone, the same in every run. */
static uint64_t mix(uint64_t z)
{
	z += 0x9e3779b97f4a7c15ULL;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

#define PROBE_SEED 0x626e666f6c64ULL

/* The two random input vectors: values in [-1, 1) for each position of
 * a receptive field.  Every output channel reads the same vectors, as
 * every output channel of a layer reads the same input patch. */
static void probe_inputs(size_t terms, double *x1, double *x2)
{
	for (size_t r = 0; r < terms; r++) {
		uint64_t h = mix(PROBE_SEED + (uint64_t)r);
		x1[r] = (double)(int32_t)(uint32_t)h * 0x1p-31;
		x2[r] = (double)(int32_t)(uint32_t)(h >> 32) * 0x1p-31;
	}
}

/* The weight seen as [d0, d1, inner] and which channels each (a, b) row
 * serves, worked out from the layer's own definition. */
typedef struct geom {
	size_t d0, d1, inner;
	size_t out_channels; /* of the layer output */
	size_t in_channels;  /* of the layer input (Conv) */
	size_t terms;        /* weight elements per output channel */
	size_t rows_per_group;
	size_t tap_stride, tap_len; /* border probe: tap index = (k / tap_stride) % tap_len */
} geom;

static size_t out_channel(const bnf_verify_case *vc, const geom *g, size_t a, size_t b)
{
	switch (vc->layer) {
	case BNF_VL_CONV:
		return a;
	case BNF_VL_CONVTRANSPOSE: /* row a is input channel a; group a / (C_in/group) */
		return (a / g->rows_per_group) * g->d1 + b;
	default:
		return vc->trans_b ? a : b;
	}
}

/* Position in the receptive field of the first element of row (a, b);
 * the row's elements are the next `inner` positions. */
static size_t field_pos(const bnf_verify_case *vc, const geom *g, size_t a, size_t b)
{
	switch (vc->layer) {
	case BNF_VL_CONV: /* [C_out, C_in/group, k...]: input channel b of the group, tap k */
		return b * g->inner;
	case BNF_VL_CONVTRANSPOSE: /* [C_in, C_out/group, k...]: input channel a of its group, tap k */
		return (a % g->rows_per_group) * g->inner;
	default: /* B [K, N] or [N, K]: k */
		return vc->trans_b ? b : a;
	}
}

/* Conv: input channel read by W[a, b, ...]. */
static size_t in_channel(const geom *g, size_t a, size_t b)
{
	return (a / g->rows_per_group) * g->d1 + b;
}

static const char *make_geom(const bnf_verify_case *vc, const bnf_plan *p, geom *g)
{
	const bnf_tview *w = vc->weight;

	memset(g, 0, sizeof(*g));
	if (!bnf_dtype_is_float(w->dtype) || w->dtype != p->dtype)
		return "the weight type differs from the plan's";
	for (size_t d = 0; d < w->rank; d++)
		if (w->dims[d] < 1)
			return "the weight is empty";
	if (vc->layer == BNF_VL_GEMM) {
		if (w->rank != 2)
			return "a Gemm/MatMul weight of rank other than 2";
		g->d0 = (size_t)w->dims[0];
		g->d1 = (size_t)w->dims[1];
		g->inner = 1;
		g->out_channels = vc->trans_b ? g->d0 : g->d1;
		g->terms = vc->trans_b ? g->d1 : g->d0;
		g->rows_per_group = 1;
	} else {
		if (w->rank < 3)
			return "a Conv weight of rank < 3";
		if (vc->group < 1 || (size_t)w->dims[0] % vc->group != 0)
			return "the weight does not divide into the groups";
		g->d0 = (size_t)w->dims[0];
		g->d1 = (size_t)w->dims[1];
		g->inner = w->numel / (g->d0 * g->d1);
		/* Conv: output channels per group; ConvTranspose: input channels per group */
		g->rows_per_group = g->d0 / vc->group;
		if (vc->layer == BNF_VL_CONV) {
			g->out_channels = g->d0;
			g->in_channels = vc->group * g->d1;
			g->terms = g->d1 * g->inner;
		} else {
			g->out_channels = vc->group * g->d1;
			g->terms = g->rows_per_group * g->inner;
		}
	}
	if (vc->bn_before) {
		if (vc->layer != BNF_VL_CONV || vc->op != BNF_VOP_BN)
			return "only a BN folds into the layer after it, and only into a Conv";
		if (vc->channels != g->in_channels)
			return "the BN's length differs from the Conv's input channels";
		if (vc->pad_axis >= 0) {
			size_t axis = 2 + (size_t)vc->pad_axis;
			if (axis >= w->rank)
				return "the padded axis is not a spatial axis of the weight";
			g->tap_len = (size_t)w->dims[axis];
			g->tap_stride = 1;
			for (size_t d = axis + 1; d < w->rank; d++)
				g->tap_stride *= (size_t)w->dims[d];
		}
	} else if (vc->op == BNF_VOP_BN) {
		if (vc->channels != g->out_channels)
			return "the BN's length differs from the layer's output channels";
	} else if (vc->k_len != 1 && vc->k_len != g->out_channels) {
		return "the constant is neither one value nor one per output channel";
	}
	if (vc->bias && vc->bias_len != g->out_channels && !(vc->layer == BNF_VL_GEMM && vc->bias_len == 1))
		return "the bias length differs from the layer's output channels";
	if (p->weight.view.numel != w->numel || p->weight.view.dtype != w->dtype)
		return "the plan's weight differs from the layer's";
	if (p->scale_weight && (!p->transform.scale || !p->transform.layout.inner || !p->transform.layout.per_group ||
				!p->transform.layout.rows_per_group || p->transform.layout.channels != p->channels ||
				p->transform.dtype != p->dtype))
		return "the plan scales the weight without a complete transform";
	if (p->write_bias && (p->bias_len != g->out_channels || !p->new_bias))
		return "the plan's bias length differs from the layer's output channels";
	return NULL;
}

/* The folded bias of channel o as the layer will read it. */
static double folded_bias(const bnf_verify_case *vc, const bnf_plan *p, size_t o)
{
	if (p->write_bias) {
		uint8_t buf[8];
		bnf_encode(p->dtype, p->new_bias[o], buf);
		return bnf_decode(p->dtype, buf);
	}
	return vc->bias ? vc->bias[vc->bias_len == 1 ? 0 : o] : 0.0;
}

static void compare(bnf_verify *v, double folded, double original, double mag, size_t o)
{
	double err = fabs(folded - original), rel;
	if (isnan(err))
		err = INFINITY;
	rel = err / mag;
	if (isnan(rel))
		rel = INFINITY;
	if (err > v->max_abs_err)
		v->max_abs_err = err;
	if (rel > v->max_rel_err || v->outputs == 0) {
		v->max_rel_err = rel;
		v->worst_channel = o;
	}
	v->outputs++;
}

/* A layer followed by the node: per output channel, sum w x (original),
 * w' x (folded) and |w x| for the random probes; the zero probe adds
 * nothing here.  The n elements are all of one output channel and read
 * inputs x1[0..n), x2[0..n). */
static void add_run(const double *w, const double *wf, const double *x1, const double *x2, size_t n, double *r,
		    double *f, double *m)
{
	double r1 = 0, r2 = 0, f1 = 0, f2 = 0, m1 = 0, m2 = 0;
	for (size_t j = 0; j < n; j++) {
		double t1 = w[j] * x1[j], t2 = w[j] * x2[j];
		r1 += t1;
		r2 += t2;
		f1 += wf[j] * x1[j];
		f2 += wf[j] * x2[j];
		m1 += fabs(t1);
		m2 += fabs(t2);
	}
	r[1] += r1;
	r[2] += r2;
	f[1] += f1;
	f[2] += f2;
	m[1] += m1;
	m[2] += m2;
}

/* The six sums of add_run for one float32 element w that the plan
 * scales by sc: its folded value is computed on the way, as folded_range
 * would. */
static inline void add_f32(double w, double sc, double x1, double x2, double a[6])
{
	double y = w * sc, wf = fabs(y) <= FLT_MAX ? (double)(float)y : bnf_round_to(BNF_DT_FLOAT, y);
	double t1 = w * x1, t2 = w * x2;
	a[0] += t1;
	a[1] += t2;
	a[2] += wf * x1;
	a[3] += wf * x2;
	a[4] += fabs(t1);
	a[5] += fabs(t2);
}

/* Whether add_lanes_f32 takes its AVX2 build: -1 until lanes_choose(),
 * which bnf_verify_run calls before it starts a thread. */
static int use_avx2 = -1;

#if defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define VERIFY_LANES 1
typedef double v2d __attribute__((vector_size(16)));
typedef float v2f __attribute__((vector_size(8)));
typedef int64_t v2l __attribute__((vector_size(16)));

/* |x| lane by lane (macros: no vector arguments or results in calls) */
#define V2_ABS(x) ((v2d)((v2l)(x) & INT64_MAX))
#define V4_ABS(x) ((v4d)((v4l)(x) & INT64_MAX))

/* One step of the lanes from element j of raw, x1, x2 (vectors VD of
 * doubles, VF of as many floats): the sums of add_f32 in s0..s5, and in
 * big the lanes whose folded value leaves float's range.  One text for
 * both builds, so that they do the same operations in the same order. */
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

/* add_lanes_f32 below sums four lanes: lane k takes elements j with
 * j % 4 == k, in order, and the lanes are added as (0 + 1) + (2 + 3) at
 * the end, which bounds the rounding no worse than one sum in order.  It
 * has two builds with the same lanes and the same order of every
 * operation, so the same results: pairs of 2-lane vectors (any CPU), and
 * one 4-lane vector on x86-64 CPUs with AVX2, twice as fast. */
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
		lanes_half(raw + 4 * j, sc, x1 + j, x2 + j, m, 0, &lo);
		lanes_half(raw + 4 * j, sc, x1 + j, x2 + j, m, 2, &hi);
	}
	if (lo.big[0] | lo.big[1] | hi.big[0] | hi.big[1])
		return 0;
	for (int q = 0; q < 6; q++)
		a[q] += (lo.s[q][0] + lo.s[q][1]) + (hi.s[q][0] + hi.s[q][1]);
	return n4;
}

#if defined(__x86_64__) && defined(__has_attribute)
#if __has_attribute(target)
#define LANES_AVX2 1
typedef double v4d __attribute__((vector_size(32)));
typedef float v4f __attribute__((vector_size(16)));
typedef int64_t v4l __attribute__((vector_size(32)));

__attribute__((target("avx2")))
static size_t lanes_avx2(const uint8_t *raw, double sc, const double *x1, const double *x2, size_t n, double a[6])
{
	v4d z = {0, 0, 0, 0}, s0 = z, s1 = z, s2 = z, s3 = z, s4 = z, s5 = z;
	v4l big = {0, 0, 0, 0};
	size_t j = 0;

	for (; j + 4 <= n; j += 4)
		LANES_STEP(v4d, v4f, V4_ABS, j);
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
#endif

/* The six sums of add_f32 over the first n - n % 4 raw float32 elements,
 * added to a; returns how many elements it took, or adds nothing and
 * returns 0 when a folded value leaves float's range (add_f32 decides
 * those). */
static size_t add_lanes_f32(const uint8_t *raw, double sc, const double *x1, const double *x2, size_t n,
			    double a[6])
{
#ifdef LANES_AVX2
	if (use_avx2 > 0)
		return lanes_avx2(raw, sc, x1, x2, n, a);
#endif
	return lanes_pairs(raw, sc, x1, x2, n, a);
}
#else
#define VERIFY_LANES 0
#endif

static void lanes_choose(void)
{
	if (use_avx2 < 0)
#ifdef LANES_AVX2
		use_avx2 = !getenv("BNFOLD_NO_AVX2") && __builtin_cpu_supports("avx2");
#else
		use_avx2 = 0;
#endif
}

/* add_run for float32 elements that the plan scales by one sc, from
 * doubles (w) or straight from the little-endian bytes the model stores
 * (raw, when not NULL). */
static void add_run_f32(const double *w, const uint8_t *raw, double sc, const double *x1, const double *x2, size_t n,
			double *r, double *f, double *m)
{
	double a[6] = {0};
	if (raw) {
		size_t j = 0;
#if VERIFY_LANES
		j = add_lanes_f32(raw, sc, x1, x2, n, a);
		raw += 4 * j;
#endif
		for (; j < n; j++, raw += 4) {
			uint32_t bits = (uint32_t)raw[0] | (uint32_t)raw[1] << 8 | (uint32_t)raw[2] << 16 |
					(uint32_t)raw[3] << 24;
			float fv;
			memcpy(&fv, &bits, 4);
			add_f32(fv, sc, x1[j], x2[j], a);
		}
	} else {
		for (size_t j = 0; j < n; j++)
			add_f32(w[j], sc, x1[j], x2[j], a);
	}
	r[1] += a[0];
	r[2] += a[1];
	f[1] += a[2];
	f[2] += a[3];
	m[1] += a[4];
	m[2] += a[5];
}

/* add_run for n float32 elements that all hold w (a weight filled with
 * one value, ConstantOfShape) and that the plan scales by one sc: the
 * sums are w and its folded value times the sums of the inputs. */
static void add_run_uniform(double w, double sc, const double *x1, const double *x2, size_t n, double *r, double *f,
			    double *m)
{
	double y = w * sc, wf = fabs(y) <= FLT_MAX ? (double)(float)y : bnf_round_to(BNF_DT_FLOAT, y);
	double s1 = 0, s2 = 0, a1 = 0, a2 = 0;
	for (size_t j = 0; j < n; j++) {
		s1 += x1[j];
		s2 += x2[j];
		a1 += fabs(x1[j]);
		a2 += fabs(x2[j]);
	}
	r[1] += w * s1;
	r[2] += w * s2;
	f[1] += wf * s1;
	f[2] += wf * s2;
	m[1] += fabs(w) * a1;
	m[2] += fabs(w) * a2;
}

/* A BN before a Conv: weight element (w, folded wf) at tap k of its row
 * reads input channel ci, whose probe values are x1, x2. */
static void add_before(const bnf_verify_case *vc, const geom *g, const double *sd, const double *s, double w,
		       double wf, double x1, double x2, size_t k, size_t ci, double *r, double *f, double *m)
{
	/* the BN's output on input channel ci, as the Conv reads it */
	double mu = vc->mean[ci], sdv = sd[ci], ga = vc->gamma[ci], be = vc->bn_b[ci];
	double y0, y1, y2, aw = fabs(w), as = fabs(s[ci]), base;

	y0 = (0.0 - mu) / sdv * ga + be;
	y1 = (x1 - mu) / sdv * ga + be;
	y2 = (x2 - mu) / sdv * ga + be;
	base = aw * (as * fabs(mu) + fabs(be));
	r[P_ZERO] += w * y0;
	m[P_ZERO] += base;
	r[1] += w * y1;
	f[1] += wf * x1;
	m[1] += aw * as * fabs(x1) + base;
	r[2] += w * y2;
	f[2] += wf * x2;
	m[2] += aw * as * fabs(x2) + base;
	/* Border: a padded tap reads 0 after the BN in the original and 0
	 * before it in the folded Conv. */
	if (vc->pad_axis >= 0) {
		size_t tap = (k / g->tap_stride) % g->tap_len;
		if (tap != (vc->pad_at_end ? g->tap_len - 1 : 0)) {
			r[P_BORDER] += w * y1;
			f[P_BORDER] += wf * x1;
			m[P_BORDER] += aw * as * fabs(x1) + base;
		}
	}
}

/* The stored folded weight of elements [first, first + n): the plan's
 * transform by its definition (fold.h), w * scale[channel], rounded once
 * to the dtype as bnf_encode stores it; the channel is looked up once per
 * run of the plan's layout. */
static const char *folded_range(const bnf_plan *p, size_t first, size_t n, const double *w, double *wf)
{
	const bnf_layout *l = &p->transform.layout;

	for (size_t i = 0; i < n;) {
		size_t run = l->inner - (first + i) % l->inner, c = bnf_layout_channel(l, first + i);
		double sc;
		if (c >= l->channels)
			return "the plan's layout maps a weight element past its channels";
		if (l->inner == 1 && l->per_group > 1) {
			/* One element per channel in turn (Gemm B [K, N]): along a
			 * row of per_group elements the layout's channel steps by
			 * one; it is looked up at both ends of the row, and
			 * element by element where they disagree. */
			size_t last;
			run = l->per_group - (first + i) % l->per_group;
			if (run > n - i)
				run = n - i;
			last = bnf_layout_channel(l, first + i + run - 1);
			if (last != c + run - 1 || last >= l->channels)
				run = 1;
			for (size_t j = 0; j < run; j++, i++) {
				double y = w[i] * p->transform.scale[c + j];
				wf[i] = p->dtype == BNF_DT_FLOAT && fabs(y) <= FLT_MAX ? (double)(float)y
										   : bnf_round_to(p->dtype, y);
			}
			continue;
		}
		sc = p->transform.scale[c];
		if (run > n - i)
			run = n - i;
		if (p->dtype == BNF_DT_FLOAT) {
			/* bnf_round_to without a call per element; beyond float's
			 * range it decides */
			for (size_t end = i + run; i < end; i++) {
				double y = w[i] * sc;
				wf[i] = fabs(y) <= FLT_MAX ? (double)(float)y : bnf_round_to(p->dtype, y);
			}
		} else {
			for (size_t end = i + run; i < end; i++)
				wf[i] = bnf_round_to(p->dtype, w[i] * sc);
		}
	}
	return NULL;
}

/* Weight elements [first, first + n) as the folded model stores them:
 * folded from w when the plan scales the weight, else read as they are. */
static const char *stored_range(const bnf_plan *p, size_t first, size_t n, const double *w, double *wf)
{
	if (p->scale_weight)
		return folded_range(p, first, n, w, wf);
	bnf_tview_read_range(&p->weight.view, first, n, wf);
	return NULL;
}

/* Where weight element i goes: output channel *o, position *pos of the
 * receptive field, input channel *ci (BN before a Conv) and tap *k of its
 * row; returns how many elements from i on share o and ci with
 * consecutive positions. */
static size_t locate(const bnf_verify_case *vc, const geom *g, size_t i, size_t *o, size_t *pos, size_t *ci,
		     size_t *k)
{
	size_t row = i / g->inner, a = row / g->d1, b = row % g->d1;

	*k = i % g->inner;
	*o = out_channel(vc, g, a, b);
	*pos = field_pos(vc, g, a, b) + *k;
	*ci = vc->bn_before ? in_channel(g, a, b) : 0;
	if (vc->bn_before || vc->layer == BNF_VL_CONVTRANSPOSE || (vc->layer == BNF_VL_GEMM && !vc->trans_b))
		return g->inner - *k; /* the rest of the row [a, b, :] */
	/* Conv, Gemm with B [N, K]: the row [a, :, :] is one output channel */
	return g->d1 * g->inner - b * g->inner - *k;
}

/* The sums of one pass over the weight, per output channel and probe:
 * R original, F folded, M the magnitude of the original's terms. */
typedef struct sums {
	double *R, *F, *M;
} sums;

/* One pass over weight elements [first, last) (first a multiple of CHUNK);
 * the problem found, or NULL. */
static const char *pass(const bnf_verify_case *vc, const bnf_plan *p, const geom *g, const double *sd,
			const double *s, const double *x1, const double *x2, double *w, double *wf, uint8_t *bytes,
			sums *acc, size_t first, size_t last)
{
	const bnf_tview *wv = vc->weight;
	const bnf_layout *l = &p->transform.layout;
	/* float32 after a layer, the common case: fold on the way when a
	 * segment lies in one run of the plan's layout (it does when the
	 * layout is right), reading raw_data in place */
	bool fuse = p->scale_weight && p->dtype == BNF_DT_FLOAT && !vc->bn_before;
	bool stored = fuse && wv->dtype == BNF_DT_FLOAT && wv->raw && !wv->lazy && !wv->uniform && !wv->floats;
	const uint8_t *raw = stored && !wv->src ? wv->raw : NULL; /* in memory */
	bool from_file = stored && wv->src;                        /* left in the input file: bytes per chunk */

	for (size_t done = first; done < last; done += CHUNK) {
		size_t n = last - done < CHUNK ? last - done : CHUNK;
		bool have_w = false, have_wf = false;
		const uint8_t *craw = raw ? raw + 4 * done : NULL;
		if (from_file && !(craw = bnf_tview_raw_view(wv, done, n)) && bnf_tview_raw_range(wv, done, n, bytes) == 0)
			craw = bytes;
		if (vc->layer == BNF_VL_GEMM && !vc->trans_b && !vc->bn_before) {
			/* B [K, N]: row k feeds every output channel with input k;
			 * element by element, without a division each */
			const char *why;
			size_t k = done / g->d1, o = done % g->d1;
			bnf_tview_read_range(wv, done, n, w);
			if ((why = stored_range(p, done, n, w, wf)))
				return why;
			for (size_t j = 0; j < n; j++) {
				double t1 = w[j] * x1[k], t2 = w[j] * x2[k];
				double *r = acc->R + o * NPROBE, *f = acc->F + o * NPROBE, *m = acc->M + o * NPROBE;
				r[1] += t1;
				r[2] += t2;
				f[1] += wf[j] * x1[k];
				f[2] += wf[j] * x2[k];
				m[1] += fabs(t1);
				m[2] += fabs(t2);
				if (++o == g->d1) {
					o = 0;
					k++;
				}
			}
			continue;
		}
		for (size_t j = 0, run; j < n; j += run) {
			size_t o, pos, ci, k, i = done + j, c;
			double *r, *f, *m;
			run = locate(vc, g, i, &o, &pos, &ci, &k);
			if (run > n - j)
				run = n - j;
			r = acc->R + o * NPROBE;
			f = acc->F + o * NPROBE;
			m = acc->M + o * NPROBE;
			if (!craw && !wv->uniform && !have_w) {
				bnf_tview_read_range(wv, done, n, w);
				have_w = true;
			}
			if (fuse && l->inner - i % l->inner >= run) {
				if ((c = bnf_layout_channel(l, i)) >= l->channels)
					return "the plan's layout maps a weight element past its channels";
				if (wv->uniform) {
					add_run_uniform(wv->fill, p->transform.scale[c], x1 + pos, x2 + pos, run, r, f, m);
					continue;
				}
				add_run_f32(w + j, craw ? craw + 4 * j : NULL, p->transform.scale[c], x1 + pos, x2 + pos, run,
					    r, f, m);
				continue;
			}
			if (!have_w) {
				bnf_tview_read_range(wv, done, n, w);
				have_w = true;
			}
			if (!have_wf) {
				const char *why = stored_range(p, done, n, w, wf);
				if (why)
					return why;
				have_wf = true;
			}
			if (!vc->bn_before) {
				add_run(w + j, wf + j, x1 + pos, x2 + pos, run, r, f, m);
				continue;
			}
			for (size_t t = 0; t < run; t++)
				add_before(vc, g, sd, s, w[j + t], wf[j + t], x1[pos + t], x2[pos + t], k + t, ci, r, f, m);
		}
	}
	return NULL;
}

/* Weight elements per unit of work.  The units go to two sets, even and
 * odd, each summed on its own (by a thread of its own when the weight is
 * large and there are two CPUs) and added at the end: the same sums
 * whether one thread did the work or two. */
#define UNIT ((size_t)8 * CHUNK)

typedef struct unit_set {
	const bnf_verify_case *vc;
	const bnf_plan *p;
	const geom *g;
	const double *sd, *s, *x1, *x2;
	size_t parity; /* 0: units 0, 2, 4, ...; 1: units 1, 3, ... */
	double *w, *wf;
	uint8_t *bytes;
	sums acc;
	const char *problem;
} unit_set;

static void run_units(unit_set *u)
{
	size_t numel = u->vc->weight->numel;
	for (size_t first = u->parity * UNIT; first < numel && !u->problem; first += 2 * UNIT) {
		size_t last = numel - first < UNIT ? numel : first + UNIT;
		u->problem = pass(u->vc, u->p, u->g, u->sd, u->s, u->x1, u->x2, u->w, u->wf, u->bytes, &u->acc, first, last);
	}
}

static void *unit_thread(void *arg)
{
	run_units(arg);
	bnf_source_unmap(NULL); /* this thread's mapping window */
	return NULL;
}

static bool set_alloc(unit_set *u, size_t out_channels)
{
	u->acc.R = calloc(out_channels * NPROBE, sizeof(double));
	u->acc.F = calloc(out_channels * NPROBE, sizeof(double));
	u->acc.M = calloc(out_channels * NPROBE, sizeof(double));
	u->w = malloc(CHUNK * sizeof(double));
	u->wf = malloc(CHUNK * sizeof(double));
	u->bytes = malloc(CHUNK * 4);
	return u->acc.R && u->acc.F && u->acc.M && u->w && u->wf && u->bytes;
}

static void set_free(unit_set *u)
{
	free(u->acc.R);
	free(u->acc.F);
	free(u->acc.M);
	free(u->w);
	free(u->wf);
	free(u->bytes);
}

/* Set on a thread that runs checks beside the writer (bnf_verify_batch):
 * it sums every unit itself. */
static _Thread_local bool one_thread;

/* Whether a second thread may sum the odd units: two CPUs or more, and
 * BNFOLD_THREADS is not 1 (the tests compare both ways). */
static bool second_thread(void)
{
	const char *t = getenv("BNFOLD_THREADS");
	if (one_thread || (t && strcmp(t, "1") == 0))
		return false;
	return sysconf(_SC_NPROCESSORS_ONLN) >= 2;
}

/* Both sets of units, the sums ending in even->acc and a problem found in
 * *problem; -1 when memory runs out. */
static int sum_units(unit_set *even, unit_set *odd, size_t out_channels, const char **problem)
{
	pthread_t t;
	bool threaded = false;
	size_t n = out_channels * NPROBE;

	if (even->vc->weight->numel <= UNIT) {
		run_units(even);
		*problem = even->problem;
		return 0;
	}
	if (!set_alloc(odd, out_channels))
		return -1;
	threaded = second_thread() && pthread_create(&t, NULL, unit_thread, odd) == 0;
	run_units(even);
	if (threaded)
		pthread_join(t, NULL);
	else
		run_units(odd);
	*problem = even->problem ? even->problem : odd->problem;
	for (size_t i = 0; i < n && !*problem; i++) {
		even->acc.R[i] += odd->acc.R[i];
		even->acc.F[i] += odd->acc.F[i];
		even->acc.M[i] += odd->acc.M[i];
	}
	return 0;
}

int bnf_verify_run(const bnf_verify_case *vc, const bnf_plan *p, double tolerance, bnf_verify *v)
{
	geom g;
	unit_set even = {0}, odd = {0};
	double *sd = NULL, *s = NULL, *x1 = NULL, *x2 = NULL;
	double floor_term;
	size_t n_probe;
	int rc = -1;

	memset(v, 0, sizeof(*v));
	v->problem = make_geom(vc, p, &g);
	v->terms = g.terms;
	v->tolerance = tolerance >= 0 ? tolerance : bnf_verify_default_tolerance(p->dtype, g.terms);
	if (v->problem) {
		v->max_abs_err = v->max_rel_err = INFINITY;
		return 0;
	}
	lanes_choose();
	x1 = malloc(g.terms * sizeof(double));
	x2 = malloc(g.terms * sizeof(double));
	if (vc->op == BNF_VOP_BN) {
		sd = malloc(vc->channels * sizeof(double));
		s = malloc(vc->channels * sizeof(double));
	}
	if (!set_alloc(&even, g.out_channels) || !x1 || !x2 || (vc->op == BNF_VOP_BN && (!sd || !s))) {
		bnf_error("out of memory verifying a fusion");
		goto out;
	}
	/* BatchNormalization as its definition reads:
	 * Y = (X - mean) / sqrt(var + epsilon) * scale + B */
	for (size_t c = 0; vc->op == BNF_VOP_BN && c < vc->channels; c++) {
		sd[c] = sqrt(vc->var[c] + vc->eps);
		s[c] = vc->gamma[c] / sd[c];
	}
	probe_inputs(g.terms, x1, x2);
	even = (unit_set){.vc = vc, .p = p, .g = &g, .sd = sd, .s = s, .x1 = x1, .x2 = x2, .parity = 0,
			  .w = even.w, .wf = even.wf, .bytes = even.bytes, .acc = even.acc};
	odd = (unit_set){.vc = vc, .p = p, .g = &g, .sd = sd, .s = s, .x1 = x1, .x2 = x2, .parity = 1};
	if (sum_units(&even, &odd, g.out_channels, &v->problem) < 0) {
		bnf_error("out of memory verifying a fusion");
		goto out;
	}
	if (v->problem) {
		v->max_abs_err = v->max_rel_err = INFINITY;
		rc = 0;
		goto out;
	}

	floor_term = min_normal(p->dtype) * ((double)g.terms + 1.0);
	n_probe = vc->bn_before && vc->pad_axis >= 0 ? NPROBE : NPROBE - 1;
	for (size_t o = 0; o < g.out_channels; o++) {
		double bo = vc->bias ? vc->bias[vc->bias_len == 1 ? 0 : o] : 0.0, fb = folded_bias(vc, p, o);
		for (size_t q = 0; q < n_probe; q++) {
			double R = even.acc.R[o * NPROBE + q], F = even.acc.F[o * NPROBE + q], M = even.acc.M[o * NPROBE + q];
			double orig, mag, fold;
			if (vc->bn_before) {
				orig = R + bo;
				mag = M + fabs(bo);
				fold = F + fb;
			} else {
				double z = vc->alpha * R + vc->beta * bo, zmag = fabs(vc->alpha) * M + fabs(vc->beta * bo);
				double kk = vc->op == BNF_VOP_BN ? 0.0 : vc->k[vc->k_len == 1 ? 0 : o];
				switch (vc->op) {
				case BNF_VOP_BN:
					orig = (z - vc->mean[o]) / sd[o] * vc->gamma[o] + vc->bn_b[o];
					mag = fabs(s[o]) * (zmag + fabs(vc->mean[o])) + fabs(vc->bn_b[o]);
					break;
				case BNF_VOP_MUL:
					orig = z * kk;
					mag = fabs(kk) * zmag;
					break;
				default:
					orig = z + kk;
					mag = zmag + fabs(kk);
					break;
				}
				fold = vc->folded_alpha * F + vc->folded_beta * fb;
			}
			compare(v, fold, orig, mag + floor_term, o);
		}
	}
	v->ok = v->max_rel_err <= v->tolerance;
	rc = 0;
out:
	set_free(&even);
	set_free(&odd);
	free(sd);
	free(s);
	free(x1);
	free(x2);
	return rc;
}

/* ---- the case of a plan, from the graph ---- */

/* True when `from` is `to` carried through Transpose and Identity nodes
 * whose permutations, applied in turn, leave every axis where it was:
 * checked here on its own, apart from the plan's walk. */
static bool passes_through(const bnf_graph *gi, const char *from, const char *to)
{
	int64_t axes[BNF_MAX_RANK]; /* axes[i]: the layer's axis now at position i */
	size_t rank = 0;
	const char *name = from;

	for (int hop = 0; hop < 16; hop++) {
		const bnf_value *v = bnf_graph_value(gi, name);
		const Onnx__NodeProto *n;
		if (strcmp(name, to) == 0) {
			for (size_t i = 0; i < rank; i++)
				if (axes[i] != (int64_t)i)
					return false;
			return hop > 0;
		}
		if (!v || v->producer < 0)
			return false;
		n = gi->g->node[v->producer];
		if (bnf_node_is_onnx(n, "Transpose")) {
			const Onnx__AttributeProto *a = bnf_node_attr(n, "perm");
			int64_t next[BNF_MAX_RANK];
			if (!a || !a->n_ints || a->n_ints > BNF_MAX_RANK || (rank && rank != a->n_ints))
				return false;
			if (!rank)
				for (size_t i = 0; i < a->n_ints; i++)
					axes[i] = (int64_t)i;
			rank = a->n_ints;
			/* this node's output position i holds its input's position perm[i] */
			for (size_t i = 0; i < rank; i++) {
				if (a->ints[i] < 0 || (size_t)a->ints[i] >= rank)
					return false;
				next[i] = axes[a->ints[i]];
			}
			memcpy(axes, next, rank * sizeof(next[0]));
		} else if (!bnf_node_is_onnx(n, "Identity")) {
			return false;
		}
		name = n->input[0];
	}
	return false;
}

/* Resolve name to a float constant and read it into *out (caller frees).
 * 1 ok, 0 not a readable float constant, -1 out of memory. */
static int read_const(const bnf_graph *gi, const char *name, bnf_const *c, double **out)
{
	*out = NULL;
	if (!name || !name[0] || bnf_graph_const_eval(gi, name, c) != BNF_CONST_OK || !bnf_dtype_is_float(c->view.dtype)) {
		bnf_const_release(c);
		return 0;
	}
	if (!(*out = malloc((c->view.numel ? c->view.numel : 1) * sizeof(double)))) {
		bnf_const_release(c);
		return -1;
	}
	bnf_tview_read(&c->view, *out);
	bnf_const_release(c); /* the values are in *out; the view's shape stays */
	return 1;
}

/* The spatial axis of a Conv whose border reads padding, or -1. */
static void conv_border(const Onnx__NodeProto *conv, size_t n_spatial, int *axis, bool *at_end)
{
	const Onnx__AttributeProto *pads = bnf_node_attr(conv, "pads"), *ap = bnf_node_attr(conv, "auto_pad");

	*axis = -1;
	*at_end = false;
	if (ap && ap->has_s && ap->s.len >= 4 && memcmp(ap->s.data, "SAME", 4) == 0) {
		*axis = 0;
		*at_end = ap->s.len == 10 && memcmp(ap->s.data, "SAME_UPPER", 10) == 0;
		return;
	}
	if (ap && ap->has_s && ap->s.len == 5 && memcmp(ap->s.data, "VALID", 5) == 0)
		return;
	for (size_t d = 0; pads && d < 2 * n_spatial && d < pads->n_ints; d++) {
		if (pads->ints[d] > 0) {
			*axis = (int)(d % n_spatial);
			*at_end = d >= n_spatial;
			return;
		}
	}
}

struct bnf_verify_job {
	bnf_verify_case vc;
	bnf_tview weight;   /* vc.weight points here */
	bnf_plan plan;      /* a copy of the plan's fields that verify reads; scale and new_bias owned */
	double *bias, *prm[4], *k; /* the case's arrays, owned */
	double tolerance;
	size_t tag;
	bnf_verify v;
	int rc;
};

void bnf_verify_job_free(bnf_verify_job *j)
{
	if (!j)
		return;
	free(j->plan.scale);
	free(j->plan.new_bias);
	free(j->bias);
	free(j->k);
	for (int i = 0; i < 4; i++)
		free(j->prm[i]);
	free(j);
}

static double *dup_doubles(const double *a, size_t n)
{
	double *d = malloc((n ? n : 1) * sizeof(double));
	if (d && n)
		memcpy(d, a, n * sizeof(double));
	return d;
}

/* Package the case for later: 1 when it was (the arrays now belong to the
 * job), 0 when it must run now, -1 when memory runs out. */
static int package(const bnf_verify_case *vc, const bnf_plan *p, double tolerance, double **bias, double *prm[4],
		   double **k, bnf_verify_job **job)
{
	const bnf_tview *w = vc->weight, *pw = &p->weight.view;
	bnf_verify_job *j;

	if (!job || !w->src || w->lazy || !pw->src || pw->lazy || (p->scale_weight && !p->transform.scale))
		return 0;
	if (!(j = calloc(1, sizeof(*j))))
		return -1;
	j->vc = *vc;
	j->weight = *w;
	j->vc.weight = &j->weight;
	j->plan = *p;
	j->plan.scale = p->transform.scale ? dup_doubles(p->transform.scale, p->transform.layout.channels) : NULL;
	j->plan.transform.scale = j->plan.scale;
	j->plan.new_bias = p->new_bias ? dup_doubles(p->new_bias, p->bias_len) : NULL;
	if ((p->transform.scale && !j->plan.scale) || (p->new_bias && !j->plan.new_bias)) {
		bnf_verify_job_free(j);
		return -1;
	}
	j->bias = *bias;
	j->k = *k;
	*bias = *k = NULL;
	for (int i = 0; i < 4; i++) {
		j->prm[i] = prm[i];
		prm[i] = NULL;
	}
	j->tolerance = tolerance;
	*job = j;
	return 1;
}

int bnf_verify_plan(const bnf_graph *gi, const bnf_plan *p, double tolerance, bnf_verify *v)
{
	return bnf_verify_plan_later(gi, p, tolerance, v, NULL);
}

int bnf_verify_plan_later(const bnf_graph *gi, const bnf_plan *p, double tolerance, bnf_verify *v,
			  bnf_verify_job **job)
{
	const Onnx__NodeProto *node, *layer;
	bnf_verify_case vc;
	bnf_const wc, bc, pc[4], kc;
	double *bias = NULL, *prm[4] = {0}, *k = NULL;
	const char *problem = NULL;
	int r, rc = -1;

	if (job)
		*job = NULL;
	memset(v, 0, sizeof(*v));
	memset(&vc, 0, sizeof(vc));
	if (p->node < 0 || p->layer_node < 0 || (size_t)p->node >= gi->g->n_node ||
	    (size_t)p->layer_node >= gi->g->n_node) {
		problem = "the plan names no layer";
		goto done;
	}
	node = gi->g->node[p->node];
	layer = gi->g->node[p->layer_node];
	if (bnf_node_is_onnx(layer, "Conv"))
		vc.layer = BNF_VL_CONV;
	else if (bnf_node_is_onnx(layer, "ConvTranspose"))
		vc.layer = BNF_VL_CONVTRANSPOSE;
	else if (bnf_node_is_onnx(layer, "Gemm") || bnf_node_is_onnx(layer, "MatMul"))
		vc.layer = BNF_VL_GEMM;
	else {
		problem = "the layer is not a Conv, ConvTranspose, Gemm or MatMul";
		goto done;
	}
	if (layer->n_input < 2 || layer->n_output < 1 || bnf_graph_const(gi, layer->input[1], &wc) != BNF_CONST_OK ||
	    !bnf_dtype_is_float(wc.view.dtype)) {
		problem = "the layer's weight is not a float constant";
		goto done;
	}
	vc.weight = &wc.view;
	vc.alpha = vc.beta = 1.0;
	vc.pad_axis = -1;
	if (vc.layer != BNF_VL_GEMM) {
		int64_t g = bnf_node_attr_int(layer, "group", 1);
		vc.group = g >= 1 ? (size_t)g : 0;
	} else if (bnf_node_is_onnx(layer, "Gemm")) {
		vc.trans_b = bnf_node_attr_int(layer, "transB", 0) != 0;
		vc.alpha = (double)bnf_node_attr_float(layer, "alpha", 1.0f);
		vc.beta = (double)bnf_node_attr_float(layer, "beta", 1.0f);
	} else if (bnf_graph_rank(gi, layer->input[0]) != 2) {
		/* the BN's channel axis (1) is MatMul's last axis only for rank 2 */
		problem = "the MatMul input is not known to have rank 2";
		goto done;
	}
	vc.folded_alpha = vc.alpha;
	vc.folded_beta = p->reset_gemm_beta ? 1.0 : vc.beta;
	if (!bnf_node_is_onnx(layer, "MatMul") && layer->n_input >= 3 && layer->input[2][0]) {
		if ((r = read_const(gi, layer->input[2], &bc, &bias)) < 0)
			goto oom;
		if (r == 0) {
			problem = "the layer's bias is not a float constant";
			goto done;
		}
		vc.bias = bias;
		vc.bias_len = bc.view.numel;
	}

	if (bnf_node_is_onnx(node, "BatchNormalization")) {
		vc.op = BNF_VOP_BN;
		vc.eps = (double)bnf_node_attr_float(node, "epsilon", 1e-5f);
		vc.bn_before = node->n_output >= 1 && layer->n_input >= 1 && strcmp(layer->input[0], node->output[0]) == 0;
		if (node->n_input < 5 || (!vc.bn_before && strcmp(node->input[0], layer->output[0]) != 0 &&
					  !passes_through(gi, node->input[0], layer->output[0]))) {
			problem = "the BN is not next to the layer";
			goto done;
		}
		/* inputs 1-4: scale, B, mean, var */
		for (int i = 0; i < 4; i++) {
			if ((r = read_const(gi, node->input[i + 1], &pc[i], &prm[i])) < 0)
				goto oom;
			if (r == 0 || pc[i].view.numel != pc[0].view.numel) {
				problem = "a BN parameter is not a float constant of the BN's length";
				goto done;
			}
		}
		vc.gamma = prm[0];
		vc.bn_b = prm[1];
		vc.mean = prm[2];
		vc.var = prm[3];
		vc.channels = pc[0].view.numel;
		if (vc.bn_before)
			conv_border(layer, wc.view.rank >= 2 ? wc.view.rank - 2 : 0, &vc.pad_axis, &vc.pad_at_end);
	} else if ((bnf_node_is_onnx(node, "Mul") || bnf_node_is_onnx(node, "Add")) && node->n_input == 2) {
		int side = strcmp(node->input[0], layer->output[0]) == 0 ? 0 : strcmp(node->input[1], layer->output[0]) == 0 ? 1 : -1;
		size_t out_rank = vc.layer == BNF_VL_GEMM ? 2 : wc.view.rank;
		vc.op = bnf_node_is_onnx(node, "Mul") ? BNF_VOP_MUL : BNF_VOP_ADD;
		if (side < 0) {
			problem = "the Mul/Add does not read the layer's output";
			goto done;
		}
		if ((r = read_const(gi, node->input[1 - side], &kc, &k)) < 0)
			goto oom;
		if (r == 0 || kc.view.rank > out_rank) {
			problem = "the Mul/Add constant is not a float constant that broadcasts to the output";
			goto done;
		}
		/* Broadcasting aligns dims on the right; the constant may vary
		 * along the output's channel axis (1) only. */
		for (size_t d = 0; d < kc.view.rank; d++) {
			size_t axis = out_rank - kc.view.rank + d;
			if (kc.view.dims[d] != 1 && axis != 1) {
				problem = "the Mul/Add constant varies along an axis other than the channels";
				goto done;
			}
		}
		vc.k = k;
		vc.k_len = kc.view.numel;
		vc.channels = kc.view.numel;
	} else {
		problem = "the node is not a BatchNormalization, Mul or Add";
		goto done;
	}
	if ((r = package(&vc, p, tolerance, &bias, prm, &k, job)) < 0)
		goto oom;
	rc = r == 1 ? 0 : bnf_verify_run(&vc, p, tolerance, v);
	goto out;
oom:
	bnf_error("out of memory verifying a fusion");
	goto out;
done:
	memset(v, 0, sizeof(*v));
	v->problem = problem;
	v->max_abs_err = v->max_rel_err = INFINITY;
	v->tolerance = tolerance >= 0 ? tolerance : bnf_verify_default_tolerance(p->dtype, 0);
	rc = 0;
out:
	free(bias);
	free(k);
	for (int i = 0; i < 4; i++)
		free(prm[i]);
	return rc;
}

/* ---- checks run while the model is written ---- */

struct bnf_verify_batch {
	bnf_verify_job **jobs;
	size_t n, cap;
	pthread_t thread;
	bool running;
};

int bnf_verify_batch_add(bnf_verify_batch **bp, bnf_verify_job *j, size_t tag)
{
	bnf_verify_batch *b = *bp;

	if (!b && !(b = *bp = calloc(1, sizeof(*b)))) {
		bnf_verify_job_free(j);
		return bnf_error("out of memory verifying a fusion");
	}
	if (b->n == b->cap) {
		size_t cap = b->cap ? 2 * b->cap : 16;
		bnf_verify_job **v = realloc(b->jobs, cap * sizeof(*v));
		if (!v) {
			bnf_verify_job_free(j);
			return bnf_error("out of memory verifying a fusion");
		}
		b->jobs = v;
		b->cap = cap;
	}
	j->tag = tag;
	b->jobs[b->n++] = j;
	return 0;
}

static void run_jobs(bnf_verify_batch *b)
{
	for (size_t i = 0; i < b->n; i++) {
		bnf_verify_job *j = b->jobs[i];
		j->rc = bnf_verify_run(&j->vc, &j->plan, j->tolerance, &j->v);
	}
}

/* The jobs one after the other, the units of a weight on this thread only:
 * the other CPU writes the model meanwhile. */
static void *batch_thread(void *arg)
{
	one_thread = true;
	run_jobs(arg);
	bnf_source_unmap(NULL); /* this thread's mapping window */
	return NULL;
}

void bnf_verify_batch_start(bnf_verify_batch *b)
{
	if (!b || b->running || b->n == 0)
		return;
	lanes_choose();
	b->running = pthread_create(&b->thread, NULL, batch_thread, b) == 0;
}

static void batch_wait(bnf_verify_batch *b)
{
	if (b->running)
		pthread_join(b->thread, NULL);
	else
		run_jobs(b);
	b->running = false;
}

int bnf_verify_batch_finish(bnf_verify_batch *b, void (*put)(size_t tag, const bnf_verify *v, void *ctx), void *ctx)
{
	int rc = 0;

	if (!b)
		return 0;
	batch_wait(b);
	for (size_t i = 0; i < b->n; i++) {
		if (b->jobs[i]->rc < 0)
			rc = -1;
		else
			put(b->jobs[i]->tag, &b->jobs[i]->v, ctx);
	}
	bnf_verify_batch_free(b);
	return rc;
}

void bnf_verify_batch_free(bnf_verify_batch *b)
{
	if (!b)
		return;
	if (b->running)
		pthread_join(b->thread, NULL);
	for (size_t i = 0; i < b->n; i++)
		bnf_verify_job_free(b->jobs[i]);
	free(b->jobs);
	free(b);
}
