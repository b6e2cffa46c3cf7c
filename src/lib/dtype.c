#include "dtype.h"

#include <float.h>
#include <math.h>
#include <string.h>

uint32_t bnf_round_small_float(double ax, int mant, int bias)
{
	/* Scaling by powers of two is exact in double, and nearbyint rounds
	 * to nearest even, so the value is rounded exactly once. */
	int emin = 1 - bias;           /* exponent of the smallest normal */
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

uint16_t bnf_f16_from_double(double x) { return bnf_small_from_double(x, BNF_F16_MANT, BNF_F16_BIAS, BNF_F16_NAN); }
double bnf_f16_to_double(uint16_t h) { return bnf_small_to_double(h, BNF_F16_MANT, BNF_F16_BIAS); }
uint16_t bnf_bf16_from_double(double x) { return bnf_small_from_double(x, BNF_BF16_MANT, BNF_BF16_BIAS, BNF_BF16_NAN); }
double bnf_bf16_to_double(uint16_t h) { return bnf_small_to_double(h, BNF_BF16_MANT, BNF_BF16_BIAS); }

/* ---- The rows' codecs (the encoders are inline, in dtype.h) ---- */

static double f32_decode(const uint8_t *p)
{
	uint32_t b = (uint32_t)bnf_load_le(p, 4);
	float f;
	memcpy(&f, &b, 4);
	return f;
}

static double f32_round(double x) { return (double)bnf_to_float(x); }

static double f64_decode(const uint8_t *p)
{
	uint64_t b = bnf_load_le(p, 8);
	double d;
	memcpy(&d, &b, 8);
	return d;
}

static double f64_round(double x) { return x; }

static double f16_decode(const uint8_t *p) { return bnf_f16_to_double((uint16_t)bnf_load_le(p, 2)); }

static double f16_round(double x)
{
	double a = fabs(x);
	/* normal numbers up to the largest finite (65504) the short way */
	if (a >= 0x1p-14 && a <= 65504.0)
		return bnf_round_significand(x, BNF_F16_MANT);
	return bnf_f16_to_double(bnf_f16_from_double(x));
}

static double bf16_decode(const uint8_t *p) { return bnf_bf16_to_double((uint16_t)bnf_load_le(p, 2)); }

static double bf16_round(double x)
{
	double a = fabs(x);
	if (a >= 0x1p-126 && a <= 0x1.fep127)
		return bnf_round_significand(x, BNF_BF16_MANT);
	return bnf_bf16_to_double(bnf_bf16_from_double(x));
}

static double i32_decode(const uint8_t *p) { return (double)(int32_t)(uint32_t)bnf_load_le(p, 4); }
static double i64_decode(const uint8_t *p) { return (double)(int64_t)bnf_load_le(p, 8); }

/* Indexed by code; a row of size 0 is a type bnfold does not read. */
static const bnf_dtype_info types[] = {
	[BNF_DT_FLOAT] = {BNF_DT_FLOAT, 4, "float32", true, 0x1p-24, 0x1p-126, f32_decode, bnf_encode_f32, f32_round},
	[BNF_DT_DOUBLE] = {BNF_DT_DOUBLE, 8, "float64", true, 0x1p-53, DBL_MIN, f64_decode, bnf_encode_f64, f64_round},
	[BNF_DT_FLOAT16] = {BNF_DT_FLOAT16, 2, "float16", true, 0x1p-11, 0x1p-14, f16_decode, bnf_encode_f16, f16_round},
	[BNF_DT_BFLOAT16] = {BNF_DT_BFLOAT16, 2, "bfloat16", true, 0x1p-8, 0x1p-126, bf16_decode, bnf_encode_bf16,
			     bf16_round},
	[BNF_DT_INT32] = {BNF_DT_INT32, 4, "int32", false, NAN, NAN, i32_decode, NULL, NULL},
	[BNF_DT_INT64] = {BNF_DT_INT64, 8, "int64", false, NAN, NAN, i64_decode, NULL, NULL},
};

/* bnf_dtype, inlined in the readers below (some run once per element) */
static inline const bnf_dtype_info *row(int dtype)
{
	if (dtype < 0 || (size_t)dtype >= sizeof(types) / sizeof(types[0]) || types[dtype].size == 0)
		return NULL;
	return &types[dtype];
}

const bnf_dtype_info *bnf_dtype(int dtype)
{
	return row(dtype);
}

size_t bnf_dtype_size(int dtype)
{
	const bnf_dtype_info *d = row(dtype);
	return d ? d->size : 0;
}

const char *bnf_dtype_name(int dtype)
{
	const bnf_dtype_info *d = row(dtype);
	return d ? d->name : "unknown";
}

bool bnf_dtype_is_float(int dtype)
{
	const bnf_dtype_info *d = row(dtype);
	return d && d->is_float;
}

double bnf_dtype_unit_roundoff(int dtype)
{
	const bnf_dtype_info *d = row(dtype);
	return d ? d->unit_roundoff : NAN;
}

double bnf_dtype_smallest_normal(int dtype)
{
	const bnf_dtype_info *d = row(dtype);
	return d ? d->smallest_normal : NAN;
}

double bnf_round_to(int dtype, double x)
{
	/* The rows' functions, chosen by a switch rather than through the
	 * row's pointer: verify.c calls this once per weight, and a direct
	 * call is inlined (test_tensor.c checks both agree). */
	switch (dtype) {
	case BNF_DT_FLOAT: return f32_round(x);
	case BNF_DT_DOUBLE: return f64_round(x);
	case BNF_DT_FLOAT16: return f16_round(x);
	case BNF_DT_BFLOAT16: return bf16_round(x);
	default: return NAN;
	}
}

void bnf_encode(int dtype, double x, uint8_t *out)
{
	const bnf_dtype_info *d = row(dtype);
	if (d && d->encode)
		d->encode(x, out);
}

double bnf_decode(int dtype, const uint8_t *p)
{
	const bnf_dtype_info *d = row(dtype);
	return d ? d->decode(p) : NAN;
}

void bnf_decode_run(int dtype, const uint8_t *p, size_t n, double *out)
{
	const bnf_dtype_info *d;

	switch (dtype) {
	case BNF_DT_FLOAT:
		for (size_t i = 0; i < n; i++, p += 4) {
			uint32_t b = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
			float f;
			memcpy(&f, &b, 4);
			out[i] = f;
		}
		return;
	case BNF_DT_FLOAT16:
		for (size_t i = 0; i < n; i++, p += 2)
			out[i] = bnf_small_to_double((uint16_t)(p[0] | p[1] << 8), BNF_F16_MANT, BNF_F16_BIAS);
		return;
	case BNF_DT_BFLOAT16:
		for (size_t i = 0; i < n; i++, p += 2)
			out[i] = bnf_small_to_double((uint16_t)(p[0] | p[1] << 8), BNF_BF16_MANT, BNF_BF16_BIAS);
		return;
	case BNF_DT_DOUBLE:
		for (size_t i = 0; i < n; i++, p += 8)
			out[i] = f64_decode(p);
		return;
	default:
		/* integers, and types without a row (NaN, as bnf_decode) */
		d = row(dtype);
		for (size_t i = 0; i < n; i++)
			out[i] = d ? d->decode(p + i * d->size) : NAN;
		return;
	}
}
