/* Bytes holding tensor payloads, read where they are: a file (the model
 * file, or an external data file), with pread or through a mapping window
 * of a few MiB, never copied into memory whole; or a model already in
 * memory (a caller's buffer, standard input read), read in place.  Below
 * the tensor views (tensor.h) and the payload registry (payload.h), and
 * knows neither. */
#ifndef BNF_SOURCE_H
#define BNF_SOURCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"

/* Bytes in [base, base + len) stand for offsets 0..len of the source.
 * For a file they are read with pread from fd, never through memory (base
 * is only reserved address space, so a pointer into a payload left in the
 * file can stand for it), so reading a payload does not grow the process.
 * In memory (fd -1), base is the bytes themselves, borrowed: reads copy
 * from them and windows point into them.  err keeps the first read errno;
 * callers check it before writing. */
typedef struct bnf_source {
	const uint8_t *base;
	size_t len;
	int fd;
	_Atomic int err; /* threads may read the same file (verify.c) */
	char *path;
	bool external;  /* an external data file, not the model file */
	bool in_memory; /* base holds the bytes (see above) */
} bnf_source;

/* Take fd (a regular file of len bytes, path for messages) as a source:
 * reserves its address range.  The source owns fd from now on, also on
 * failure.  NULL after recording why in fail. */
bnf_source *bnf_source_open(int fd, size_t len, const char *path, bool external, bnf_err *fail);
/* Take the len bytes at data (not copied: they must outlive the source;
 * name for messages) as a source.  NULL after recording why in fail. */
bnf_source *bnf_source_memory(const void *data, size_t len, const char *name, bnf_err *fail);
/* Release the address range, close fd and free src (a source in memory
 * leaves its bytes alone).  NULL is a no-op.
 * Every window on src must be dropped first: one left on it keeps its
 * mapping, and could be taken for a window on a later source allocated at
 * the same address. */
void bnf_source_close(bnf_source *src);

/* Read len bytes at offset off into dst.  0; or -1 when the file
 * cannot be read or ends first (or the bytes in memory do): then the bytes not read are zero, and
 * src->err holds the errno unless it held one already. */
int bnf_source_read(bnf_source *src, void *dst, size_t len, uint64_t off);

/* A read-only mapping of part of a source's file, moved as reads go on:
 * reading the same bytes in order through it spares a copy.  Owned by
 * whoever reads, and used by one thread at a time: each reader holds its
 * own (there is no shared or per-thread one), starts it zeroed
 * (BNF_WINDOW_INIT) and drops it when done, before the source closes.  One
 * window may serve several sources in turn (it moves to the one asked). */
typedef struct bnf_window {
	const bnf_source *src;
	const uint8_t *p;  /* the mapping of [off, off + len) of src's file, or NULL */
	uint64_t off;
	size_t len;
} bnf_window;

#define BNF_WINDOW_INIT {0}

/* A pointer to bytes [off, off + len) of src's file through w, good until
 * w next moves (a map of other bytes) or is dropped; NULL when they cannot
 * be mapped (then read them with bnf_source_read).  A source in memory
 * needs no mapping: the pointer is into its bytes, and w is left as it is. */
const uint8_t *bnf_window_map(bnf_window *w, bnf_source *src, uint64_t off, size_t len);
/* Unmap w (a zeroed or dropped window: nothing to do); it may be used
 * again. */
void bnf_window_drop(bnf_window *w);

#endif
