#include "tensor.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "common.h"

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
	case BNF_DT_FLOAT16: return bnf_f16_to_double((uint16_t)load_le(p, 2));
	case BNF_DT_BFLOAT16: return bnf_bf16_to_double((uint16_t)load_le(p, 2));
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
	case BNF_DT_FLOAT16: store_le(out, bnf_f16_from_double(x), 2); break;
	case BNF_DT_BFLOAT16: store_le(out, bnf_bf16_from_double(x), 2); break;
	default: break;
	}
}

void bnf_tview_read_range(const bnf_tview *v, size_t first, size_t n, double *out)
{
	const Onnx__TensorProto *t = v->tensor;
	size_t es = bnf_dtype_size(v->dtype);

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
	if (t->has_raw_data) {
		const uint8_t *p = t->raw_data.data + first * es;
		if (v->dtype == BNF_DT_FLOAT) {
			for (size_t i = 0; i < n; i++, p += 4) {
				uint32_t b = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
				float f;
				memcpy(&f, &b, 4);
				out[i] = f;
			}
			return;
		}
		for (size_t i = 0; i < n; i++)
			out[i] = bnf_decode(v->dtype, p + i * es);
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

	if (v->dtype != BNF_DT_INT64 && v->dtype != BNF_DT_INT32)
		return -1;
	if (!t)
		return -1;
	for (size_t i = 0; i < v->numel; i++) {
		if (t->has_raw_data)
			out[i] = v->dtype == BNF_DT_INT64
				 ? (int64_t)load_le(t->raw_data.data + 8 * i, 8)
				 : (int32_t)(uint32_t)load_le(t->raw_data.data + 4 * i, 4);
		else
			out[i] = v->dtype == BNF_DT_INT64 ? t->int64_data[i] : t->int32_data[i];
	}
	return 0;
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

static uint16_t small_from_double(double x, int mant, int bias, uint16_t nan_bits)
{
	uint16_t sign = signbit(x) ? 0x8000 : 0;
	if (isnan(x))
		return nan_bits;
	if (isinf(x))
		return sign | (uint16_t)(((uint32_t)(2 * bias + 1)) << mant);
	return sign | (uint16_t)round_small_float(fabs(x), mant, bias);
}

static double small_to_double(uint16_t h, int mant, int bias)
{
	int ebits = 15 - mant;
	uint32_t e = (h >> mant) & ((1u << ebits) - 1);
	uint32_t f = h & ((1u << mant) - 1);
	double v;

	if (e == (1u << ebits) - 1)
		v = f ? NAN : INFINITY;
	else if (e == 0)
		v = ldexp((double)f, 1 - bias - mant);
	else
		v = ldexp((double)(f | (1u << mant)), (int)e - bias - mant);
	return (h & 0x8000) ? -v : v;
}

uint16_t bnf_f16_from_double(double x) { return small_from_double(x, 10, 15, 0x7e00); }
double bnf_f16_to_double(uint16_t h) { return small_to_double(h, 10, 15); }
uint16_t bnf_bf16_from_double(double x) { return small_from_double(x, 7, 127, 0x7fc0); }
double bnf_bf16_to_double(uint16_t h) { return small_to_double(h, 7, 127); }

double bnf_round_to(int dtype, double x)
{
	switch (dtype) {
	case BNF_DT_FLOAT: return (double)to_float(x);
	case BNF_DT_DOUBLE: return x;
	case BNF_DT_FLOAT16: return bnf_f16_to_double(bnf_f16_from_double(x));
	case BNF_DT_BFLOAT16: return bnf_bf16_to_double(bnf_bf16_from_double(x));
	default: return NAN;
	}
}
