#include "tensor.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "payload.h"

size_t bnf_dtype_size(int dtype)
{
	switch (dtype) {
	case BNF_DT_FLOAT: return 4;
	case BNF_DT_DOUBLE: return 8;
	case BNF_DT_FLOAT16: return 2;
	case BNF_DT_BFLOAT16: return 2;
	case BNF_DT_INT32: return 4;
	case BNF_DT_INT64: return 8;
	default: return 0;
	}
}

const char *bnf_dtype_name(int dtype)
{
	switch (dtype) {
	case BNF_DT_FLOAT: return "float32";
	case BNF_DT_DOUBLE: return "float64";
	case BNF_DT_FLOAT16: return "float16";
	case BNF_DT_BFLOAT16: return "bfloat16";
	case BNF_DT_INT32: return "int32";
	case BNF_DT_INT64: return "int64";
	default: return "unknown";
	}
}

bool bnf_dtype_is_float(int dtype)
{
	return dtype == BNF_DT_FLOAT || dtype == BNF_DT_DOUBLE ||
	       dtype == BNF_DT_FLOAT16 || dtype == BNF_DT_BFLOAT16;
}

/* How many elements the typed field matching dtype holds, and whether that
 * field is the one in use.  raw_data is checked separately. */
static size_t typed_count(const Onnx__TensorProto *t, int dtype)
{
	switch (dtype) {
	case BNF_DT_FLOAT: return t->n_float_data;
	case BNF_DT_DOUBLE: return t->n_double_data;
	case BNF_DT_FLOAT16:
	case BNF_DT_BFLOAT16:
	case BNF_DT_INT32: return t->n_int32_data;
	case BNF_DT_INT64: return t->n_int64_data;
	default: return 0;
	}
}

bnf_tensor_status bnf_tview_from_tensor(const Onnx__TensorProto *t, bnf_tview *v,
					char *err, size_t errlen)
{
	size_t numel = 1, esize, bytes;

	memset(v, 0, sizeof(*v));
	v->tensor = t;
	v->dtype = t->has_data_type ? t->data_type : 0;
	if (t->has_data_location && t->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL) {
		snprintf(err, errlen, "data is stored externally, which this version does not read");
		return BNF_TENSOR_UNSUPPORTED;
	}
	if (t->n_dims > BNF_MAX_RANK) {
		snprintf(err, errlen, "rank %zu is above %d", t->n_dims, BNF_MAX_RANK);
		return BNF_TENSOR_UNSUPPORTED;
	}
	v->rank = t->n_dims;
	for (size_t i = 0; i < t->n_dims; i++) {
		if (t->dims[i] < 0) {
			snprintf(err, errlen, "dimension %zu is negative (%lld)", i, (long long)t->dims[i]);
			return BNF_TENSOR_MALFORMED;
		}
		if ((uint64_t)t->dims[i] > SIZE_MAX || !bnf_mul_size(numel, (size_t)t->dims[i], &numel)) {
			snprintf(err, errlen, "element count overflows");
			return BNF_TENSOR_MALFORMED;
		}
		v->dims[i] = t->dims[i];
	}
	v->numel = numel;
	esize = bnf_dtype_size(v->dtype);
	if (esize == 0) {
		snprintf(err, errlen, "data type %d is not supported", v->dtype);
		return BNF_TENSOR_BAD_DTYPE;
	}
	if (t->has_raw_data) {
		if (!bnf_mul_size(numel, esize, &bytes)) {
			snprintf(err, errlen, "its dims declare %zu elements of %s, more bytes than a machine has",
				 numel, bnf_dtype_name(v->dtype));
			return BNF_TENSOR_MALFORMED;
		}
		if (bytes != t->raw_data.len) {
			snprintf(err, errlen, "raw_data has %zu bytes but %zu elements of %s need %zu",
				 t->raw_data.len, numel, bnf_dtype_name(v->dtype), bytes);
			return BNF_TENSOR_MALFORMED;
		}
		v->raw = t->raw_data.data;
		return BNF_TENSOR_OK;
	}
	if (typed_count(t, v->dtype) != numel) {
		snprintf(err, errlen, "holds %zu %s values but its dims need %zu",
			 typed_count(t, v->dtype), bnf_dtype_name(v->dtype), numel);
		return BNF_TENSOR_MALFORMED;
	}
	return BNF_TENSOR_OK;
}

