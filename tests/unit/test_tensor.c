/* dtype.c, source.c, tensor.c and transform.c against hand-computed IEEE
 * bit patterns and the arithmetic they stand for. */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tap.h"
#include "plan.h"
#include "tensor.h"
#include "transform.h"

/* float16 (mant 10, bias 15) or bfloat16 (7, 127) bits of x by the
 * definition, independently of tensor.c: the significand scaled to an
 * integer and rounded to nearest even with nearbyint, in the subnormal
 * range with the fixed smallest exponent; inf beyond the largest finite. */
static uint16_t ref_small(double x, int mant, int bias)
{
	uint16_t sign = signbit(x) ? 0x8000 : 0, inf = (uint16_t)((2 * bias + 1) << mant);
	double a = fabs(x), m;
	int e;
	if (isnan(x))
		return 0xffff;
	if (a == 0)
		return sign;
	frexp(a, &e);
	e -= 1; /* a = 1.f 2^e */
	if (e < 1 - bias)
		return sign | (uint16_t)nearbyint(ldexp(a, mant - 1 + bias)); /* 2^mant: the smallest normal, same bits */
	m = nearbyint(ldexp(a, mant - e));
	if (m == ldexp(1, mant + 1)) {
		m /= 2;
		e++;
	}
	if (e > bias)
		return sign | inf;
	return sign | (uint16_t)((e + bias) << mant | ((int)m - (1 << mant)));
}

/* float16 and bfloat16 values whose bit patterns are fixed by IEEE 754. */
static void test_fixed_patterns(void)
{
	OK(bnf_f16_from_double(1.0) == 0x3c00, "f16(1.0) = 0x3c00");
	OK(bnf_f16_from_double(-2.0) == 0xc000, "f16(-2.0) = 0xc000");
	OK(bnf_f16_from_double(65504.0) == 0x7bff, "f16(65504) = 0x7bff, the largest finite");
	OK(bnf_f16_from_double(65519.99) == 0x7bff, "f16(65519.99) rounds down to 65504");
	OK(bnf_f16_from_double(65520.0) == 0x7c00, "f16(65520) is the tie above 65504: rounds to even = inf");
	OK(bnf_f16_from_double(ldexp(1, -24)) == 0x0001, "f16(2^-24) = smallest subnormal 0x0001");
	OK(bnf_f16_from_double(ldexp(1, -25)) == 0x0000, "f16(2^-25) ties to even: 0");
	OK(bnf_f16_from_double(3 * ldexp(1, -25)) == 0x0002, "f16(1.5 * 2^-24) ties to even: 0x0002");
	OK(bnf_f16_from_double(ldexp(1, -14)) == 0x0400, "f16(2^-14) = smallest normal 0x0400");
	OK(bnf_f16_from_double(0.1) == 0x2e66, "f16(0.1) = 0x2e66");
	OK(bnf_f16_from_double(1.0 + ldexp(1, -11)) == 0x3c00, "f16(1 + 2^-11) ties to even: 0x3c00");
	OK(bnf_f16_from_double(1.0 + 3 * ldexp(1, -11)) == 0x3c02, "f16(1 + 3*2^-11) ties to even: 0x3c02");
	/* Single rounding: 1 + 2^-11 + 2^-30 is just above the midpoint, so its
	 * nearest binary16 is 0x3c01.  Rounding to float32 first drops 2^-30
	 * and then ties to even, giving 0x3c00: the double-rounding error. */
	OK(bnf_f16_from_double(1.0 + ldexp(1, -11) + ldexp(1, -30)) == 0x3c01,
	   "f16 rounds once from double (0x3c01)");
	OK(bnf_f16_from_double((double)(float)(1.0 + ldexp(1, -11) + ldexp(1, -30))) == 0x3c00,
	   "rounding via float32 first would give 0x3c00");
	OK(isnan(bnf_f16_to_double(bnf_f16_from_double(NAN))), "f16 NaN survives");
	OK(bnf_f16_from_double(-INFINITY) == 0xfc00, "f16(-inf) = 0xfc00");
	NEAR(bnf_f16_to_double(0x3555), 0.333251953125, 0, "f16 0x3555 = 0.333251953125");
	NEAR(bnf_f16_to_double(0x0001), ldexp(1, -24), 0, "f16 0x0001 = 2^-24");

	/* bfloat16 */
	OK(bnf_bf16_from_double(1.0) == 0x3f80, "bf16(1.0) = 0x3f80");
	OK(bnf_bf16_from_double(0.1) == 0x3dcd, "bf16(0.1) = 0x3dcd");
	OK(bnf_bf16_from_double(-3.0) == 0xc040, "bf16(-3.0) = 0xc040");
	NEAR(bnf_bf16_to_double(0x4049), 3.140625, 0, "bf16 0x4049 = 3.140625");
}

