/* Reading a model: a regular file parsed without its large payloads
 * (which stay in the file, see payload.h), or mapped whole; stdin, pipes
 * and devices read into memory, and a caller's buffer, parsed the same way
 * with their payloads left in those bytes.  External data is located
 * beside the model. */
#ifndef BNF_MODEL_READ_H
#define BNF_MODEL_READ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "model_parse.h"
#include "onnx.pb-c.h"
#include "payload.h"

typedef struct bnf_input {
	const char *path;   /* as given; "-" is stdin */
	const uint8_t *data;
	size_t len;
	bool mapped;        /* data is an mmap of the file */
	bool reserved;      /* data is only address space standing for the file (streaming) */
	bool borrowed;      /* data is the caller's (bnf_input_open_buffer) */
	int fd;             /* the open regular file, else -1 */
	bool streaming;     /* large payloads were left in the file, or in data (see payload.h) */
	bool has_external;  /* some tensor's data is in an external file */
	bnf_payloads payloads;
	Onnx__ModelProto *model;
	bnf_err *fail;      /* where reading records its failure (may be NULL) */
} bnf_input;

/* Read and parse path into in.  External data is located and checked
 * (relative to the model's directory, never outside it).  With stream set,
 * the structure is parsed without the raw_data payloads of BNF_STREAM_MIN
 * bytes or more (bnf_model_scan): they stay in a regular file, or in the
 * bytes read from stdin, a pipe or a device, and in->payloads tracks them,
 * so memory does not grow with the weights beyond the input's own bytes
 * (a model whose payloads cannot be placed so is parsed whole).  On failure records in fail (may be
 * NULL) one line naming the file and returns -1: BNFOLD_E_IO when it is
 * missing, unreadable or a directory (or an external data file is),
 * BNFOLD_E_NOT_ONNX when it is empty or not a well-formed ONNX model,
 * BNFOLD_E_INVALID for external data of a model read from stdin,
 * BNFOLD_E_NOMEM when memory or address space runs out.  A regular file
 * is read through mappings: a program that wants to report it shrinking
 * meanwhile catches SIGBUS. */
int bnf_input_open(const char *path, bnf_input *in, bool stream, bnf_err *fail);
/* Parse the len bytes at data (a model in memory, the caller's: not
 * copied, never freed, and they must outlive in) into in, named name in
 * messages.  With stream set, as bnf_input_open does with stdin: the large
 * payloads stay in data, read in place; else parsed whole.  External data
 * is not looked for: a tensor that names some keeps its fields.  -1 after
 * recording in fail (may be NULL) one line naming name: BNFOLD_E_NOT_ONNX
 * (the line bnf_model_parse records for the same bytes), BNFOLD_E_NOMEM. */
int bnf_input_open_buffer(const char *name, const void *data, size_t len, bool stream, bnf_input *in,
			  bnf_err *fail);
void bnf_input_close(bnf_input *in);

#endif
