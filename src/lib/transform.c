#include "transform.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "tensor.h"

#ifdef __SSE2__
#include <emmintrin.h>
#endif

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define HOST_LE 1
#else
#define HOST_LE 0
#endif

/* Elements [i, i + run) share one channel: the rest of i's inner block. */
static size_t run_length(const bnf_layout *l, size_t i, size_t left)
{
	size_t run = l->inner - i % l->inner;
	return run < left ? run : left;
}

/* float32 stored little-endian on a little-endian host: work on the bytes. */
static bool fast_f32(const bnf_tview *v)
{
	return HOST_LE && v->dtype == BNF_DT_FLOAT && !v->lazy && (v->raw || v->src);
}

bool bnf_tview_in_place(const bnf_tview *v)
{
	return fast_f32(v) || ((v->dtype == BNF_DT_FLOAT16 || v->dtype == BNF_DT_BFLOAT16) && HOST_LE && !v->lazy &&
			       (v->raw || v->src));
}

/* Whether a stored element of dtype is finite: its exponent bits are not all ones. */
static bool stored_finite(int dtype, const uint8_t *p)
{
	switch (dtype) {
	case BNF_DT_FLOAT: return (p[3] & 0x7f) != 0x7f || (p[2] & 0x80) == 0;
	case BNF_DT_DOUBLE: return (p[7] & 0x7f) != 0x7f || (p[6] & 0xf0) != 0xf0;
	case BNF_DT_FLOAT16: return (p[1] & 0x7c) != 0x7c;
	case BNF_DT_BFLOAT16: return (p[1] & 0x7f) != 0x7f || (p[0] & 0x80) == 0;
	default: return true;
	}
}

/* bnf_encode for the float types, with direct calls: it runs once per element. */
static inline void encode_float(int dtype, double x, uint8_t *out)
{
	switch (dtype) {
	case BNF_DT_FLOAT: bnf_encode_f32(x, out); break;
	case BNF_DT_DOUBLE: bnf_encode_f64(x, out); break;
	case BNF_DT_FLOAT16: bnf_encode_f16(x, out); break;
	case BNF_DT_BFLOAT16: bnf_encode_bf16(x, out); break;
	default: break;
	}
}

#ifdef __SSE2__
/* Elements [k, end) of a float32 transform, four at a time in SSE2 (every
 * x86-64 has it), as far as that goes: returns where it stopped.  in holds
 * `avail` elements.  Each half of four is converted from memory by its own
 * 16-byte load, of which only the low 8 bytes are used (so compilers fold
 * it into the conversion; hence k + 6 <= avail): a plain loop, or one load
 * split by a shuffle, puts the shuffles on one port with the conversions
 * and runs a third slower, and the reads here miss the cache.  Products and
 * their rounding are the scalar loop's. */
static size_t scale_f32_sse2(const uint8_t *in, uint8_t *out, size_t k, size_t end, size_t avail, double s,
			     uint32_t *inf)
{
	__m128d vs = _mm_set1_pd(s);
	__m128i expo = _mm_set1_epi32(0x7f800000), vinf = _mm_setzero_si128();

	for (; k + 4 <= end && k + 6 <= avail; k += 4) {
		const float *p = (const float *)(const void *)(in + 4 * k);
		if (k % 16 == 0)
			__builtin_prefetch((const char *)p + BNF_PREFETCH_AHEAD);
		__m128d lo = _mm_mul_pd(_mm_cvtps_pd(_mm_loadu_ps(p)), vs);
		__m128d hi = _mm_mul_pd(_mm_cvtps_pd(_mm_loadu_ps(p + 2)), vs);
		__m128 f = _mm_movelh_ps(_mm_cvtpd_ps(lo), _mm_cvtpd_ps(hi));
		_mm_storeu_ps((float *)(void *)(out + 4 * k), f);
		vinf = _mm_or_si128(vinf, _mm_cmpeq_epi32(_mm_and_si128(_mm_castps_si128(f), expo), expo));
	}
	*inf |= (uint32_t)_mm_movemask_epi8(vinf);
	return k;
}
#endif

/* Elements [first, first + n) of a float32 transform from the stored bytes
 * in to out (neither need be aligned: through memcpy; in may be out);
 * whether every stored value is finite.  Each product is rounded once;
 * beyond float's range it becomes inf (IEC 60559, C11 Annex F), which the
 * caller hears of. */