/* Every float16 and bfloat16 bit pattern decodes to
 * (-1)^s 2^(e - bias) (1 + f / 2^mant), or f 2^(1 - bias - mant)
 * when e = 0, computed here with ldexp. */
static void test_decode_all(void)
{
	int bad16 = 0, badbf = 0;
	for (uint32_t h = 0; h < 0x10000; h++) {
		int s16 = h >> 15, e16 = (h >> 10) & 31, f16 = h & 1023, ebf = (h >> 7) & 255, fbf = h & 127;
		double w16 = e16 == 0 ? ldexp(f16, -24) : ldexp(1024 + f16, e16 - 25);
		double wbf = ebf == 0 ? ldexp(fbf, -133) : ldexp(128 + fbf, ebf - 134);
		double g16 = bnf_f16_to_double((uint16_t)h), gbf = bnf_bf16_to_double((uint16_t)h);
		if (e16 == 31)
			bad16 += f16 ? !isnan(g16) : g16 != (s16 ? -INFINITY : INFINITY);
		else
			bad16 += g16 != (s16 ? -w16 : w16) || !!signbit(g16) != s16;
		if (ebf == 255)
			badbf += fbf ? !isnan(gbf) : gbf != (s16 ? -INFINITY : INFINITY);
		else
			badbf += gbf != (s16 ? -wbf : wbf) || !!signbit(gbf) != s16;
	}
	OK(bad16 == 0, "all 65536 float16 patterns decode by the definition (%d differ)", bad16);
	OK(badbf == 0, "all 65536 bfloat16 patterns decode by the definition (%d differ)", badbf);
}

/* bnf_round_to takes a short way for normal float16/bfloat16 numbers:
 * it must agree with the bit-pattern codecs above everywhere, ties,
 * binade edges, the largest finite, subnormals and overflow included. */
static void test_round_short_way(void)
{
	const double edge[] = {1.0 + ldexp(1, -11), 1.0 + 3 * ldexp(1, -11), 2.0 - ldexp(1, -12), 65504.0,
			       65519.99, 65520.0, ldexp(1, -14), ldexp(1, -14) * (1 - ldexp(1, -12)),
			       ldexp(1, -24), 3 * ldexp(1, -25), 1.0 + ldexp(1, -8), 1.0 + 3 * ldexp(1, -8),
			       0x1.fep127, 0x1.ffp127, ldexp(1, -126), ldexp(1, -127), 0.0, 1e-300};
	int bad16 = 0, badbf = 0;
	uint64_t z = 88172645463325252ULL;
	int ref16 = 0, refbf = 0;
	for (size_t i = 0; i < sizeof(edge) / sizeof(edge[0]); i++) {
		for (int sgn = -1; sgn <= 1; sgn += 2) {
			double x = sgn * edge[i];
			bad16 += bnf_round_to(BNF_DT_FLOAT16, x) != bnf_f16_to_double(bnf_f16_from_double(x));
			badbf += bnf_round_to(BNF_DT_BFLOAT16, x) != bnf_bf16_to_double(bnf_bf16_from_double(x));
			ref16 += bnf_f16_from_double(x) != ref_small(x, 10, 15);
			refbf += bnf_bf16_from_double(x) != ref_small(x, 7, 127);
		}
	}
	for (int i = 0; i < 200000; i++) {
		double x;
		z ^= z << 13;
		z ^= z >> 7;
		z ^= z << 17;
		/* random significand, exponents over both types' ranges */
		x = ldexp(1.0 + (double)(z >> 12) * ldexp(1, -52), (int)(z % 300) - 150) * ((z >> 11) & 1 ? -1 : 1);
		if (i % 3 == 1) /* an exact float16 tie: (2m + 1) 2^(e-1), m of 11 bits */
			x = ldexp(2.0 * (double)(1024 + (z >> 20) % 1024) + 1, (int)((z >> 40) % 30) - 25);
		else if (i % 3 == 2) /* an exact bfloat16 tie, m of 8 bits */
			x = ldexp(2.0 * (double)(128 + (z >> 20) % 128) + 1, (int)((z >> 40) % 250) - 133);
		bad16 += bnf_round_to(BNF_DT_FLOAT16, x) != bnf_f16_to_double(bnf_f16_from_double(x));
		badbf += bnf_round_to(BNF_DT_BFLOAT16, x) != bnf_bf16_to_double(bnf_bf16_from_double(x));
		ref16 += bnf_f16_from_double(x) != ref_small(x, 10, 15);
		refbf += bnf_bf16_from_double(x) != ref_small(x, 7, 127);
	}
	OK(ref16 == 0, "float16 encoding = rounding by the definition on edges and 200000 values (%d differ)", ref16);
	OK(refbf == 0, "bfloat16 encoding = rounding by the definition likewise (%d differ)", refbf);
	OK(bad16 == 0, "bnf_round_to(float16) = the float16 codec round trip on edges and 200000 values (%d differ)",
	   bad16);
	OK(badbf == 0, "bnf_round_to(bfloat16) = the bfloat16 codec round trip likewise (%d differ)", badbf);
}

