/* Read-only views of constant tensors: float32, float64, float16, bfloat16
 * (and int64 for shapes), from raw_data (little-endian on any host) in
 * memory or left in the input file, the typed repeated fields, or computed
 * from another view.  Every length from the file is checked before use.
 *
 * Layers, each using only those below: dtype.h (element types), source.h
 * (files holding payloads), this header (views), transform.h (per-channel
 * kernels over views), payload.h (the registry of payloads not in memory).
 * This header includes dtype.h and source.h, which its views are made of. */
#ifndef BNF_TENSOR_H
#define BNF_TENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dtype.h"
#include "onnx.pb-c.h"
#include "source.h"

#define BNF_MAX_RANK 8

/* A read-only view of a constant tensor.  Either `tensor` holds the data, or
 * the view is `uniform` (every element equals `fill`: ConstantOfShape,
 * Constant value_float), or `floats` points at Constant value_floats. */
typedef struct bnf_tview {
	int dtype;
	size_t rank;
	int64_t dims[BNF_MAX_RANK];
	size_t numel;
	const Onnx__TensorProto *tensor;
	const uint8_t *raw;      /* little-endian data (raw_data), or NULL for typed fields */
	bnf_source *src;         /* set when raw lies in a file: read at src_off (bnf_tview_bind, payload.h) */
	uint64_t src_off;
	const struct bnf_lazy *lazy; /* set when raw is a payload computed at write time: read as lazy says */
	bool uniform;
	double fill;
	const float *floats;
	const double *doubles;   /* values computed from constants (already rounded to dtype) */
} bnf_tview;

/* Where the output channel lives in a weight tensor laid out as rows of
 * `per_group * inner` elements: element i belongs to channel
 * (row / rows_per_group) * per_group + (i / inner) % per_group,
 * with row = i / (per_group * inner).
 *   Conv [C_out, C_in/g, k...]:           inner = prod(dims[1:]), per_group = C_out, rows_per_group = 1
 *   ConvTranspose [C_in, C_out/g, k...]:   inner = prod(dims[2:]), per_group = C_out/g, rows_per_group = C_in/g
 *   Gemm B [K, N] (transB = 0):            inner = 1, per_group = N, rows_per_group = K */
typedef struct bnf_layout {
	size_t inner;
	size_t per_group;
	size_t rows_per_group;
	size_t channels;
} bnf_layout;

/* The channel of element i. */
size_t bnf_layout_channel(const bnf_layout *l, size_t i);

/* A payload transform: out[i] = in[i] * scale[channel(i)], stored as dtype. */
typedef struct bnf_transform {
	int dtype;
	bnf_layout layout;
	const double *scale;
} bnf_transform;

/* A view computed when read: src's elements times tf, each rounded once to
 * tf.dtype.  A folded weight is one until the model is written (payload.h
 * registers them and gives the views that read them: bnf_tview.lazy). */
typedef struct bnf_lazy {
	bnf_tview src;
	bnf_transform tf;   /* tf.scale points at scale */
	double *scale;
	size_t len;         /* bytes */
} bnf_lazy;

/* Elements [first, first + n) of a computed payload, as stored (rounded). */
void bnf_lazy_read(const bnf_lazy *lz, size_t first, size_t n, double *out);

/* Outcome of bnf_tview_from_tensor(). */
typedef enum {
	BNF_TENSOR_OK = 0,
	BNF_TENSOR_MALFORMED = -1,   /* lengths or dims inconsistent: bad input */
	BNF_TENSOR_UNSUPPORTED = -2, /* valid but not readable here (external data, rank) */
	BNF_TENSOR_BAD_DTYPE = -3,   /* a data type without a fixed element size here (int8, string, unknown) */
} bnf_tensor_status;

/* Describe `t` in `v`, checking dims (non-negative, product without
 * overflow, rank <= BNF_MAX_RANK) and that the stored data has exactly numel
 * elements.  On failure writes a reason (no trailing newline) to err. */
bnf_tensor_status bnf_tview_from_tensor(const Onnx__TensorProto *t, bnf_tview *v,
					char *err, size_t errlen);

/* Read all v->numel elements of a float view as doubles into out.  A
 * failed read from the input file fills NaN and sets src->err. */
void bnf_tview_read(const bnf_tview *v, double *out);
/* Read elements [first, first + n) of a float view (bounds are the caller's). */
void bnf_tview_read_range(const bnf_tview *v, size_t first, size_t n, double *out);
/* Read an int64 (or int32) view into out (v->numel elements): a tensor
 * in memory, or values computed from constants (doubles) that are whole
 * and below 2^63 in magnitude; -1 otherwise. */
int bnf_tview_read_i64(const bnf_tview *v, int64_t *out);

/* Copy the stored little-endian bytes of elements [first, first + n) to
 * dst; -1 when the view has no raw bytes (typed fields, uniform, computed).
 * A failed read from the input file zero-fills and sets src->err. */
int bnf_tview_raw_range(const bnf_tview *v, size_t first, size_t n, void *dst);

/* Where the stored little-endian bytes of elements [first, first + n) can
 * be read in place: in memory, or through the caller's window w on the
 * file they are in (bnf_window_map: good until w moves or is dropped; with
 * a NULL w, bytes left in a file are not mapped).  NULL when there are none
 * (typed fields, uniform, computed) or they cannot be mapped, and then
 * bnf_tview_raw_range copies them. */
const uint8_t *bnf_tview_map(const bnf_tview *v, size_t first, size_t n, bnf_window *w);

#endif
