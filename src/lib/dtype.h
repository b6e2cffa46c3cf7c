/* Element types: one table row per ONNX TensorProto.DataType that bnfold
 * reads (size, name, rounding constants, and how one element is decoded,
 * encoded and rounded), and the float16 / bfloat16 codecs.  Data stored in
 * raw_data is little-endian on any host.
 *
 * The table is for metadata and for code that handles one element at a
 * time.  Loops over many elements switch on the type once and call the
 * codecs directly (the inline ones at the end of this header), never a
 * row's function pointer per element. */
#ifndef BNF_DTYPE_H
#define BNF_DTYPE_H

#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* ONNX TensorProto.DataType codes that bnfold reads. */
enum {
	BNF_DT_FLOAT = 1,
	BNF_DT_INT32 = 6,
	BNF_DT_INT64 = 7,
	BNF_DT_FLOAT16 = 10,
	BNF_DT_DOUBLE = 11,
	BNF_DT_BFLOAT16 = 16,
};

/* One element type. */
typedef struct bnf_dtype_info {
	int code;                /* ONNX TensorProto.DataType */
	size_t size;             /* bytes per element */
	const char *name;        /* "float32", "float16", ... */
	bool is_float;           /* float32, float64, float16, bfloat16: the types bnfold folds */
	double unit_roundoff;    /* largest relative error of rounding a normal number (half an ulp of 1); NaN for integers */
	double smallest_normal;  /* below it the rounding error is absolute, not relative; NaN for integers */
	/* One little-endian element as a double (integers beyond 2^53 rounded). */
	double (*decode)(const uint8_t *p);
	/* Store x, rounded once to nearest even (+-inf beyond the range), as
	 * `size` little-endian bytes; NULL for integers, which bnfold never stores. */
	void (*encode)(double x, uint8_t *out);
	/* The value x becomes when encoded; NULL for integers. */
	double (*round_to)(double x);
} bnf_dtype_info;

/* The row of dtype, or NULL for a type bnfold does not read (int8, string,
 * an unknown code...). */
const bnf_dtype_info *bnf_dtype(int dtype);

/* Bytes per element of a float dtype (or int32/int64), 0 if unknown. */
size_t bnf_dtype_size(int dtype);
/* "float32", "float16", ...; "dtype<N>" style names are not returned: unknown gives "unknown". */
const char *bnf_dtype_name(int dtype);
/* True for float32, float64, float16, bfloat16: the types bnfold folds. */
bool bnf_dtype_is_float(int dtype);
/* Unit roundoff of a float dtype (2^-24 for float32); NaN for other types. */
double bnf_dtype_unit_roundoff(int dtype);
/* Smallest positive normal number of a float dtype (2^-126 for float32); NaN for other types. */
double bnf_dtype_smallest_normal(int dtype);

/* The value `x` becomes when stored as dtype (rounded once, to nearest
 * even); +-inf when it overflows the type; NaN for a type bnfold does not
 * store. */
double bnf_round_to(int dtype, double x);
/* Store x as dtype, little-endian, into out (bnf_dtype_size bytes); a type
 * bnfold does not store leaves out as it is. */
void bnf_encode(int dtype, double x, uint8_t *out);
/* Load one little-endian element of dtype; NaN for an unknown type. */
double bnf_decode(int dtype, const uint8_t *p);
/* Load n consecutive little-endian elements of dtype from p into out. */
void bnf_decode_run(int dtype, const uint8_t *p, size_t n, double *out);

/* IEEE binary16 / bfloat16 bit patterns from double, rounded once to
 * nearest even, and back. */
uint16_t bnf_f16_from_double(double x);
double bnf_f16_to_double(uint16_t h);
uint16_t bnf_bf16_from_double(double x);
double bnf_bf16_to_double(uint16_t h);

/* ---- Inline codecs for loops over many elements ----
 * Inline because a call per element costs as much as the conversion. */

/* float16 and bfloat16 as parameters of one binary format of 16 bits:
 * stored mantissa bits, exponent bias, and the NaN written for a NaN. */
#define BNF_F16_MANT 10
#define BNF_F16_BIAS 15
#define BNF_F16_NAN 0x7e00
#define BNF_BF16_MANT 7
#define BNF_BF16_BIAS 127
#define BNF_BF16_NAN 0x7fc0