/* float32 rounding and overflow; little-endian raw_data, whatever the host */
static void test_float32_and_le(void)
{
	const uint8_t one_f32[4] = {0x00, 0x00, 0x80, 0x3f};
	const uint8_t m2_f64[8] = {0, 0, 0, 0, 0, 0, 0x00, 0xc0};
	const uint8_t h[2] = {0x00, 0x3c};
	uint8_t out[8];

	NEAR(bnf_round_to(BNF_DT_FLOAT, 0.1), 0.100000001490116119384765625, 0, "float32(0.1)");
	OK(isinf(bnf_round_to(BNF_DT_FLOAT, 3.5e38)), "3.5e38 overflows float32");
	OK(!isinf(bnf_round_to(BNF_DT_FLOAT, 3.4028234e38)), "3.4028234e38 fits float32");
	OK(isinf(bnf_round_to(BNF_DT_FLOAT16, 70000.0)), "70000 overflows float16");
	NEAR(bnf_decode(BNF_DT_FLOAT, one_f32), 1.0, 0, "decode float32 LE 1.0");
	NEAR(bnf_decode(BNF_DT_DOUBLE, m2_f64), -2.0, 0, "decode float64 LE -2.0");
	NEAR(bnf_decode(BNF_DT_FLOAT16, h), 1.0, 0, "decode float16 LE 1.0");
	bnf_encode(BNF_DT_FLOAT, 1.0, out);
	OK(memcmp(out, one_f32, 4) == 0, "encode float32 LE 1.0");
}

/* A fold rounded once is at least as accurate as one rounded after every
 * step.  Crafted float16 case (found by a search with numpy float16,
 * the exact value from 60-digit decimal arithmetic):
 *   W = 0x3f13 = 1.7685546875, gamma = 0x3876 = 0.5576171875,
 *   var = 0x3409 = 0.252197265625, eps = float32(1e-5), mean = beta = 0
 *   exact W * gamma / sqrt(var + eps) = 1.96370320281622486407...
 * Once, from double: 0x3fdb = 1.9638671875 (error 1.64e-4, 0.17 ulp).
 * Step-wise in float16 (var + eps, sqrt, gamma / ., W * .):
 *   0x3fdd = 1.9658203125 (error 2.12e-3, 2.17 ulp). */
