/* An output file, written safely: a regular file (or a new one) through a
 * temp file in the same directory, renamed over it only when everything
 * went well, and fsync'd first as the sync policy says (bnfold_sync); special files (/dev/null, FIFOs, terminals) and
 * stdout written directly, never replaced.  Writes are buffered and their
 * errors remembered until commit, which reports the first one.  Or an
 * output in memory: the same calls fill one buffer of the size announced,
 * handed to the caller at commit. */
#ifndef BNF_OUTFILE_H
#define BNF_OUTFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"

/* Bytes buffered before they are written. */
#define BNF_OUT_BUF ((size_t)1 << 20)

/* Told of a temp file: exists true right after it is created, false
 * (the same path) once it is renamed or removed. */
typedef void (*bnf_tempfile_fn)(const char *path, bool exists, void *ctx);

/* Where output goes and how it gets there. */
typedef struct bnf_output {
	char *path;         /* a copy of the path given; "-" is stdout */
	int fd;
	char *tmp_path;     /* temp file to rename over final_path, or NULL when written directly */
	char *final_path;   /* the regular file replaced at commit (symlinks resolved) */
	int mode;           /* permissions the file gets: an existing one's, else 0666 less the umask */
	int err;            /* first write errno, or read errno when read_from is set */
	const char *read_from; /* the input file a read failed on, or NULL */
	uint8_t *buf;       /* BNF_OUT_BUF bytes (in memory: mem_size), used of them filled */
	size_t used;
	bool memory;        /* an output in memory (bnf_output_open_memory): fd is -1 */
	size_t mem_size;    /* its size */
	bool mem_borrowed;  /* buf is the caller's (bnf_output_open_memory_from): not freed */
	bnfold_sync sync;   /* when the temp file is fsync'd before the rename (default
			     * BNFOLD_SYNC_AUTO: when it replaces a file); set after open */
	bool replaces;      /* the commit replaces an existing file: this one's final_path,
			     * or, for a model and its data file, either's */
	bool reserved;      /* bnf_output_expect reserved blocks: commit cuts the file to its size */
	bool nonfinite;     /* a computed payload came out NaN or Inf (see bnf_fold_options.defer_scan) */
	uint64_t written;   /* bytes written to fd so far */
	uint64_t flushing;  /* bytes of them whose writeback has been started */
	struct bnf_output *data; /* a file that goes with this one (the external data written beside
				  * it), committed with it (see bnf_output_commit) and aborted with it; or NULL */
	/* Told of the temp file (bnf_tempfile_fn; NULL: nobody is told). */
	bnf_tempfile_fn tempfile;
	void *tempfile_ctx;
	bnf_err *fail;      /* where opening, writing and committing record their failure (may be NULL) */
} bnf_output;

/* Open path for writing (see above).  tempfile (may be NULL) is called
 * with tempfile_ctx as described in bnf_output; SIGINT, SIGTERM and SIGHUP
 * are blocked on the calling thread from the temp file's creation until
 * that call returns, so a program's handler always knows the file to
 * remove.  fail (may be NULL) is kept in out->fail for every later call.
 * -1 after recording one line naming the path in fail: BNFOLD_E_IO (a
 * directory, a file that cannot be opened, created or resolved), or
 * BNFOLD_E_NOMEM. */
int bnf_output_open(const char *path, bnf_output *out, bnf_tempfile_fn tempfile, void *tempfile_ctx,
		    bnf_err *fail);

/* An output in memory of exactly size bytes, name for messages: writes
 * go straight into one buffer of that size (memory for the rest is only
 * touched as it is written), never written out, so nothing is copied
 * twice and nothing grows.  Writing more is an error, and so is
 * committing fewer (bnf_output_commit_memory).  -1 after recording in
 * fail (may be NULL) BNFOLD_E_NOMEM: "NAME: out of memory writing the
 * model". */
int bnf_output_open_memory(const char *name, size_t size, bnf_output *out, bnf_err *fail);
/* The same, in memory from alloc(size, ctx) (bnfold_options.out_alloc),
 * which stays the caller's: never freed here. */
int bnf_output_open_memory_from(const char *name, size_t size, void *(*alloc)(size_t size, void *ctx), void *ctx,
				bnf_output *out, bnf_err *fail);
/* Finish an output in memory: 0 and its bytes in *data (free them) and
 * *len; or -1 after recording the first error in out->fail, as
 * bnf_output_commit does.  out is closed either way. */
int bnf_output_commit_memory(bnf_output *out, void **data, size_t *len);

/* Advice: the file will be about `bytes` long.  A temp file on ext4 gets
 * its blocks reserved now (fallocate, keeping the size at 0), so that its
 * writes skip delayed allocation, block by block: a 100 MB output is
 * written in about a fifth less time.  What is reserved past the end is
 * released at commit.  Elsewhere (other file systems, stdout, a build
 * without fallocate) nothing happens; a failure changes nothing either. */
void bnf_output_expect(bnf_output *out, uint64_t bytes);

/* Append bytes (buffered); errors are remembered until commit. */
void bnf_output_write(bnf_output *out, const void *data, size_t len);

/* Room in the buffer for at least want (<= BNF_OUT_BUF) bytes, writing
 * out what it holds when it has less: where the next bytes go, and in
 * *room how many fit.  Then bnf_output_advance by the count put there. */
uint8_t *bnf_output_reserve(bnf_output *out, size_t want, size_t *room);
void bnf_output_advance(bnf_output *out, size_t n);

/* Append [off, off + len) of the open file fd: in the kernel
 * (copy_file_range, where the build uses it) when the output is a temp
 * file, else through the buffer.  A failed read is remembered as one of path (may be NULL: then
 * reported as a write error). */
void bnf_output_copy(bnf_output *out, int fd, const char *path, uint64_t off, size_t len);

/* Give out a data file (opened by the caller) to go with out: committed
 * and aborted with it, and synced when out is (same sync; replaces when
 * either file replaces one). */
void bnf_output_attach(bnf_output *out, bnf_output *data);

/* Flush, fsync (as out->sync says: see bnf_output_syncs) and rename into
 * place; -1 (and the temp files removed) on any error so far, recorded in
 * out->fail: BNFOLD_E_IO (BNFOLD_E_NOMEM when a computed payload ran out
 * of memory).  With a data file (out->data), both temp files are flushed,
 * synced and closed before either is renamed, the data file first: a
 * failure until then leaves both earlier files as they were (only a
 * failing rename of the model, after the data file's, leaves the new data
 * file in place).  While a temp file that will be synced is written, the
 * kernel is asked every few MiB to start writing it back, so the final
 * fsync waits for the tail only. */
int bnf_output_commit(bnf_output *out);
/* Whether commit fsyncs out's temp file: ALWAYS, or AUTO when it
 * replaces a file (never a file written directly, such as stdout). */
bool bnf_output_syncs(const bnf_output *out);
/* Give up: remove the temp file, close. Safe after commit. */
void bnf_output_abort(bnf_output *out);

/* Write a whole buffer to path with the rules above (tempfile as for
 * bnf_output_open, sync as bnf_output.sync).  0, or -1 after recording in fail (may be NULL) an
 * error naming path, as bnf_output_open and bnf_output_commit do. */
int bnf_write_file(const char *path, const void *data, size_t len, bnfold_sync sync, bnf_tempfile_fn tempfile,
		   void *tempfile_ctx, bnf_err *fail);

/* True when a and b name the same existing file ("-" names none). */
bool bnf_same_file(const char *a, const char *b);

#endif
