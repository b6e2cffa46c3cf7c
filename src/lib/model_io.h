/* Reading a model (mmap, or stdin / pipes into memory) and writing files
 * safely: regular files through a temp file in the same directory, fsync
 * and rename; special files (/dev/null, FIFOs, terminals) and stdout
 * written directly, never replaced. */
#ifndef BNF_MODEL_IO_H
#define BNF_MODEL_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "onnx.pb-c.h"
#include "payload.h"
#include "wire.h"

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
} bnf_input;

/* Payloads at least this large stay in the input file when streaming. */
#define BNF_STREAM_MIN 1024

/* Read and parse path into in.  External data is located and checked
 * (relative to the model's directory, never outside it).  With stream set and a regular file, the
 * structure is parsed without the raw_data payloads of BNF_STREAM_MIN bytes
 * or more: they stay in the file and in->payloads tracks them, so memory
 * does not grow with the weights.  On failure prints one line naming the
 * file (missing, unreadable, a directory, empty, not an ONNX model) and
 * returns -1. */
int bnf_input_open(const char *path, bnf_input *in, bool stream);
void bnf_input_close(bnf_input *in);

/* Parse a whole model held in memory; name is used in messages.  The
 * protobuf framing is checked before protobuf-c unpacks it: every length
 * within the data and nesting at most BNF_MAX_NESTING deep.  Returns the
 * model (free with onnx__model_proto__free_unpacked), or NULL after one
 * error line naming name. */
Onnx__ModelProto *bnf_model_parse(const char *name, const uint8_t *data, size_t len);
/* The same, unpacking through alloc (NULL: malloc). */
Onnx__ModelProto *bnf_model_parse_with(const char *name, const uint8_t *data, size_t len, ProtobufCAllocator *alloc);

/* Where output goes and how it gets there. */
typedef struct bnf_output {
	const char *path;   /* as given; "-" is stdout */
	int fd;
	char *tmp_path;     /* temp file to rename over final_path, or NULL when written directly */
	char *final_path;   /* the regular file replaced at commit (symlinks resolved) */
	int mode;           /* permissions for a new file */
	int err;            /* first write errno, or read errno when read_from is set */
	const char *read_from; /* the input file a read failed on, or NULL */
	uint8_t *buf;
	size_t used;
	bool no_sync;       /* skip the fsync before the rename (--no-fsync) */
	bool nonfinite;     /* a computed payload came out NaN or Inf (see bnf_fold_options.defer_scan) */
	uint64_t written;   /* bytes written to fd so far */
	uint64_t flushing;  /* bytes of them whose writeback has been started */
	struct bnf_output *data; /* the external data file written beside it, or NULL */
	/* Told the temp file's path right after it is created, and NULL once
	 * it is renamed or removed (NULL: nobody is told). */
	void (*tempfile)(const char *path, void *ctx);
	void *tempfile_ctx;
} bnf_output;

/* Open path for writing (see above).  tempfile (may be NULL) is called
 * with tempfile_ctx as described in bnf_output; SIGINT, SIGTERM and SIGHUP
 * are blocked on the calling thread from the temp file's creation until
 * that call returns, so a program's handler always knows the file to
 * remove.  -1 after an error naming the path. */
int bnf_output_open(const char *path, bnf_output *out, void (*tempfile)(const char *path, void *ctx),
		    void *tempfile_ctx);
/* Append bytes (buffered); errors are remembered until commit. */
void bnf_output_write(bnf_output *out, const void *data, size_t len);
/* Flush, fsync (unless no_sync) and rename into place; -1 (and the temp
 * file removed) on any error so far.  While a temp file is written, the
 * kernel is asked every few MiB to start writing it back, so the final
 * fsync waits for the tail only. */
int bnf_output_commit(bnf_output *out);
/* Give up: remove the temp file, close. Safe after commit. */
void bnf_output_abort(bnf_output *out);

/* Serialize the model into out (protobuf wire format); payloads left in the
 * input file are copied from it, computed ones computed now.  Tensors read
 * from external data go to OUTPUT.data beside a regular output file
 * (committed with it), unless inline_all puts everything in the model.
 * Edits the model's external-data fields.  -1 after bnf_error(). */
int bnf_output_write_model(bnf_output *out, Onnx__ModelProto *m, const bnf_payloads *pl, bool inline_all);
/* Copy the input, byte for byte (-1 when its weights live elsewhere). */
int bnf_output_write_input(bnf_output *out, const bnf_input *in);

/* Write a whole buffer to path with the rules above (tempfile as for
 * bnf_output_open). */
int bnf_write_file(const char *path, const void *data, size_t len, void (*tempfile)(const char *path, void *ctx),
		   void *tempfile_ctx);

/* True when a and b name the same existing file. */
bool bnf_same_file(const char *a, const char *b);

#endif