/* double -> float rounded to nearest even; out-of-range values become
 * +-inf as IEEE 754 says, without the undefined behaviour of a C cast. */
static float to_float(double x)
{
	const double limit = (double)FLT_MAX + ldexp(1.0, 103); /* FLT_MAX + half an ulp */
	if (fabs(x) >= limit)
		return x > 0 ? INFINITY : -INFINITY;
	if (fabs(x) > FLT_MAX)
		return x > 0 ? FLT_MAX : -FLT_MAX;
	return (float)x;
}

static uint64_t load_le(const uint8_t *p, size_t n)
{
	uint64_t x = 0;
	for (size_t i = 0; i < n; i++)
		x |= (uint64_t)p[i] << (8 * i);
	return x;
}

static void store_le(uint8_t *p, uint64_t x, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(x >> (8 * i));
}

/* 2^k as a double, for -1022 <= k <= 1023, built from its bits. */
static double pow2(int k)
{
	uint64_t b = (uint64_t)(k + 1023) << 52;
	double d;
	memcpy(&d, &b, 8);
	return d;
}

/* Round |x| (finite, >= 0) to a binary float with `mant` stored mantissa
 * bits, exponent bias `bias`; returns the bit pattern without sign, with
 * the all-ones exponent (infinity) on overflow.  Scaling by powers of two
 * is exact in double, and nearbyint rounds to nearest even, so the value
 * is rounded exactly once. */
static uint32_t round_small_float(double ax, int mant, int bias)
{
	int emin = 1 - bias;          /* exponent of the smallest normal */
	int emax_field = 2 * bias + 1; /* all-ones exponent field */
	int e;
	double m;

	if (ax == 0.0)
		return 0;
	frexp(ax, &e);
	e -= 1; /* ax = 1.f * 2^e */
	if (e < emin) {
		/* subnormal: count units of 2^(emin - mant) */
		m = nearbyint(ldexp(ax, mant - emin));
		/* m == 2^mant rounds up into the smallest normal: same bits */
		return (uint32_t)m;
	}
	m = nearbyint(ldexp(ax, mant - e));
	if (m >= ldexp(1.0, mant + 1)) {
		m /= 2;
		e += 1;
	}
	if (e + bias >= emax_field)
		return (uint32_t)emax_field << mant;
	return ((uint32_t)(e + bias) << mant) | ((uint32_t)m - (1u << mant));
}

/* x rounded to `mant` stored mantissa bits, to nearest even, by rounding
 * the double's own significand: exact while x and the result are normal
 * numbers of the small type, which the caller checks. */
static double round_significand(double x, int mant)
{
	int drop = 52 - mant;
	uint64_t b;
	memcpy(&b, &x, 8);
	b += ((uint64_t)1 << (drop - 1)) - 1 + ((b >> drop) & 1);
	b &= ~(((uint64_t)1 << drop) - 1);
	memcpy(&x, &b, 8);
	return x;
}

static inline uint16_t small_from_double(double x, int mant, int bias, uint16_t nan_bits)
{
	uint64_t xb;
	uint16_t sign, inf = (uint16_t)(((uint32_t)(2 * bias + 1)) << mant);
	double a = fabs(x);

	memcpy(&xb, &x, 8);
	sign = (uint16_t)((xb >> 48) & 0x8000); /* no branch on it */
	if (isnan(x))
		return nan_bits;
	if (isinf(x))
		return sign | inf;
	if (a >= pow2(1 - bias) && a < pow2(bias + 1)) {
		/* normal in the small type: round the double's significand and
		 * take its fields (a carry may raise the exponent, to inf) */
		double r = round_significand(a, mant);
		uint64_t b;
		int e;
		memcpy(&b, &r, 8);
		e = (int)(b >> 52) - 1023;
		if (e > bias)
			return sign | inf;
		return sign | (uint16_t)((uint32_t)(e + bias) << mant | ((uint32_t)(b >> (52 - mant)) & ((1u << mant) - 1)));
	}
	return sign | (uint16_t)round_small_float(a, mant, bias);
}

