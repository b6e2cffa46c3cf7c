/* Reading a model: a regular file mapped, or parsed without its large
 * payloads (which stay in the file, see payload.h); stdin, pipes and
 * devices read into memory.  The protobuf framing is checked before
 * protobuf-c unpacks anything, and external data is located beside the
 * model. */
#ifndef BNF_MODEL_READ_H
#define BNF_MODEL_READ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "onnx.pb-c.h"
#include "payload.h"

typedef struct bnf_input {
	const char *path;   /* as given; "-" is stdin */
	const uint8_t *data;
	size_t len;
	bool mapped;        /* data is an mmap of the file */
	bool reserved;      /* data is only address space standing for the file (streaming) */
	int fd;             /* the open regular file, else -1 */
	bool streaming;     /* large payloads were left in the file (see payload.h) */
	bool has_external;  /* some tensor's data is in an external file */
	bnf_payloads payloads;
	Onnx__ModelProto *model;
	bnf_err *fail;      /* where reading records its failure (may be NULL) */
} bnf_input;

/* Payloads at least this large stay in the input file when streaming. */
#define BNF_STREAM_MIN 1024

/* Read and parse path into in.  External data is located and checked
 * (relative to the model's directory, never outside it).  With stream set and a regular file, the
 * structure is parsed without the raw_data payloads of BNF_STREAM_MIN bytes
 * or more: they stay in the file and in->payloads tracks them, so memory
 * does not grow with the weights.  On failure records in fail (may be
 * NULL) one line naming the file and returns -1: BNFOLD_E_IO when it is
 * missing, unreadable or a directory (or an external data file is),
 * BNFOLD_E_NOT_ONNX when it is empty or not a well-formed ONNX model,
 * BNFOLD_E_INVALID for external data of a model read from stdin,
 * BNFOLD_E_NOMEM when memory or address space runs out.  A regular file
 * is read through mappings: a program that wants to report it shrinking
 * meanwhile catches SIGBUS. */
int bnf_input_open(const char *path, bnf_input *in, bool stream, bnf_err *fail);
void bnf_input_close(bnf_input *in);

/* Parse a whole model held in memory; name is used in messages.  The
 * protobuf framing is checked before protobuf-c unpacks it: every length
 * within the data and nesting at most BNF_MAX_NESTING (wire.h) deep.
 * Returns the model (free with onnx__model_proto__free_unpacked), or NULL
 * after recording in fail (may be NULL) one line naming name, with
 * BNFOLD_E_NOT_ONNX. */
Onnx__ModelProto *bnf_model_parse(const char *name, const uint8_t *data, size_t len, bnf_err *fail);
/* The same, unpacking through alloc (NULL: malloc). */
Onnx__ModelProto *bnf_model_parse_with(const char *name, const uint8_t *data, size_t len, ProtobufCAllocator *alloc,
				       bnf_err *fail);

/* Called for a tensor: 0 to go on, -1 to stop the walk. */
typedef int (*bnf_tensor_fn)(Onnx__TensorProto *t, void *ctx);
/* Call fn for every TensorProto of m: initializers, sparse ones, those in
 * attributes, in subgraphs, training_info and functions, always in the
 * same order (a written data file is laid out in it).  0, or -1 when fn
 * stopped the walk. */
int bnf_model_tensors(Onnx__ModelProto *m, bnf_tensor_fn fn, void *ctx);

#endif
