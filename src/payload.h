/* Tensor payloads that are not copied into memory.
 *
 * In streaming mode the model is parsed without its large raw_data
 * payloads: a TensorProto's raw_data.data then points into the input
 * file's mapping (never dereferenced: read with pread through
 * bnf_source), or, for a folded weight, at a token standing for
 * "original payload x transform", computed chunk by chunk when the model is
 * written.  Such pointers must never be passed to free(): the allocator
 * returned here is what protobuf-c and the graph edit free through. */
#ifndef BNF_PAYLOAD_H
#define BNF_PAYLOAD_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tensor.h"

/* A payload computed at write time: src's elements times tf. */
typedef struct bnf_lazy {
	bnf_tview src;
	bnf_transform tf;   /* tf.scale points at scale */
	double *scale;
	size_t len;         /* bytes */
} bnf_lazy;

typedef struct bnf_payloads {
	bnf_source *src;    /* the input file, or NULL */
	uint8_t *arena;     /* address range reserved for tokens: token i = arena + i */
	size_t cap;
	bnf_lazy **lazy;
	size_t n;
	ProtobufCAllocator allocator;
} bnf_payloads;

/* Set up an empty registry for src (may be NULL). -1 after bnf_error(). */
int bnf_payloads_init(bnf_payloads *pl, bnf_source *src);
void bnf_payloads_free(bnf_payloads *pl);

/* Register "src x tf" (len bytes when written; tf.layout.channels scale
 * values are copied) and return its token, or NULL after bnf_error(). */
uint8_t *bnf_payloads_add(bnf_payloads *pl, const bnf_tview *src, const bnf_transform *tf, size_t len);

/* The computed payload behind ptr, or NULL. */
const bnf_lazy *bnf_payloads_lazy(const bnf_payloads *pl, const void *ptr);
/* True when ptr is not heap memory (in the input file or a token). */
bool bnf_payloads_borrowed(const bnf_payloads *pl, const void *ptr);

/* Elements [first, first + n) of a computed payload, as stored (rounded). */
void bnf_lazy_read(const bnf_lazy *lz, size_t first, size_t n, double *out);

#endif