static inline double small_to_double(uint16_t h, int mant, int bias)
{
	int ebits = 15 - mant;
	uint32_t e = (h >> mant) & ((1u << ebits) - 1);
	uint32_t f = h & ((1u << mant) - 1);
	double v;

	uint64_t b;

	if (e == (1u << ebits) - 1 || e == 0) {
		if (e)
			v = f ? NAN : INFINITY;
		else
			v = (double)f * pow2(1 - bias - mant); /* exact: f has at most 10 bits */
		return (h & 0x8000) ? -v : v;
	}
	/* a normal number: the same sign, exponent and mantissa in a double's
	 * fields, without a branch on the sign (this runs for every weight
	 * read, whose signs are random) */
	b = (uint64_t)(h & 0x8000) << 48 | (uint64_t)((int)e - bias + 1023) << 52 | (uint64_t)f << (52 - mant);
	memcpy(&v, &b, 8);
	return v;
}

uint16_t bnf_f16_from_double(double x) { return small_from_double(x, 10, 15, 0x7e00); }
double bnf_f16_to_double(uint16_t h) { return small_to_double(h, 10, 15); }
uint16_t bnf_bf16_from_double(double x) { return small_from_double(x, 7, 127, 0x7fc0); }
double bnf_bf16_to_double(uint16_t h) { return small_to_double(h, 7, 127); }

double bnf_decode(int dtype, const uint8_t *p)
{
	uint64_t bits;
	switch (dtype) {
	case BNF_DT_FLOAT: {
		uint32_t b = (uint32_t)load_le(p, 4);
		float f;
		memcpy(&f, &b, 4);
		return f;
	}
	case BNF_DT_DOUBLE: {
		double d;
		bits = load_le(p, 8);
		memcpy(&d, &bits, 8);
		return d;
	}
	case BNF_DT_FLOAT16: return small_to_double((uint16_t)load_le(p, 2), 10, 15);
	case BNF_DT_BFLOAT16: return small_to_double((uint16_t)load_le(p, 2), 7, 127);
	case BNF_DT_INT32: return (double)(int32_t)(uint32_t)load_le(p, 4);
	case BNF_DT_INT64: return (double)(int64_t)load_le(p, 8);
	default: return NAN;
	}
}

void bnf_encode(int dtype, double x, uint8_t *out)
{
	switch (dtype) {
	case BNF_DT_FLOAT: {
		float f = to_float(x);
		uint32_t b;
		memcpy(&b, &f, 4);
		store_le(out, b, 4);
		break;
	}
	case BNF_DT_DOUBLE: {
		uint64_t b;
		memcpy(&b, &x, 8);
		store_le(out, b, 8);
		break;
	}
	case BNF_DT_FLOAT16: store_le(out, small_from_double(x, 10, 15, 0x7e00), 2); break;
	case BNF_DT_BFLOAT16: store_le(out, small_from_double(x, 7, 127, 0x7fc0), 2); break;
	default: break;
	}
}

void bnf_tview_bind(bnf_tview *v, const bnf_payloads *pl)
{
	bnf_source *src;
	if (!v->raw || !pl)
		return;
	if ((v->lazy = bnf_payloads_lazy(pl, v->raw)))
		return;
	if (!(src = bnf_payloads_source_of(pl, v->raw)))
		return;
	v->src = src;
	v->src_off = (uint64_t)(v->raw - src->base);
}