static void test_fold_rounded_once(void)
{
	const double exact = 1.96370320281622486407;
	double w = bnf_f16_to_double(0x3f13), gamma = bnf_f16_to_double(0x3876);
	double var = bnf_f16_to_double(0x3409), eps = (double)1e-5f, zero = 0.0, s, scratch[1];
	double v1, v2, s16, once, step;
	uint8_t wraw[2] = {0x13, 0x3f}, out[2];
	size_t bad;
	Onnx__TensorProto t = ONNX__TENSOR_PROTO__INIT;
	int64_t dim = 1;
	bnf_tview v;
	bnf_transform tf;
	char err[200];

	OK(bnf_bn_scale(&gamma, &zero, &var, &zero, eps, 1, &s, &bad) == BNF_FOLD, "scale of the crafted case");
	/* the writer's path: the float16 weight times s, rounded once */
	t.n_dims = 1;
	t.dims = &dim;
	t.has_data_type = 1;
	t.data_type = BNF_DT_FLOAT16;
	t.has_raw_data = 1;
	t.raw_data.data = wraw;
	t.raw_data.len = 2;
	OK(bnf_tview_from_tensor(&t, &v, err, sizeof(err)) == BNF_TENSOR_OK, "float16 weight view");
	memset(&tf, 0, sizeof(tf));
	tf.dtype = BNF_DT_FLOAT16;
	tf.layout = (bnf_layout){.inner = 1, .per_group = 1, .rows_per_group = 1, .channels = 1};
	tf.scale = &s;
	bnf_transform_apply(&tf, &v, 0, 1, NULL, scratch, out);
	OK(out[0] == 0xdb && out[1] == 0x3f, "folded once: 0x3fdb (got 0x%02x%02x)", out[1], out[0]);
	once = bnf_decode(BNF_DT_FLOAT16, out);
	/* step-wise: every operation rounded to float16 (exact in double first) */
	v1 = bnf_round_to(BNF_DT_FLOAT16, var + eps);
	v2 = bnf_round_to(BNF_DT_FLOAT16, sqrt(v1));
	s16 = bnf_round_to(BNF_DT_FLOAT16, gamma / v2);
	step = bnf_round_to(BNF_DT_FLOAT16, w * s16);
	OK(bnf_f16_from_double(step) == 0x3fdd, "folded step-wise: 0x3fdd (got 0x%04x)", bnf_f16_from_double(step));
	OK(fabs(exact - once) <= fabs(exact - step),
	   "|exact - once| = %.3e <= |exact - step-wise| = %.3e", fabs(exact - once), fabs(exact - step));
	NEAR(fabs(exact - once), 1.6398e-4, 1e-7, "error rounded once: 1.64e-4 (0.17 float16 ulp)");
	NEAR(fabs(exact - step), 2.1172e-3, 1e-7, "error step-wise: 2.12e-3 (2.17 float16 ulps)");
}

/* tensor views: lengths are checked */
static void test_views(void)
{
	Onnx__TensorProto t = ONNX__TENSOR_PROTO__INIT;
	int64_t dims[2] = {2, 3};
	float vals[6] = {1, 2, 3, 4, 5, 6};
	uint8_t raw[24];
	double out[6];
	bnf_tview v;
	char err[200];

	t.n_dims = 2;
	t.dims = dims;
	t.has_data_type = 1;
	t.data_type = BNF_DT_FLOAT;
	t.n_float_data = 6;
	t.float_data = vals;
	OK(bnf_tview_from_tensor(&t, &v, err, sizeof(err)) == BNF_TENSOR_OK && v.numel == 6,
	   "float_data tensor 2x3 is readable");
	bnf_tview_read(&v, out);
	NEAR(out[5], 6.0, 0, "float_data element 5");
	t.n_float_data = 5;
	OK(bnf_tview_from_tensor(&t, &v, err, sizeof(err)) == BNF_TENSOR_MALFORMED,
	   "float_data with 5 values for dims 2x3 is malformed");
	t.n_float_data = 0;
	for (int i = 0; i < 6; i++)
		bnf_encode(BNF_DT_FLOAT, vals[i], raw + 4 * i);
	t.has_raw_data = 1;
	t.raw_data.data = raw;
	t.raw_data.len = 23;
	OK(bnf_tview_from_tensor(&t, &v, err, sizeof(err)) == BNF_TENSOR_MALFORMED,
	   "raw_data of 23 bytes for 6 floats is malformed (%s)", err);
	t.raw_data.len = 24;
	OK(bnf_tview_from_tensor(&t, &v, err, sizeof(err)) == BNF_TENSOR_OK, "raw_data of 24 bytes is fine");
	bnf_tview_read_range(&v, 2, 3, out);
	NEAR(out[0] + out[1] + out[2], 3.0 + 4.0 + 5.0, 0, "raw range [2,5) = 3,4,5");
	dims[1] = -3;
	OK(bnf_tview_from_tensor(&t, &v, err, sizeof(err)) == BNF_TENSOR_MALFORMED, "negative dim is malformed");
	dims[0] = INT64_MAX;
	dims[1] = INT64_MAX;
	OK(bnf_tview_from_tensor(&t, &v, err, sizeof(err)) == BNF_TENSOR_MALFORMED, "overflowing dims are malformed");
	dims[0] = 2;
	dims[1] = 3;
	t.has_data_location = 1;
	t.data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
	OK(bnf_tview_from_tensor(&t, &v, err, sizeof(err)) == BNF_TENSOR_UNSUPPORTED,
	   "external data is reported as unsupported");
}

