#include "tensor.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "common.h"

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

size_t bnf_layout_channel(const bnf_layout *l, size_t i)
{
	size_t row = i / (l->per_group * l->inner);
	return (row / l->rows_per_group) * l->per_group + (i / l->inner) % l->per_group;
}

void bnf_lazy_read(const bnf_lazy *lz, size_t first, size_t n, double *out)
{
	bnf_tview_read_range(&lz->src, first, n, out);
	for (size_t i = 0; i < n; i++)
		out[i] = bnf_round_to(lz->tf.dtype, out[i] * lz->scale[bnf_layout_channel(&lz->tf.layout, first + i)]);
}

/* Elements [first, first + n) from the input file, through a small buffer;
 * from a failed read on, NaN. */
static void read_from_source(const bnf_tview *v, size_t first, size_t n, double *out)
{
	uint8_t buf[1 << 14];
	size_t es = bnf_dtype_size(v->dtype), per = sizeof(buf) / es;

	while (n > 0) {
		size_t k = n < per ? n : per;
		if (bnf_source_read(v->src, buf, k * es, v->src_off + (uint64_t)first * es) < 0) {
			for (size_t i = 0; i < n; i++)
				out[i] = NAN;
			return;
		}
		bnf_decode_run(v->dtype, buf, k, out);
		out += k;
		first += k;
		n -= k;
	}
}

/* Elements [first, first + n) of a view holding its data in the typed
 * repeated fields. */
static void read_typed(const bnf_tview *v, size_t first, size_t n, double *out)
{
	const Onnx__TensorProto *t = v->tensor;

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

void bnf_tview_read_range(const bnf_tview *v, size_t first, size_t n, double *out)
{
	if (v->uniform) {
		for (size_t i = 0; i < n; i++)
			out[i] = v->fill;
	} else if (v->floats) {
		for (size_t i = 0; i < n; i++)
			out[i] = v->floats[first + i];
	} else if (v->doubles) {
		memcpy(out, v->doubles + first, n * sizeof(double));
	} else if (v->lazy) {
		bnf_lazy_read(v->lazy, first, n, out);
	} else if (v->src) {
		read_from_source(v, first, n, out);
	} else if (v->raw) {
		bnf_decode_run(v->dtype, v->raw + first * bnf_dtype_size(v->dtype), n, out);
	} else {
		read_typed(v, first, n, out);
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
	if (v->doubles) { /* computed (const_eval.c): whole numbers below 2^53, exact as doubles */
		for (size_t i = 0; i < v->numel; i++) {
			double x = v->doubles[i];
			/* checked all the same: a conversion out of range is undefined */
			if (!(fabs(x) < 0x1p63) || x != trunc(x))
				return -1;
			out[i] = (int64_t)x;
		}
		return 0;
	}
	if (!t || v->src || v->lazy || v->uniform || v->floats)
		return -1; /* shapes are small: never left in the file */
	for (size_t i = 0; i < v->numel; i++) {
		if (v->raw)
			out[i] = v->dtype == BNF_DT_INT64
				 ? (int64_t)bnf_load_le(v->raw + 8 * i, 8)
				 : (int32_t)(uint32_t)bnf_load_le(v->raw + 4 * i, 4);
		else
			out[i] = v->dtype == BNF_DT_INT64 ? t->int64_data[i] : t->int32_data[i];
	}
	return 0;
}

int bnf_tview_raw_range(const bnf_tview *v, size_t first, size_t n, void *dst)
{
	size_t es = bnf_dtype_size(v->dtype);

	if (v->lazy || v->doubles || !(v->raw || v->src))
		return -1;
	if (!v->src)
		memcpy(dst, v->raw + first * es, n * es);
	else
		bnf_source_read(v->src, dst, n * es, v->src_off + (uint64_t)first * es); /* zero-filled on failure */
	return 0;
}

const uint8_t *bnf_tview_map(const bnf_tview *v, size_t first, size_t n, bnf_window *w)
{
	size_t es = bnf_dtype_size(v->dtype);

	if (v->lazy || v->doubles || !v->raw)
		return NULL;
	if (!v->src)
		return v->raw + first * es;
	return w ? bnf_window_map(w, v->src, v->src_off + (uint64_t)first * es, n * es) : NULL;
}