static void decode_run(int dtype, const uint8_t *p, size_t n, double *out)
{
	if (dtype == BNF_DT_FLOAT) {
		for (size_t i = 0; i < n; i++, p += 4) {
			uint32_t b = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
			float f;
			memcpy(&f, &b, 4);
			out[i] = f;
		}
		return;
	}
	if (dtype == BNF_DT_FLOAT16) {
		for (size_t i = 0; i < n; i++, p += 2)
			out[i] = small_to_double((uint16_t)(p[0] | p[1] << 8), 10, 15);
		return;
	}
	if (dtype == BNF_DT_BFLOAT16) {
		for (size_t i = 0; i < n; i++, p += 2)
			out[i] = small_to_double((uint16_t)(p[0] | p[1] << 8), 7, 127);
		return;
	}
	for (size_t i = 0; i < n; i++)
		out[i] = bnf_decode(dtype, p + i * bnf_dtype_size(dtype));
}

/* Elements [first, first + n) from the input file, through a small buffer. */
static void read_from_source(const bnf_tview *v, size_t first, size_t n, double *out)
{
	uint8_t buf[1 << 14];
	size_t es = bnf_dtype_size(v->dtype), per = sizeof(buf) / es;

	while (n > 0) {
		size_t k = n < per ? n : per, got = 0;
		uint64_t off = v->src_off + (uint64_t)first * es;
		while (got < k * es) {
			ssize_t r = pread(v->src->fd, buf + got, k * es - got, (off_t)(off + got));
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0) {
				if (!v->src->err)
					v->src->err = r < 0 ? errno : EIO;
				for (size_t i = 0; i < n; i++)
					out[i] = NAN;
				return;
			}
			got += (size_t)r;
		}
		decode_run(v->dtype, buf, k, out);
		out += k;
		first += k;
		n -= k;
	}
}

void bnf_tview_read_range(const bnf_tview *v, size_t first, size_t n, double *out)
{
	const Onnx__TensorProto *t = v->tensor;

	if (v->uniform) {
		for (size_t i = 0; i < n; i++)
			out[i] = v->fill;
		return;
	}
	if (v->floats) {
		for (size_t i = 0; i < n; i++)
			out[i] = v->floats[first + i];
		return;
	}
	if (v->doubles) {
		memcpy(out, v->doubles + first, n * sizeof(double));
		return;
	}
	if (v->lazy) {
		bnf_lazy_read(v->lazy, first, n, out);
		return;
	}
	if (v->src) {
		read_from_source(v, first, n, out);
		return;
	}
	if (v->raw) {
		decode_run(v->dtype, v->raw + first * bnf_dtype_size(v->dtype), n, out);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		size_t k = first + i;
		switch (v->dtype) {
		case BNF_DT_FLOAT: out[i] = t->float_data[k]; break;
		case BNF_DT_DOUBLE: out[i] = t->double_data[k]; break;
		case BNF_DT_FLOAT16: out[i] = bnf_f16_to_double((uint16_t)t->int32_data[k]); break;
		case BNF_DT_BFLOAT16: out[i] = bnf_bf16_to_double((uint16_t)t->int32_data[k]); break;
		case BNF_DT_INT32: out[i] = t->int32_data[k]; break;
		case BNF_DT_INT64: out[i] = (double)t->int64_data[k]; break;
		default: out[i] = NAN; break;
		}
	}
}

void bnf_tview_read(const bnf_tview *v, double *out)
{
	bnf_tview_read_range(v, 0, v->numel, out);
}

int bnf_tview_read_i64(const bnf_tview *v, int64_t *out)
{
	const Onnx__TensorProto *t = v->tensor;

	if ((v->dtype != BNF_DT_INT64 && v->dtype != BNF_DT_INT32) || !t || v->src || v->lazy || v->doubles)
		return -1; /* shapes are small: never left in the file */
	for (size_t i = 0; i < v->numel; i++) {
		if (v->raw)
			out[i] = v->dtype == BNF_DT_INT64
				 ? (int64_t)load_le(v->raw + 8 * i, 8)
				 : (int32_t)(uint32_t)load_le(v->raw + 4 * i, 4);
		else
			out[i] = v->dtype == BNF_DT_INT64 ? t->int64_data[i] : t->int32_data[i];
	}
	return 0;
}