/* Per-channel largest |w|: float32 raw_data is scanned as bits, the
 * other storage as doubles; both give the same answers.  Conv-like
 * layout of 3 channels x 3 elements. */
static void test_maxabs(void)
{
	float vals[9] = {-0.0f, 1.5f, -2.25f, 7.0f, -7.5f, 0.125f, 1e-40f, -3e38f, 2.0f};
	uint8_t raw[36];
	double m[3];
	size_t bad = 99;
	bnf_layout l = {.inner = 3, .per_group = 3, .rows_per_group = 1, .channels = 3};
	Onnx__TensorProto t;
	bnf_tview v;
	char err[200];
	int64_t dims[2] = {3, 3};

	for (int i = 0; i < 9; i++) {
		uint32_t b;
		memcpy(&b, &vals[i], 4);
		for (int k = 0; k < 4; k++)
			raw[4 * i + k] = (uint8_t)(b >> (8 * k));
	}
	for (int storage = 0; storage < 2; storage++) {
		const char *what = storage ? "float_data" : "raw_data";
		onnx__tensor_proto__init(&t);
		t.n_dims = 2;
		t.dims = dims;
		t.has_data_type = 1;
		t.data_type = BNF_DT_FLOAT;
		if (storage) {
			t.n_float_data = 9;
			t.float_data = vals;
		} else {
			t.has_raw_data = 1;
			t.raw_data.data = raw;
			t.raw_data.len = sizeof(raw);
		}
		OK(bnf_tview_from_tensor(&t, &v, err, sizeof(err)) == BNF_TENSOR_OK, "%s: maxabs view", what);
		OK(bnf_tview_channel_maxabs(&v, &l, m, &bad) == 0 && m[0] == 2.25 && m[1] == 7.5 &&
			   m[2] == (double)3e38f,
		   "%s: channel max |w| = 2.25, 7.5, 3e38 (got %g, %g, %g)", what, m[0], m[1], m[2]);
		vals[5] = NAN;
		raw[20] = 0x00, raw[21] = 0x00, raw[22] = 0xc0, raw[23] = 0x7f; /* NaN */
		OK(bnf_tview_channel_maxabs(&v, &l, m, &bad) == 1 && bad == 5, "%s: NaN found at element 5 (got %zu)",
		   what, bad);
		vals[5] = 0.125f;
		raw[20] = 0x00, raw[21] = 0x00, raw[22] = 0x00, raw[23] = 0x3e; /* 0.125 */
		vals[8] = -INFINITY;
		raw[32] = 0x00, raw[33] = 0x00, raw[34] = 0x80, raw[35] = 0xff;
		OK(bnf_tview_channel_maxabs(&v, &l, m, &bad) == 1 && bad == 8, "%s: -inf found at element 8 (got %zu)",
		   what, bad);
		vals[8] = 2.0f;
		raw[32] = 0x00, raw[33] = 0x00, raw[34] = 0x00, raw[35] = 0x40; /* 2.0 */
	}
}

/* xorshift64: the tests' random numbers, the same on every run */
static uint64_t next_random(uint64_t *z)
{
	*z ^= *z << 13;
	*z ^= *z >> 7;
	*z ^= *z << 17;
	return *z;
}