static bool scale_f32(const bnf_transform *tf, size_t first, size_t n, const uint8_t *in, uint8_t *out)
{
	uint32_t inf = 0;

	for (size_t i = 0; i < n;) {
		size_t run = run_length(&tf->layout, first + i, n - i), k = i;
		double s = tf->scale[bnf_layout_channel(&tf->layout, first + i)];
#ifdef __SSE2__
		k = scale_f32_sse2(in, out, k, i + run, n, s, &inf);
#endif
		for (; k < i + run; k++) {
			float f;
			uint32_t b;
			memcpy(&f, in + 4 * k, 4);
			f = (float)((double)f * s);
			memcpy(out + 4 * k, &f, 4);
			memcpy(&b, &f, 4);
			inf |= (b & 0x7f800000u) == 0x7f800000u;
		}
		i += run;
	}
	return !inf;
}

/* Elements [first, first + n) of a float16 or bfloat16 transform (mant,
 * bias, nan_bits of the type, constants where it is called) from the
 * stored bytes in to out; whether every stored value is finite. */
static inline bool scale_small(const bnf_transform *tf, size_t first, size_t n, const uint8_t *in, uint8_t *out,
			       int mant, int bias, uint16_t nan_bits)
{
	uint16_t expo = (uint16_t)(((1u << (15 - mant)) - 1) << mant), inf = 0;

	for (size_t i = 0; i < n;) {
		size_t run = run_length(&tf->layout, first + i, n - i);
		double s = tf->scale[bnf_layout_channel(&tf->layout, first + i)];
		for (size_t k = i; k < i + run; k++) {
			uint16_t h = (uint16_t)(in[2 * k] | in[2 * k + 1] << 8);
			if (k % 32 == 0)
				__builtin_prefetch(in + 2 * k + BNF_PREFETCH_AHEAD);
			h = bnf_small_from_double(bnf_small_to_double(h, mant, bias) * s, mant, bias, nan_bits);
			out[2 * k] = (uint8_t)h;
			out[2 * k + 1] = (uint8_t)(h >> 8);
			inf |= (uint16_t)((h & expo) == expo);
		}
		i += run;
	}
	return !inf;
}

/* Elements [first, first + n) of any transform from their values in (as
 * doubles) to out; whether every stored value is finite. */
static bool scale_values(const bnf_transform *tf, size_t first, size_t n, const double *in, uint8_t *out)
{
	size_t es = bnf_dtype_size(tf->dtype);
	bool finite = true;

	for (size_t i = 0; i < n;) { /* one channel lookup per run */
		size_t run = run_length(&tf->layout, first + i, n - i);
		double s = tf->scale[bnf_layout_channel(&tf->layout, first + i)];
		for (size_t end = i + run; i < end; i++) {
			encode_float(tf->dtype, in[i] * s, out + i * es);
			finite = finite && stored_finite(tf->dtype, out + i * es);
		}
	}
	return finite;
}

bool bnf_transform_apply(const bnf_transform *tf, const bnf_tview *src, size_t first, size_t n, bnf_window *w,
			 double *scratch, unsigned char *out)
{
	bool small = tf->dtype == BNF_DT_FLOAT16 || tf->dtype == BNF_DT_BFLOAT16;
	const uint8_t *in;

	if ((tf->dtype == BNF_DT_FLOAT && fast_f32(src)) ||
	    (small && src->dtype == tf->dtype && bnf_tview_in_place(src))) {
		/* stored as such: from the bytes where they lie, else from a
		 * copy in out, scaled and rounded element by element */
		if (!(in = bnf_tview_map(src, first, n, w))) {
			bnf_tview_raw_range(src, first, n, out);
			in = out;
		}
		if (tf->dtype == BNF_DT_FLOAT)
			return scale_f32(tf, first, n, in, out);
		return tf->dtype == BNF_DT_FLOAT16
			       ? scale_small(tf, first, n, in, out, BNF_F16_MANT, BNF_F16_BIAS, BNF_F16_NAN)
			       : scale_small(tf, first, n, in, out, BNF_BF16_MANT, BNF_BF16_BIAS, BNF_BF16_NAN);
	}
	bnf_tview_read_range(src, first, n, scratch);
	return scale_values(tf, first, n, scratch, out);
}