double bnf_round_to(int dtype, double x)
{
	double a = fabs(x);
	switch (dtype) {
	case BNF_DT_FLOAT: return (double)to_float(x);
	case BNF_DT_DOUBLE: return x;
	case BNF_DT_FLOAT16:
		/* normal numbers up to the largest finite (65504) the short way */
		if (a >= 0x1p-14 && a <= 65504.0)
			return round_significand(x, 10);
		return bnf_f16_to_double(bnf_f16_from_double(x));
	case BNF_DT_BFLOAT16:
		if (a >= 0x1p-126 && a <= 0x1.fep127)
			return round_significand(x, 7);
		return bnf_bf16_to_double(bnf_bf16_from_double(x));
	default: return NAN;
	}
}

size_t bnf_layout_channel(const bnf_layout *l, size_t i)
{
	size_t row = i / (l->per_group * l->inner);
	return (row / l->rows_per_group) * l->per_group + (i / l->inner) % l->per_group;
}

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define HOST_LE 1
#else
#define HOST_LE 0
#endif

int bnf_tview_raw_range(const bnf_tview *v, size_t first, size_t n, void *dst)
{
	size_t es = bnf_dtype_size(v->dtype), got = 0, len = n * es;
	uint64_t off;

	if (v->lazy || v->doubles || !(v->raw || v->src))
		return -1;
	if (!v->src) {
		memcpy(dst, v->raw + first * es, len);
		return 0;
	}
	off = v->src_off + (uint64_t)first * es;
	while (got < len) {
		ssize_t r = pread(v->src->fd, (uint8_t *)dst + got, len - got, (off_t)(off + got));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			if (!v->src->err)
				v->src->err = r < 0 ? errno : EIO;
			memset((uint8_t *)dst + got, 0, len - got);
			return 0;
		}
		got += (size_t)r;
	}
	return 0;
}

const uint8_t *bnf_tview_raw_view(const bnf_tview *v, size_t first, size_t n)
{
	size_t es = bnf_dtype_size(v->dtype);

	if (v->lazy || v->doubles || !v->raw)
		return NULL;
	if (!v->src)
		return v->raw + first * es;
	return bnf_source_map(v->src, v->src_off + (uint64_t)first * es, n * es);
}

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
			h = small_from_double(small_to_double(h, mant, bias) * s, mant, bias, nan_bits);
			out[2 * k] = (uint8_t)h;
			out[2 * k + 1] = (uint8_t)(h >> 8);
			inf |= (uint16_t)((h & expo) == expo);
		}
		i += run;
	}
	return !inf;
}

bool bnf_tview_in_place(const bnf_tview *v)
{
	return fast_f32(v) || ((v->dtype == BNF_DT_FLOAT16 || v->dtype == BNF_DT_BFLOAT16) && HOST_LE && !v->lazy &&
			       (v->raw || v->src));
}

bool bnf_transform_apply(const bnf_transform *tf, const bnf_tview *src, size_t first, size_t n,
			 double *scratch, unsigned char *out)
{
	size_t es = bnf_dtype_size(tf->dtype);
	bool finite = true;

	if (tf->dtype == BNF_DT_FLOAT && fast_f32(src)) {
		/* from the stored bytes where they lie, else from a copy in out;
		 * through memcpy, as neither need be aligned */
		const uint8_t *in = bnf_tview_raw_view(src, first, n);
		if (!in) {
			bnf_tview_raw_range(src, first, n, out);
			in = out;
		}
		uint32_t inf = 0;
		for (size_t i = 0; i < n;) {
			size_t run = run_length(&tf->layout, first + i, n - i);
			double s = tf->scale[bnf_layout_channel(&tf->layout, first + i)];
			for (size_t k = i; k < i + run; k++) {
				float f;
				uint32_t b;
				memcpy(&f, in + 4 * k, 4);
				/* rounded once; beyond float's range it becomes inf
				 * (IEC 60559, C11 Annex F), which the caller hears of */
				f = (float)((double)f * s);
				memcpy(out + 4 * k, &f, 4);
				memcpy(&b, &f, 4);
				inf |= (b & 0x7f800000u) == 0x7f800000u;
			}
			i += run;
		}
		return !inf;
	}
	if ((tf->dtype == BNF_DT_FLOAT16 || tf->dtype == BNF_DT_BFLOAT16) && src->dtype == tf->dtype &&
	    bnf_tview_in_place(src)) {
		/* float16 / bfloat16 stored as such: decode, scale and round
		 * element by element from the bytes where they lie */
		const uint8_t *in = bnf_tview_raw_view(src, first, n);
		if (!in) {
			bnf_tview_raw_range(src, first, n, out);
			in = out;
		}
		return tf->dtype == BNF_DT_FLOAT16 ? scale_small(tf, first, n, in, out, 10, 15, 0x7e00)
						   : scale_small(tf, first, n, in, out, 7, 127, 0x7fc0);
	}
	bnf_tview_read_range(src, first, n, scratch);
	for (size_t i = 0; i < n;) { /* one channel lookup per run */
		size_t run = run_length(&tf->layout, first + i, n - i);
		double s = tf->scale[bnf_layout_channel(&tf->layout, first + i)];
		for (size_t end = i + run; i < end; i++) {
			bnf_encode(tf->dtype, scratch[i] * s, out + i * es);
			finite = finite && stored_finite(tf->dtype, out + i * es);
		}
	}
	return finite;
}

