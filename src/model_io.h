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

typedef struct bnf_input {
	const char *path;   /* as given; "-" is stdin */
	const uint8_t *data;
	size_t len;
	bool mapped;        /* data is an mmap of the file, else malloc'd */
	Onnx__ModelProto *model;
} bnf_input;

/* Read and parse path into in.  On failure prints one line naming the file
 * (missing, unreadable, a directory, empty, not an ONNX model) and returns -1. */
int bnf_input_open(const char *path, bnf_input *in);
void bnf_input_close(bnf_input *in);

/* Deepest nesting of protobuf messages accepted (as protobuf's own
 * default recursion limit): ModelProto, GraphProto, NodeProto,
 * AttributeProto, GraphProto, ... so about 30 levels of subgraphs. */
#define BNF_MAX_NESTING 100

/* Parse a whole model held in memory; name is used in messages.  The
 * protobuf framing is checked before protobuf-c unpacks it: every length
 * within the data and nesting at most BNF_MAX_NESTING deep.  Returns the
 * model (free with onnx__model_proto__free_unpacked), or NULL after one
 * error line naming name. */
Onnx__ModelProto *bnf_model_parse(const char *name, const uint8_t *data, size_t len);

/* Where output goes and how it gets there. */
typedef struct bnf_output {
	const char *path;   /* as given; "-" is stdout */
	int fd;
	char *tmp_path;     /* temp file to rename over final_path, or NULL when written directly */
	char *final_path;   /* the regular file replaced at commit (symlinks resolved) */
	int mode;           /* permissions for a new file */
	int err;            /* first write errno */
	uint8_t *buf;
	size_t used;
} bnf_output;

/* Open path for writing (see above). -1 after an error naming the path. */
int bnf_output_open(const char *path, bnf_output *out);
/* Append bytes (buffered); errors are remembered until commit. */
void bnf_output_write(bnf_output *out, const void *data, size_t len);
/* Flush, fsync and rename into place; -1 (and the temp file removed) on any
 * error so far. */
int bnf_output_commit(bnf_output *out);
/* Give up: remove the temp file, close. Safe after commit. */
void bnf_output_abort(bnf_output *out);

/* Serialize the model into out (protobuf wire format). */
void bnf_output_write_model(bnf_output *out, const Onnx__ModelProto *m);

/* Write a whole buffer to path with the rules above. */
int bnf_write_file(const char *path, const void *data, size_t len);

/* True when a and b name the same existing file. */
bool bnf_same_file(const char *a, const char *b);

#endif
