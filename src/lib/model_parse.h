/* From bytes to a model: the protobuf framing checked before protobuf-c
 * unpacks anything, and the streaming scan that unpacks a model without
 * its large payloads, leaving them where they are (a file, or bytes in
 * memory); then every TensorProto of a model, in one order.  Below
 * model_read.h, which opens inputs with these. */
#ifndef BNF_MODEL_PARSE_H
#define BNF_MODEL_PARSE_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "onnx.pb-c.h"
#include "wire.h"

/* Payloads at least this large stay where they are when streaming. */
#define BNF_STREAM_MIN 1024

/* Check the protobuf framing of a whole model held in memory, as
 * bnf_model_parse does before it unpacks: every length within the data,
 * nesting at most BNF_MAX_NESTING (wire.h) deep, no string holding a NUL,
 * and the memory unpacking would take bounded.  0, or -1 after recording in
 * fail (may be NULL) one line naming name, with BNFOLD_E_NOT_ONNX (the
 * same line bnf_model_parse records for the same data). */
int bnf_model_check(const char *name, const uint8_t *data, size_t len, bnf_err *fail);

/* Parse a whole model held in memory; name is used in messages.  The
 * framing is checked first (bnf_model_check).  Returns the model (free
 * with onnx__model_proto__free_unpacked), or NULL after recording in fail
 * (may be NULL) one line naming name, with BNFOLD_E_NOT_ONNX. */
Onnx__ModelProto *bnf_model_parse(const char *name, const uint8_t *data, size_t len, bnf_err *fail);
/* The same, unpacking through alloc (NULL: malloc). */
Onnx__ModelProto *bnf_model_parse_with(const char *name, const uint8_t *data, size_t len, ProtobufCAllocator *alloc,
				       bnf_err *fail);

/* Unpack the model w reads (a file or a buffer, from its start) without
 * the raw_data payloads of BNF_STREAM_MIN bytes or more: each stays where
 * it is, and its tensor's raw_data points at base + its offset in the data
 * (base: the bytes themselves for a buffer, or an address range standing
 * for the file).  alloc (through which the model is unpacked and freed)
 * must not free pointers into [base, base + w->size).  The model's own
 * message counts as nesting depth `depth`.  The structure left (the
 * skeleton) is parsed as bnf_model_parse_with does, its unpacking bounded
 * as for a model of limit_len bytes (0: the skeleton's own size).
 * 0 with *m set; -1 after recording in fail one line naming name
 * (BNFOLD_E_NOT_ONNX, BNFOLD_E_IO when reading the file fails,
 * BNFOLD_E_NOMEM); 1, nothing recorded and *m NULL, when a payload cannot
 * be placed (a tensor holds raw_data twice, or data is misplaced): the
 * caller refuses the model, or parses it whole. */
int bnf_model_scan(bnf_wire *w, int depth, const uint8_t *base, const char *name, size_t limit_len,
		   ProtobufCAllocator *alloc, Onnx__ModelProto **m, bnf_err *fail);

/* Called for a tensor: 0 to go on, -1 to stop the walk. */
typedef int (*bnf_tensor_fn)(Onnx__TensorProto *t, void *ctx);
/* Call fn for every TensorProto of m: initializers, sparse ones, those in
 * attributes, in subgraphs, training_info and functions, always in the
 * same order (a written data file is laid out in it).  0, or -1 when fn
 * stopped the walk. */
int bnf_model_tensors(Onnx__ModelProto *m, bnf_tensor_fn fn, void *ctx);

#endif
