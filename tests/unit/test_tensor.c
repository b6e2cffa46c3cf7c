/* tensor.c against hand-computed IEEE bit patterns. */
#include <math.h>
#include <string.h>

#include "tap.h"
#include "fold.h"
#include "tensor.h"

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
	bnf_transform_apply(&tf, &v, 0, 1, scratch, out);
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
	OK(bnf_tview_from_tensor(&t, &v, err, sizeof(err)) == BNF_TENSOR_UNSUPPORTED, "external data is reported as unsupported");
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

int main(void)
{
	test_fixed_patterns();
	test_decode_all();
	test_round_short_way();
	test_float32_and_le();
	test_fold_rounded_once();
	test_views();
	test_maxabs();
	return tap_done();
}