/* The table: one row per type bnfold reads, and the functions that read it. */
static void test_dtype_table(void)
{
	static const struct {
		int code;
		size_t size;
		const char *name;
		bool is_float;
		double u, tiny;
	} want[] = {
		{BNF_DT_FLOAT, 4, "float32", true, 0x1p-24, FLT_MIN},
		{BNF_DT_DOUBLE, 8, "float64", true, 0x1p-53, DBL_MIN},
		{BNF_DT_FLOAT16, 2, "float16", true, 0x1p-11, 0x1p-14},
		{BNF_DT_BFLOAT16, 2, "bfloat16", true, 0x1p-8, 0x1p-126},
		{BNF_DT_INT32, 4, "int32", false, NAN, NAN},
		{BNF_DT_INT64, 8, "int64", false, NAN, NAN},
	};
	static const int unknown[] = {-1, 0, 2, 3, 8, 9, 12, 17, 1000};
	int bad = 0;

	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		const bnf_dtype_info *d = bnf_dtype(want[i].code);
		int c = want[i].code;
		OK(d && d->code == c && d->size == want[i].size && strcmp(d->name, want[i].name) == 0 &&
			   d->is_float == want[i].is_float && (d->encode != NULL) == want[i].is_float &&
			   (d->round_to != NULL) == want[i].is_float,
		   "row of %s", want[i].name);
		OK(bnf_dtype_size(c) == want[i].size && strcmp(bnf_dtype_name(c), want[i].name) == 0 &&
			   bnf_dtype_is_float(c) == want[i].is_float,
		   "%s: size, name and kind through the readers", want[i].name);
		if (want[i].is_float)
			OK(bnf_dtype_unit_roundoff(c) == want[i].u && bnf_dtype_smallest_normal(c) == want[i].tiny,
			   "%s: unit roundoff 2^%d, smallest normal 2^%d", want[i].name, ilogb(want[i].u),
			   ilogb(want[i].tiny));
		else
			OK(isnan(bnf_dtype_unit_roundoff(c)) && isnan(bnf_dtype_smallest_normal(c)) &&
				   isnan(bnf_round_to(c, 1.0)),
			   "%s: no rounding constants, not stored", want[i].name);
	}
	for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
		int c = unknown[i];
		bad += bnf_dtype(c) != NULL || bnf_dtype_size(c) != 0 || strcmp(bnf_dtype_name(c), "unknown") != 0 ||
		       bnf_dtype_is_float(c) || !isnan(bnf_dtype_unit_roundoff(c)) || !isnan(bnf_round_to(c, 1.0)) ||
		       !isnan(bnf_decode(c, (const uint8_t *)"\0\0\0\0\0\0\0\0"));
	}
	OK(bad == 0, "types bnfold does not read have no row: size 0, \"unknown\", NaN (%d differ)", bad);
	/* 1 + u is a tie between 1 and 1 + 2u, which rounds to even: 1 */
	for (size_t i = 0; i < 4; i++) {
		int c = want[i].code;
		OK(bnf_round_to(c, 1.0 + want[i].u) == 1.0 && bnf_round_to(c, 1.0 + 2 * want[i].u) == 1.0 + 2 * want[i].u &&
			   bnf_round_to(c, want[i].tiny) == want[i].tiny,
		   "%s: 1 + u rounds to 1, 1 + 2u and the smallest normal are exact", want[i].name);
	}
}

/* The rows' codecs against the readers, and round_to = decode(encode). */
static void test_dtype_codecs(void)
{
	static const int codes[] = {BNF_DT_FLOAT, BNF_DT_DOUBLE, BNF_DT_FLOAT16, BNF_DT_BFLOAT16};
	uint64_t z = 0x9e3779b97f4a7c15ULL;

	for (size_t t = 0; t < 4; t++) {
		const bnf_dtype_info *d = bnf_dtype(codes[t]);
		int bad = 0;
		for (int i = 0; i < 100000; i++) {
			uint64_t r = next_random(&z);
			/* random significands, exponents past every type's range, and
			 * now and then an infinity or a NaN */
			double x = ldexp(1.0 + (double)(r >> 12) * 0x1p-52, (int)(r % 400) - 200) * ((r >> 11) & 1 ? -1 : 1);
			uint8_t a[8] = {0}, b[8] = {0};
			double y;
			if (i % 1000 == 1)
				x = (r >> 11) & 1 ? INFINITY : -INFINITY;
			else if (i % 1000 == 2)
				x = NAN;
			d->encode(x, a);
			bnf_encode(codes[t], x, b);
			y = d->round_to(x);
			bad += memcmp(a, b, 8) != 0;
			bad += !(d->decode(a) == y || (isnan(y) && isnan(d->decode(a))));
			bad += !(bnf_round_to(codes[t], x) == y || (isnan(y) && isnan(x)));
			bad += !(bnf_decode(codes[t], a) == y || (isnan(y) && isnan(x)));
		}
		OK(bad == 0, "%s: the row's codecs = bnf_encode/bnf_decode/bnf_round_to, round_to = decode(encode) "
			     "on 100000 values (%d differ)", d->name, bad);
	}
}

/* The float32 scaling, four elements at a time where it can: every stored
 * byte as the scalar product (double, rounded once to float) gives, for
 * runs of every length, any alignment, and values that overflow. */
