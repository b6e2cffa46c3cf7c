/* Typed access to TensorProto data: float32, float64, float16, bfloat16 (and
 * int64 for shapes), from raw_data (little-endian on any host) or the typed
 * repeated fields.  Every length from the file is checked before use. */
#ifndef BNF_TENSOR_H
#define BNF_TENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "onnx.pb-c.h"

/* ONNX TensorProto.DataType codes that bnfold reads. */
enum {
	BNF_DT_FLOAT = 1,
	BNF_DT_INT32 = 6,
	BNF_DT_INT64 = 7,
	BNF_DT_FLOAT16 = 10,
	BNF_DT_DOUBLE = 11,
	BNF_DT_BFLOAT16 = 16,
};

#define BNF_MAX_RANK 8

/* A file holding tensor payloads (the model file, or an external data
 * file): bytes in [base, base + len) stand for file offsets 0..len and are
 * read with pread from fd, never through memory (base is only reserved
 * address space), so reading a payload does not grow the process.  err
 * keeps the first read errno; callers check it before writing. */
typedef struct bnf_source {
	const uint8_t *base;
	size_t len;
	int fd;
	_Atomic int err; /* threads may read the same file (verify.c) */
	char *path;
	bool external;  /* an external data file, not the model file */
} bnf_source;

/* A pointer to bytes [off, off + len) of src's file, through a mapping
 * window of a few MiB, one per thread, that the thread's next call may
 * move (so the pointer is good until then), which spares a copy when the
 * same bytes are read sequentially; NULL when they cannot be mapped (then
 * read them with pread). */
const uint8_t *bnf_source_map(bnf_source *src, uint64_t off, size_t len);
/* Drop the calling thread's window if it is on src (any source: NULL);
 * before closing src->fd, and before a thread that read ends. */
void bnf_source_unmap(const bnf_source *src);

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
	bnf_source *src;         /* set when raw lies in the input file: read at src_off */
	uint64_t src_off;
	const struct bnf_lazy *lazy; /* set when raw is a payload computed at write time */
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

size_t bnf_layout_channel(const bnf_layout *l, size_t i);

/* A payload transform: out[i] = in[i] * scale[channel(i)], stored as dtype. */
typedef struct bnf_transform {
	int dtype;
	bnf_layout layout;
	const double *scale;
} bnf_transform;

/* Apply the transform to elements [first, first + n) of `src` and store them,
 * rounded once, into out (n * dtype size bytes).  Returns whether every
 * stored value is finite (a NaN or Inf in src, or a product beyond the
 * dtype's range, is not). */
bool bnf_transform_apply(const bnf_transform *tf, const bnf_tview *src, size_t first, size_t n,
			 double *scratch, unsigned char *out);
/* True for a float32, float16 or bfloat16 view whose stored bytes
 * bnf_transform_apply reads in place (raw_data in memory or in a file, on
 * a little-endian host). */
bool bnf_tview_in_place(const bnf_tview *v);

/* Copy the stored little-endian bytes of elements [first, first + n) to
 * dst; -1 when the view has no raw bytes (typed fields, uniform, computed).
 * A failed read from the input file zero-fills and sets src->err. */
int bnf_tview_raw_range(const bnf_tview *v, size_t first, size_t n, void *dst);

/* Where the stored little-endian bytes of elements [first, first + n) can
 * be read in place: in memory, or through the window of the file they are
 * in (bnf_source_map: good until the next read of that file); NULL when
 * there are none (typed fields, uniform, computed) or they cannot be
 * mapped, and then bnf_tview_raw_range copies them. */
const uint8_t *bnf_tview_raw_view(const bnf_tview *v, size_t first, size_t n);

/* For each channel of l, the largest |x| of v into maxabs (l->channels
 * values).  Returns 0, 1 when an element is NaN or Inf (*bad = its index),
 * -1 when memory runs out. */
int bnf_tview_channel_maxabs(const bnf_tview *v, const bnf_layout *l, double *maxabs, size_t *bad);

/* Outcome of bnf_tview_from_tensor(). */
typedef enum {
	BNF_TENSOR_OK = 0,
	BNF_TENSOR_MALFORMED = -1,   /* lengths or dims inconsistent: bad input */
	BNF_TENSOR_UNSUPPORTED = -2, /* valid but not readable here (external data, rank) */
	BNF_TENSOR_BAD_DTYPE = -3,   /* a data type without a fixed element size here (int8, string, unknown) */
} bnf_tensor_status;

/* Bytes per element of a float dtype (or int32/int64), 0 if unknown. */
size_t bnf_dtype_size(int dtype);
/* "float32", "float16", ...; "dtype<N>" style names are not returned: unknown gives "unknown". */
const char *bnf_dtype_name(int dtype);
/* True for float32, float64, float16, bfloat16: the types bnfold folds. */
bool bnf_dtype_is_float(int dtype);

/* Describe `t` in `v`, checking dims (non-negative, product without
 * overflow, rank <= BNF_MAX_RANK) and that the stored data has exactly numel
 * elements.  On failure writes a reason (no trailing newline) to err. */
bnf_tensor_status bnf_tview_from_tensor(const Onnx__TensorProto *t, bnf_tview *v,
					char *err, size_t errlen);

struct bnf_payloads;
/* When v's raw bytes are not in memory (left in the input file, or a
 * payload computed at write time: see payload.h), read them from where
 * they are from now on; the view then stays valid after the tensor is
 * edited.  pl may be NULL (everything in memory). */
void bnf_tview_bind(bnf_tview *v, const struct bnf_payloads *pl);

/* Read all v->numel elements of a float view as doubles into out.  A
 * failed read from the input file fills NaN and sets src->err. */
void bnf_tview_read(const bnf_tview *v, double *out);
/* Read elements [first, first + n) of a float view (bounds are the caller's). */
void bnf_tview_read_range(const bnf_tview *v, size_t first, size_t n, double *out);
/* Read an int64 (or int32) view into out (v->numel elements); -1 if the
 * view is not an integer tensor. */
int bnf_tview_read_i64(const bnf_tview *v, int64_t *out);

/* The value `x` becomes when stored as dtype (rounded once, to nearest
 * even); +-inf when it overflows the type. */
double bnf_round_to(int dtype, double x);
/* Store x as dtype, little-endian, into out (bnf_dtype_size bytes). */
void bnf_encode(int dtype, double x, uint8_t *out);
/* Load one little-endian element of dtype. */
double bnf_decode(int dtype, const uint8_t *p);

/* IEEE binary16 / bfloat16 bit patterns from double, rounded once to
 * nearest even, and back. */
uint16_t bnf_f16_from_double(double x);
double bnf_f16_to_double(uint16_t h);
uint16_t bnf_bf16_from_double(double x);
double bnf_bf16_to_double(uint16_t h);

#endif