static inline uint64_t bnf_load_le(const uint8_t *p, size_t n)
{
	uint64_t x = 0;
	for (size_t i = 0; i < n; i++)
		x |= (uint64_t)p[i] << (8 * i);
	return x;
}

static inline void bnf_store_le(uint8_t *p, uint64_t x, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(x >> (8 * i));
}

/* 2^k as a double, for -1022 <= k <= 1023, built from its bits. */
static inline double bnf_pow2(int k)
{
	uint64_t b = (uint64_t)(k + 1023) << 52;
	double d;
	memcpy(&d, &b, 8);
	return d;
}

/* x rounded to `mant` stored mantissa bits, to nearest even, by rounding
 * the double's own significand: exact while x and the result are normal
 * numbers of the small type, which the caller checks. */
static inline double bnf_round_significand(double x, int mant)
{
	int drop = 52 - mant;
	uint64_t b;
	memcpy(&b, &x, 8);
	b += ((uint64_t)1 << (drop - 1)) - 1 + ((b >> drop) & 1);
	b &= ~(((uint64_t)1 << drop) - 1);
	memcpy(&x, &b, 8);
	return x;
}

/* double -> float rounded to nearest even; out-of-range values become
 * +-inf as IEEE 754 says, without the undefined behaviour of a C cast. */
static inline float bnf_to_float(double x)
{
	const double limit = (double)FLT_MAX + 0x1p103; /* FLT_MAX + half an ulp */
	if (fabs(x) >= limit)
		return x > 0 ? INFINITY : -INFINITY;
	if (fabs(x) > FLT_MAX)
		return x > 0 ? FLT_MAX : -FLT_MAX;
	return (float)x;
}

/* The bits without sign of |x| (finite, >= 0) rounded to the 16-bit
 * format (mant, bias): the slow way, for subnormal and out-of-range values
 * (dtype.c). */
uint32_t bnf_round_small_float(double ax, int mant, int bias);

/* x as the 16-bit format (mant, bias, nan_bits), rounded once. */
static inline uint16_t bnf_small_from_double(double x, int mant, int bias, uint16_t nan_bits)
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
	if (a >= bnf_pow2(1 - bias) && a < bnf_pow2(bias + 1)) {
		/* normal in the small type: round the double's significand and
		 * take its fields (a carry may raise the exponent, to inf) */
		double r = bnf_round_significand(a, mant);
		uint64_t b;
		int e;
		memcpy(&b, &r, 8);
		e = (int)(b >> 52) - 1023;
		if (e > bias)
			return sign | inf;
		return sign | (uint16_t)((uint32_t)(e + bias) << mant | ((uint32_t)(b >> (52 - mant)) & ((1u << mant) - 1)));
	}
	return sign | (uint16_t)bnf_round_small_float(a, mant, bias);
}

/* The value of bits h of the 16-bit format (mant, bias). */
static inline double bnf_small_to_double(uint16_t h, int mant, int bias)
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
			v = (double)f * bnf_pow2(1 - bias - mant); /* exact: f has at most 10 bits */
		return (h & 0x8000) ? -v : v;
	}
	/* a normal number: the same sign, exponent and mantissa in a double's
	 * fields, without a branch on the sign (this runs for every weight
	 * read, whose signs are random) */
	b = (uint64_t)(h & 0x8000) << 48 | (uint64_t)((int)e - bias + 1023) << 52 | (uint64_t)f << (52 - mant);
	memcpy(&v, &b, 8);
	return v;
}

/* The encoders of the float rows, for loops that store many elements:
 * x rounded once, little-endian. */
static inline void bnf_encode_f32(double x, uint8_t *out)
{
	float f = bnf_to_float(x);
	uint32_t b;
	memcpy(&b, &f, 4);
	bnf_store_le(out, b, 4);
}

static inline void bnf_encode_f64(double x, uint8_t *out)
{
	uint64_t b;
	memcpy(&b, &x, 8);
	bnf_store_le(out, b, 8);
}

static inline void bnf_encode_f16(double x, uint8_t *out)
{
	bnf_store_le(out, bnf_small_from_double(x, BNF_F16_MANT, BNF_F16_BIAS, BNF_F16_NAN), 2);
}

static inline void bnf_encode_bf16(double x, uint8_t *out)
{
	bnf_store_le(out, bnf_small_from_double(x, BNF_BF16_MANT, BNF_BF16_BIAS, BNF_BF16_NAN), 2);
}

#endif