static void test_float32_scaling(void)
{
	enum { N = 1000 };
	static const size_t inners[] = {1, 3, 4, 9, 37, 250};
	uint8_t raw[4 * N + 1], out[4 * N + 1], want[4 * N];
	double scale[N], scratch[N];
	uint64_t z = 0x2545f4914f6cdd1dULL;
	Onnx__TensorProto t = ONNX__TENSOR_PROTO__INIT;
	int64_t dim = N;
	bnf_tview v;
	char err[200];
	int bad = 0, flags = 0;

	t.n_dims = 1;
	t.dims = &dim;
	t.has_data_type = 1;
	t.data_type = BNF_DT_FLOAT;
	t.has_raw_data = 1;
	t.raw_data.len = 4 * N;
	for (size_t c = 0; c < N; c++)
		scale[c] = ldexp(1.0 + (double)(next_random(&z) >> 12) * 0x1p-52, (int)(z % 9) - 4);
	for (int round = 0; round < 24; round++) {
		size_t inner = inners[round % 6], shift = (size_t)round / 12, first = (size_t)round % 7;
		size_t n = N - first;
		bnf_transform tf = {.dtype = BNF_DT_FLOAT, .scale = scale,
				    .layout = {.inner = inner, .per_group = N / inner + 1, .rows_per_group = 1,
					       .channels = N / inner + 1}};
		bool finite = true, got;
		for (size_t i = 0; i < N; i++) {
			uint32_t b = (uint32_t)next_random(&z);
			if (round % 2 == 0) /* finite values of every size, no NaN or Inf */
				b = (b & 0x807fffffu) | (uint32_t)(1 + z % 254) << 23;
			memcpy(raw + shift + 4 * i, &b, 4);
		}
		for (size_t i = 0; i < n; i++) {
			float f;
			uint32_t b;
			memcpy(&f, raw + shift + 4 * (first + i), 4);
			f = (float)((double)f * scale[bnf_layout_channel(&tf.layout, first + i)]);
			memcpy(want + 4 * i, &f, 4);
			memcpy(&b, &f, 4);
			finite = finite && (b & 0x7f800000u) != 0x7f800000u;
		}
		t.raw_data.data = raw + shift;
		OK(bnf_tview_from_tensor(&t, &v, err, sizeof(err)) == BNF_TENSOR_OK, "float32 view %d", round);
		got = bnf_transform_apply(&tf, &v, first, n, NULL, scratch, out + 1 - shift);
		bad += memcmp(out + 1 - shift, want, 4 * n) != 0;
		flags += got != finite;
	}
	OK(bad == 0, "float32 scaling = the scalar products, byte for byte, in 24 layouts (%d differ)", bad);
	OK(flags == 0, "float32 scaling tells finite from not (%d wrong)", flags);
}