/* The largest |x| of n float32 elements given as their bits, as bits:
 * clearing the sign bit orders them as integers, and every NaN or Inf
 * compares at or above 0x7f800000.  A cache line (16 elements) at a time,
 * asking for the one BNF_PREFETCH_AHEAD on; the line's loop vectorizes. */
static uint32_t f32_maxabs_bits(const uint8_t *p, size_t n, uint32_t m)
{
	for (size_t k0 = 0; k0 < n; k0 += 16) {
		size_t end = n - k0 < 16 ? n : k0 + 16;
		__builtin_prefetch(p + 4 * k0 + BNF_PREFETCH_AHEAD);
		for (size_t k = k0; k < end; k++) {
			uint32_t a;
			memcpy(&a, p + 4 * k, 4);
			a &= 0x7fffffffu;
			m = a > m ? a : m;
		}
	}
	return m;
}

/* bnf_tview_channel_maxabs over elements [first, first + n) of stored
 * float32 bytes b, into the channels' largest |x| as bits. */
static int f32_maxabs_chunk(const bnf_layout *l, size_t first, size_t n, const uint8_t *b, uint32_t *mbits,
			    size_t *bad)
{
	for (size_t i = 0; i < n;) {
		size_t run = run_length(l, first + i, n - i), c = bnf_layout_channel(l, first + i);
		uint32_t m = f32_maxabs_bits(b + 4 * i, run, mbits[c]);
		if (m >= 0x7f800000u) { /* NaN or Inf: which one */
			size_t k = 0;
			while (f32_maxabs_bits(b + 4 * (i + k), 1, 0) < 0x7f800000u)
				k++;
			*bad = first + i + k;
			return 1;
		}
		mbits[c] = m;
		i += run;
	}
	return 0;
}

/* bnf_tview_channel_maxabs over elements [first, first + n), given as
 * doubles in x. */
static int maxabs_chunk(const bnf_layout *l, size_t first, size_t n, const double *x, double *maxabs, size_t *bad)
{
	for (size_t i = 0; i < n;) {
		size_t run = run_length(l, first + i, n - i), c = bnf_layout_channel(l, first + i);
		double m = maxabs[c];
		for (size_t k = i; k < i + run; k++) {
			double a = fabs(x[k]);
			if (!(a <= DBL_MAX)) { /* NaN or Inf */
				maxabs[c] = m;
				*bad = first + k;
				return 1;
			}
			m = a > m ? a : m;
		}
		maxabs[c] = m;
		i += run;
	}
	return 0;
}

int bnf_tview_channel_maxabs(const bnf_tview *v, const bnf_layout *l, double *maxabs, size_t *bad)
{
	enum { CHUNK = 1 << 16 };
	bool f32 = fast_f32(v);
	double *scratch = malloc(CHUNK * (f32 ? sizeof(float) : sizeof(double)));
	uint32_t *mbits = f32 ? calloc(l->channels ? l->channels : 1, sizeof(uint32_t)) : NULL;
	bnf_window win = BNF_WINDOW_INIT; /* this scan's own, dropped at the end */
	int rc = 0;

	if (!scratch || (f32 && !mbits)) {
		rc = -1;
		goto out;
	}
	for (size_t c = 0; c < l->channels; c++)
		maxabs[c] = 0.0;
	for (size_t done = 0; done < v->numel && rc == 0; done += CHUNK) {
		size_t n = v->numel - done < CHUNK ? v->numel - done : CHUNK;
		if (f32) {
			const uint8_t *b = bnf_tview_map(v, done, n, &win);
			if (!b) {
				bnf_tview_raw_range(v, done, n, scratch);
				b = (const uint8_t *)scratch;
			}
			rc = f32_maxabs_chunk(l, done, n, b, mbits, bad);
		} else {
			bnf_tview_read_range(v, done, n, scratch);
			rc = maxabs_chunk(l, done, n, scratch, maxabs, bad);
		}
	}
	for (size_t c = 0; f32 && c < l->channels; c++) {
		float f;
		memcpy(&f, &mbits[c], 4);
		maxabs[c] = f;
	}
out:
	bnf_window_drop(&win);
	free(scratch);
	free(mbits);
	return rc;
}
