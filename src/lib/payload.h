/* Tensor payloads that are not copied into memory.
 *
 * In streaming mode the model is parsed without its large raw_data
 * payloads: a TensorProto's raw_data.data then points into the input
 * file's address range (never dereferenced: read with pread through
 * bnf_source) or into the input's bytes when they are in memory (read in
 * place through bnf_source all the same), or, for a folded weight, at a token standing for
 * "original payload x transform", computed chunk by chunk when the model is
 * written.  Such pointers must never be passed to free(): the allocator
 * returned here is what protobuf-c and the graph edit free through. */
#ifndef BNF_PAYLOAD_H
#define BNF_PAYLOAD_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "source.h"
#include "tensor.h"

/* The registry: the files payloads are read from, and the payloads
 * computed at write time (bnf_lazy, tensor.h), each standing behind a
 * token. */
typedef struct bnf_payloads {
	bnf_source **srcs;  /* files payloads are read from (owned) */
	size_t n_srcs, srcs_cap;
	char *model_path;   /* the model file, NULL for stdin */
	char *dir;          /* the model's directory, for external data; NULL for stdin */
	bool materialize;   /* the simple path: fold into memory, no computed payloads */
	uint8_t *arena;     /* address range reserved for tokens: token i = arena + i */
	size_t cap;
	bnf_lazy **lazy;
	size_t n, lazy_cap;
	ProtobufCAllocator allocator;
	bnf_err *fail;          /* where the registry records its failures */
} bnf_payloads;

/* Set up an empty registry; model_path locates external data (NULL or "-":
 * external data is refused); failures of the registry are recorded in
 * fail from then on.  -1 after recording why in fail. */
int bnf_payloads_init(bnf_payloads *pl, const char *model_path, bnf_err *fail);
void bnf_payloads_free(bnf_payloads *pl);

/* Take fd (a regular file of len bytes, path for messages) as a source:
 * reserves its address range.  The registry owns fd from now on, also on
 * failure.  NULL after recording why in pl->fail. */
bnf_source *bnf_payloads_add_source(bnf_payloads *pl, int fd, size_t len, const char *path, bool external);

/* Take the len bytes at data (a model in memory, not copied: they must
 * outlive the registry) as a source; name for messages.  NULL after
 * recording why in pl->fail. */
bnf_source *bnf_payloads_add_memory(bnf_payloads *pl, const void *data, size_t len, const char *name);

/* The source whose range holds ptr, or NULL. */
bnf_source *bnf_payloads_source_of(const bnf_payloads *pl, const void *ptr);

/* The external data file `location` (relative to the model's directory),
 * opened once.  Absolute paths, ".." and symlinks leading out of the
 * model's directory are refused.  NULL with a reason in err. */
bnf_source *bnf_payloads_external(bnf_payloads *pl, const char *location, char *err, size_t errlen);

/* Register "src x tf" (len bytes when written; tf.layout.channels scale
 * values are copied) and return its token, or NULL after recording why
 * in pl->fail. */
uint8_t *bnf_payloads_add(bnf_payloads *pl, const bnf_tview *src, const bnf_transform *tf, size_t len);

/* The computed payload behind ptr, or NULL. */
const bnf_lazy *bnf_payloads_lazy(const bnf_payloads *pl, const void *ptr);
/* True when ptr is not heap memory (in a source file or a token). */
bool bnf_payloads_borrowed(const bnf_payloads *pl, const void *ptr);

/* True when the payload behind ptr comes from an external data file
 * (directly, or computed from one). */
bool bnf_payloads_from_external(const bnf_payloads *pl, const void *ptr);

/* The bytes of the external data files the payloads are read from, in all
 * (what a copy of them takes: bnf_output_expect). */
uint64_t bnf_payloads_external_bytes(const bnf_payloads *pl);

/* When v's raw bytes are not in memory (left in the input file, or a
 * payload computed at write time), read them from where they are from now
 * on; the view then stays valid after the tensor is edited.  pl may be
 * NULL (everything in memory). */
void bnf_tview_bind(bnf_tview *v, const bnf_payloads *pl);

#endif