/* A file read through a source: pread, windows, and what a failed read gives. */
static void test_source(void)
{
	char path[] = "/tmp/bnfold-test-source-XXXXXX";
	int fd = mkstemp(path);
	uint8_t bytes[20000], buf[64];
	bnf_window w1 = BNF_WINDOW_INIT, w2 = BNF_WINDOW_INIT;
	const uint8_t *p1, *p2;
	bnf_source *src;
	bnf_tview v;
	double x[8];

	for (size_t i = 0; i < sizeof(bytes); i++)
		bytes[i] = (uint8_t)(i * 7 + i / 256);
	OK(fd >= 0 && write(fd, bytes, sizeof(bytes)) == (ssize_t)sizeof(bytes), "a file of 20000 bytes");
	src = bnf_source_open(fd, sizeof(bytes), path, false, NULL);
	unlink(path);
	OK(src && src->base && src->len == sizeof(bytes) && src->fd == fd, "opened as a source");
	if (!src)
		return;
	OK(bnf_source_read(src, buf, 64, 12345) == 0 && memcmp(buf, bytes + 12345, 64) == 0 && src->err == 0,
	   "pread of 64 bytes at 12345");
	memset(buf, 0xff, sizeof(buf));
	OK(bnf_source_read(src, buf, 64, sizeof(bytes) - 10) < 0 && memcmp(buf, bytes + sizeof(bytes) - 10, 10) == 0 &&
		   buf[10] == 0 && buf[63] == 0 && src->err == EIO,
	   "a read past the end: the bytes there, zeros after, EIO kept");
	src->err = 0;
	p1 = bnf_window_map(&w1, src, 100, 50);
	p2 = bnf_window_map(&w2, src, 19000, 1000);
	OK(p1 && p2 && memcmp(p1, bytes + 100, 50) == 0 && memcmp(p2, bytes + 19000, 1000) == 0,
	   "two windows, each on its bytes");
	OK(bnf_window_map(&w1, src, 5000, 16) == p1 + 4900, "bytes inside a window are read where they are");
	OK(bnf_window_map(&w1, src, 19990, 11) == NULL && bnf_window_map(&w1, src, UINT64_MAX - 3, 8) == NULL,
	   "ranges past the end are not mapped");
	bnf_window_drop(&w1);
	bnf_window_drop(&w2);
	OK(w1.p == NULL && w2.p == NULL, "windows dropped");

	/* a float32 view of the last 32 bytes and 16 past the end */
	memset(&v, 0, sizeof(v));
	v.dtype = BNF_DT_FLOAT;
	v.numel = 8;
	v.raw = src->base + sizeof(bytes) - 16;
	v.src = src;
	v.src_off = sizeof(bytes) - 16;
	bnf_tview_read_range(&v, 0, 4, x);
	OK(x[0] == bnf_decode(BNF_DT_FLOAT, bytes + sizeof(bytes) - 16) &&
		   x[3] == bnf_decode(BNF_DT_FLOAT, bytes + sizeof(bytes) - 4) && src->err == 0,
	   "a view reads its elements from the file");
	p1 = bnf_tview_map(&v, 0, 4, &w1);
	OK(p1 && memcmp(p1, bytes + sizeof(bytes) - 16, 16) == 0 && w1.src == src,
	   "and sees them in place through the reader's window");
	OK(bnf_tview_map(&v, 0, 4, NULL) == NULL, "without a window, bytes in a file are not mapped");
	{
		/* scaled from the bytes in place or from a copy: the same */
		double one = 0.5, scratch[4];
		uint8_t a[16], b[16];
		bnf_transform tf = {.dtype = BNF_DT_FLOAT, .scale = &one,
				    .layout = {.inner = 4, .per_group = 1, .rows_per_group = 1, .channels = 1}};
		bool fa = bnf_transform_apply(&tf, &v, 0, 4, &w1, scratch, a);
		bool fb = bnf_transform_apply(&tf, &v, 0, 4, NULL, scratch, b);
		OK(fa == fb && memcmp(a, b, 16) == 0 && src->err == 0,
		   "a transform reads a file through a window or a copy alike");
	}
	bnf_window_drop(&w1);
	bnf_tview_read_range(&v, 2, 6, x);
	OK(isnan(x[0]) && isnan(x[5]) && src->err == EIO, "a failed read gives NaN and keeps EIO");
	bnf_source_close(src);
}

/* A computed view reads as its source times the scale, rounded to its type. */
static void test_computed_view(void)
{
	float vals[6] = {1.0f, -2.5f, 3.25f, 1e-3f, 70000.0f, 0.1f};
	double scale[2] = {0.3, 2.0}, out[6];
	Onnx__TensorProto t = ONNX__TENSOR_PROTO__INIT;
	int64_t dims[2] = {2, 3};
	bnf_lazy lz;
	bnf_tview v;
	char err[200];
	int bad = 0;

	t.n_dims = 2;
	t.dims = dims;
	t.has_data_type = 1;
	t.data_type = BNF_DT_FLOAT;
	t.n_float_data = 6;
	t.float_data = vals;
	memset(&lz, 0, sizeof(lz));
	OK(bnf_tview_from_tensor(&t, &lz.src, err, sizeof(err)) == BNF_TENSOR_OK, "source of a computed view");
	lz.scale = scale;
	lz.tf = (bnf_transform){.dtype = BNF_DT_FLOAT16, .scale = scale,
				.layout = {.inner = 3, .per_group = 2, .rows_per_group = 1, .channels = 2}};
	memset(&v, 0, sizeof(v));
	v.dtype = BNF_DT_FLOAT16;
	v.numel = 6;
	v.lazy = &lz;
	bnf_tview_read_range(&v, 0, 6, out);
	for (int i = 0; i < 6; i++)
		bad += out[i] != bnf_round_to(BNF_DT_FLOAT16, (double)vals[i] * scale[i / 3]);
	OK(bad == 0 && isinf(out[4]), "computed view = round_to(float16, x * scale) (%d differ; 140000 overflows)", bad);
	OK(bnf_tview_raw_range(&v, 0, 6, out) == -1 && bnf_tview_map(&v, 0, 6, NULL) == NULL,
	   "a computed view has no stored bytes");
}

int main(void)
{
	test_fixed_patterns();
	test_decode_all();
	test_round_short_way();
	test_float32_and_le();
	test_fold_rounded_once();
	test_views();
	test_maxabs();
	test_dtype_table();
	test_dtype_codecs();
	test_float32_scaling();
	test_source();
	test_computed_view();
	return tap_done();
}