/* The largest |x| of n float32 elements given as their bits, as bits:
 * clearing the sign bit orders them as integers, and every NaN or Inf
 * compares at or above 0x7f800000. */
static uint32_t f32_maxabs_bits(const uint8_t *p, size_t n, uint32_t m)
{
	for (size_t k = 0; k < n; k++) {
		uint32_t a;
		memcpy(&a, p + 4 * k, 4);
		a &= 0x7fffffffu;
		m = a > m ? a : m;
	}
	return m;
}

int bnf_tview_channel_maxabs(const bnf_tview *v, const bnf_layout *l, double *maxabs, size_t *bad)
{
	enum { CHUNK = 1 << 16 };
	bool f32 = fast_f32(v);
	double *scratch = malloc(CHUNK * (f32 ? sizeof(float) : sizeof(double)));
	uint32_t *mbits = f32 ? calloc(l->channels ? l->channels : 1, sizeof(uint32_t)) : NULL;
	int rc = 0;

	if (!scratch || (f32 && !mbits)) {
		free(scratch);
		free(mbits);
		return -1;
	}
	for (size_t c = 0; c < l->channels; c++)
		maxabs[c] = 0.0;
	for (size_t done = 0; done < v->numel && rc == 0; done += CHUNK) {
		size_t n = v->numel - done < CHUNK ? v->numel - done : CHUNK;
		if (f32) {
			const uint8_t *b = bnf_tview_raw_view(v, done, n);
			if (!b) {
				bnf_tview_raw_range(v, done, n, scratch);
				b = (const uint8_t *)scratch;
			}
			for (size_t i = 0; i < n;) {
				size_t run = run_length(l, done + i, n - i), c = bnf_layout_channel(l, done + i);
				uint32_t m = f32_maxabs_bits(b + 4 * i, run, mbits[c]);
				if (m >= 0x7f800000u) { /* NaN or Inf: which one */
					size_t k = 0;
					while (f32_maxabs_bits(b + 4 * (i + k), 1, 0) < 0x7f800000u)
						k++;
					*bad = done + i + k;
					rc = 1;
					break;
				}
				mbits[c] = m;
				i += run;
			}
			continue;
		}
		bnf_tview_read_range(v, done, n, scratch);
		for (size_t i = 0; i < n;) {
			size_t run = run_length(l, done + i, n - i), c = bnf_layout_channel(l, done + i);
			double m = maxabs[c];
			for (size_t k = i; k < i + run; k++) {
				double a = fabs(scratch[k]);
				if (!(a <= DBL_MAX)) { /* NaN or Inf */
					*bad = done + k;
					rc = 1;
					break;
				}
				m = a > m ? a : m;
			}
			maxabs[c] = m;
			i += run;
			if (rc)
				break;
		}
	}
	for (size_t c = 0; f32 && c < l->channels; c++) {
		float f;
		memcpy(&f, &mbits[c], 4);
		maxabs[c] = f;
	}
	free(scratch);
	free(mbits);
	return rc;
}
