/* The folding arithmetic against numbers worked out by hand. */
#include <math.h>
#include <string.h>

#include "plan.h"
#include "transform.h"
#include "tap.h"

int main(void)
{
	/* eps = 1 keeps the square roots exact:
	 *   s = gamma / sqrt(var + 1) = {2/sqrt(4), -3/sqrt(9)} = {1, -1}
	 *   b' = (b - mean) * s + beta = {(5-1)*1 + 0.5, (6-2)*(-1) + 4} = {4.5, 0}
	 *   no bias: {(0-1)*1 + 0.5, (0-2)*(-1) + 4} = {-0.5, 6} */
	const double gamma[2] = {2, -3}, var[2] = {3, 8}, mean[2] = {1, 2}, beta[2] = {0.5, 4}, b[2] = {5, 6};
	double s[2], nb[2];
	size_t bad;

	OK(bnf_bn_scale(gamma, mean, var, beta, 1.0, 2, s, &bad) == BNF_FOLD, "scale computes");
	NEAR(s[0], 1.0, 0, "s[0] = 2/sqrt(3+1) = 1");
	NEAR(s[1], -1.0, 0, "s[1] = -3/sqrt(8+1) = -1");
	bnf_bn_bias(b, mean, beta, s, 2, nb);
	NEAR(nb[0], 4.5, 0, "b'[0] = (5-1)*1 + 0.5 = 4.5");
	NEAR(nb[1], 0.0, 0, "b'[1] = (6-2)*(-1) + 4 = 0");
	bnf_bn_bias(NULL, mean, beta, s, 2, nb);
	NEAR(nb[0], -0.5, 0, "no bias: b'[0] = (0-1)*1 + 0.5 = -0.5");
	NEAR(nb[1], 6.0, 0, "no bias: b'[1] = (0-2)*(-1) + 4 = 6");

	/* default epsilon: s = 1 / sqrt(1 + 1e-5) = 0.99999500003749968... */
	{
		const double g1[1] = {1}, v1[1] = {1}, m1[1] = {0}, b1[1] = {0};
		OK(bnf_bn_scale(g1, m1, v1, b1, 1e-5, 1, s, &bad) == BNF_FOLD, "eps 1e-5 computes");
		NEAR(s[0], 0.99999500003749968750, 1e-15, "s = 1/sqrt(1.00001), within rounding of 1e-5 and sqrt");
	}

	/* unsafe parameters */
	{
		const double vneg[2] = {3, -1};
		const double gnan[2] = {2, NAN};
		const double vzero[2] = {3, -1e-5};
		OK(bnf_bn_scale(gamma, mean, vneg, beta, 1e-5, 2, s, &bad) == BNF_NONPOSITIVE_VARIANCE && bad == 1,
		   "var = -1 is nonpositive_variance at channel 1");
		OK(bnf_bn_scale(gamma, mean, vzero, beta, 1e-5, 2, s, &bad) == BNF_NONPOSITIVE_VARIANCE && bad == 1,
		   "var + eps = 0 is nonpositive_variance");
		OK(bnf_bn_scale(gnan, mean, var, beta, 1e-5, 2, s, &bad) == BNF_NON_FINITE_PARAM && bad == 1,
		   "NaN gamma is non_finite_param at channel 1");
		OK(bnf_bn_scale(gamma, mean, var, beta, INFINITY, 2, s, &bad) == BNF_NON_FINITE_PARAM,
		   "infinite epsilon is non_finite_param");
	}

	/* channel layouts */
	{
		bnf_layout conv = {.inner = 4, .per_group = 3, .rows_per_group = 1, .channels = 3};
		/* ConvTranspose weight [C_in=4, C_out/g=3, k=2], group 2:
		 * rows 0-1 are group 0 (channels 0-2), rows 2-3 group 1 (channels 3-5). */
		bnf_layout ct = {.inner = 2, .per_group = 3, .rows_per_group = 2, .channels = 6};
		/* Gemm B [K=2, N=3], transB = 0: channel = column. */
		bnf_layout gemm = {.inner = 1, .per_group = 3, .rows_per_group = 2, .channels = 3};
		OK(bnf_layout_channel(&conv, 3) == 0 && bnf_layout_channel(&conv, 4) == 1 &&
		   bnf_layout_channel(&conv, 11) == 2, "conv [3,..,4]: elements 0-3 channel 0, 4-7 channel 1, 8-11 channel 2");
		OK(bnf_layout_channel(&ct, 6) == 0, "convtranspose: element 6 (row 1, j 0) is channel 0");
		OK(bnf_layout_channel(&ct, 12) == 3, "convtranspose: element 12 (row 2 = group 1, j 0) is channel 3");
		OK(bnf_layout_channel(&ct, 17) == 5, "convtranspose: element 17 (row 2, j 2) is channel 5");
		OK(bnf_layout_channel(&gemm, 4) == 1 && bnf_layout_channel(&gemm, 5) == 2,
		   "gemm [2,3]: element 4 is column 1, element 5 column 2");
	}

	/* a transform applied to float32 data */
	{
		float w[6] = {1, 2, 3, 4, 5, 6};
		int64_t dims[2] = {2, 3};
		const double sc[2] = {0.5, -2};
		Onnx__TensorProto t = ONNX__TENSOR_PROTO__INIT;
		bnf_tview v;
		bnf_transform tf = {.dtype = BNF_DT_FLOAT, .layout = {.inner = 3, .per_group = 2, .rows_per_group = 1, .channels = 2}, .scale = sc};
		double scratch[6];
		float out[6];
		char err[100];
		t.n_dims = 2;
		t.dims = dims;
		t.has_data_type = 1;
		t.data_type = BNF_DT_FLOAT;
		t.n_float_data = 6;
		t.float_data = w;
		OK(bnf_tview_from_tensor(&t, &v, err, sizeof(err)) == BNF_TENSOR_OK, "weight view");
		bnf_transform_apply(&tf, &v, 0, 6, NULL, scratch, (unsigned char *)out);
		OK(out[0] == 0.5f && out[2] == 1.5f && out[3] == -8.0f && out[5] == -12.0f,
		   "W' = W * s per row: {0.5,1,1.5,-8,-10,-12}");
	}
	OK(strcmp(bnf_reason_code(BNF_NONPOSITIVE_VARIANCE), "nonpositive_variance") == 0, "reason code strings");
	return tap_done();
}
