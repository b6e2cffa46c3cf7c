/* One pass over a range of a weight's elements: per output channel and
 * probe, the sums of the original arithmetic, of the folded layer (the
 * folded weight worked out as the writer stores it) and of the magnitudes
 * of the original's terms. */
#include "verify_sums.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tensor.h"
#include "verify_lanes.h"

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

/* add_run for float32 elements that the plan scales by one sc, from
 * doubles (w) or straight from the little-endian bytes the model stores
 * (raw, when not NULL; in four lanes, their AVX2 build when avx2). */
static void add_run_f32(const double *w, const uint8_t *raw, double sc, const double *x1, const double *x2, size_t n,
			bool avx2, double *r, double *f, double *m)
{
	double a[6] = {0};
	if (raw) {
		size_t j = 0;
#if BNF_VERIFY_LANES
		j = bnf_verify_lanes_f32(raw, sc, x1, x2, n, a, avx2);
		raw += 4 * j;
#else
		(void)avx2;
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
static void add_before(const bnf_verify_ctx *x, double w, double wf, double x1, double x2, size_t k, size_t ci,
		       double *r, double *f, double *m)
{
	/* the BN's output on input channel ci, as the Conv reads it */
	const bnf_verify_case *vc = x->vc;
	const bnf_verify_geom *g = x->g;
	double mu = vc->mean[ci], sdv = x->sd[ci], ga = vc->gamma[ci], be = vc->bn_b[ci];
	double y0, y1, y2, aw = fabs(w), as = fabs(x->s[ci]), base;

	y0 = (0.0 - mu) / sdv * ga + be;
	y1 = (x1 - mu) / sdv * ga + be;
	y2 = (x2 - mu) / sdv * ga + be;
	base = aw * (as * fabs(mu) + fabs(be));
	r[BNF_VERIFY_P_ZERO] += w * y0;
	m[BNF_VERIFY_P_ZERO] += base;
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
			r[BNF_VERIFY_P_BORDER] += w * y1;
			f[BNF_VERIFY_P_BORDER] += wf * x1;
			m[BNF_VERIFY_P_BORDER] += aw * as * fabs(x1) + base;
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

static size_t out_channel(const bnf_verify_case *vc, const bnf_verify_geom *g, size_t a, size_t b)
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
static size_t field_pos(const bnf_verify_case *vc, const bnf_verify_geom *g, size_t a, size_t b)
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
static size_t in_channel(const bnf_verify_geom *g, size_t a, size_t b)
{
	return (a / g->rows_per_group) * g->d1 + b;
}

/* Where weight element i goes: output channel *o, position *pos of the
 * receptive field, input channel *ci (BN before a Conv) and tap *k of its
 * row; returns how many elements from i on share o and ci with
 * consecutive positions. */
static size_t locate(const bnf_verify_case *vc, const bnf_verify_geom *g, size_t i, size_t *o, size_t *pos, size_t *ci,
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

/* B [K, N] after the layer: row k feeds every output channel with input k;
 * elements [done, done + n) one by one, without a division each. */
static const char *pass_gemm_kn(const bnf_verify_ctx *x, bnf_verify_acc *a, size_t done, size_t n)
{
	const bnf_verify_geom *g = x->g;
	const double *x1 = x->x1, *x2 = x->x2;
	double *w = a->w, *wf = a->wf;
	const char *why;
	size_t k = done / g->d1, o = done % g->d1;

	bnf_tview_read_range(x->vc->weight, done, n, w);
	if ((why = stored_range(x->p, done, n, w, wf)))
		return why;
	for (size_t j = 0; j < n; j++) {
		double t1 = w[j] * x1[k], t2 = w[j] * x2[k];
		double *r = a->R + o * BNF_VERIFY_NPROBE, *f = a->F + o * BNF_VERIFY_NPROBE,
		       *m = a->M + o * BNF_VERIFY_NPROBE;
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
	return NULL;
}

/* Elements [done, done + n) run by run (locate): craw holds their float32
 * bytes when they are at hand, else NULL; with fuse, a run in one run of
 * the plan's layout is folded on the way. */
static const char *pass_runs(const bnf_verify_ctx *x, bnf_verify_acc *a, size_t done, size_t n, const uint8_t *craw,
			     bool fuse)
{
	const bnf_verify_case *vc = x->vc;
	const bnf_plan *p = x->p;
	const bnf_tview *wv = vc->weight;
	const bnf_layout *l = &p->transform.layout;
	const double *x1 = x->x1, *x2 = x->x2;
	double *w = a->w, *wf = a->wf;
	bool have_w = false, have_wf = false;

	for (size_t j = 0, run; j < n; j += run) {
		size_t o, pos, ci, k, i = done + j, c;
		double *r, *f, *m;
		run = locate(vc, x->g, i, &o, &pos, &ci, &k);
		if (run > n - j)
			run = n - j;
		r = a->R + o * BNF_VERIFY_NPROBE;
		f = a->F + o * BNF_VERIFY_NPROBE;
		m = a->M + o * BNF_VERIFY_NPROBE;
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
				    x->avx2, r, f, m);
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
			add_before(x, w[j + t], wf[j + t], x1[pos + t], x2[pos + t], k + t, ci, r, f, m);
	}
	return NULL;
}

const char *bnf_verify_pass(const bnf_verify_ctx *x, bnf_verify_acc *a, size_t first, size_t last)
{
	const bnf_verify_case *vc = x->vc;
	const bnf_plan *p = x->p;
	const bnf_tview *wv = vc->weight;
	/* float32 after a layer, the common case: fold on the way when a
	 * segment lies in one run of the plan's layout (it does when the
	 * layout is right), reading raw_data in place */
	bool fuse = p->scale_weight && p->dtype == BNF_DT_FLOAT && !vc->bn_before;
	bool stored = fuse && wv->dtype == BNF_DT_FLOAT && wv->raw && !wv->lazy && !wv->uniform && !wv->floats;
	const uint8_t *raw = stored && !wv->src ? wv->raw : NULL; /* in memory */
	bool from_file = stored && wv->src;                        /* left in the input file: bytes per chunk */

	for (size_t done = first; done < last; done += BNF_VERIFY_CHUNK) {
		size_t n = last - done < BNF_VERIFY_CHUNK ? last - done : BNF_VERIFY_CHUNK;
		const uint8_t *craw = raw ? raw + 4 * done : NULL;
		const char *why;
		if (from_file && !(craw = bnf_tview_map(wv, done, n, &a->win)) &&
		    bnf_tview_raw_range(wv, done, n, a->bytes) == 0)
			craw = a->bytes;
		if (vc->layer == BNF_VL_GEMM && !vc->trans_b && !vc->bn_before)
			why = pass_gemm_kn(x, a, done, n);
		else
			why = pass_runs(x, a, done, n, craw, fuse);
		if (why)
			return why;
	}
	return NULL;
}

bool bnf_verify_acc_alloc(bnf_verify_acc *a, size_t out_channels)
{
	a->R = calloc(out_channels * BNF_VERIFY_NPROBE, sizeof(double));
	a->F = calloc(out_channels * BNF_VERIFY_NPROBE, sizeof(double));
	a->M = calloc(out_channels * BNF_VERIFY_NPROBE, sizeof(double));
	a->w = malloc(BNF_VERIFY_CHUNK * sizeof(double));
	a->wf = malloc(BNF_VERIFY_CHUNK * sizeof(double));
	a->bytes = malloc(BNF_VERIFY_CHUNK * 4);
	return a->R && a->F && a->M && a->w && a->wf && a->bytes;
}

void bnf_verify_acc_free(bnf_verify_acc *a)
{
	free(a->R);
	free(a->F);
	free(a->M);
	free(a->w);
	free(a->wf);
	free(a->bytes);
	bnf_window_drop(&a->win);
}
