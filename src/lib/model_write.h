/* Writing a model: protobuf-c packs it straight into the output's buffer,
 * and each payload on the way is copied from the file it was left in,
 * computed chunk by chunk (a folded weight), or written from memory.
 * Weights read from external data go to a data file beside the output. */
#ifndef BNF_MODEL_WRITE_H
#define BNF_MODEL_WRITE_H

#include <stdbool.h>

#include "model_read.h"
#include "onnx.pb-c.h"
#include "outfile.h"
#include "payload.h"

/* Serialize the model into out (protobuf wire format); payloads left in the
 * input file are copied from it, computed ones computed now.  Tensors read
 * from external data go to OUTPUT.data beside a regular output file
 * (out->data, committed with it), unless inline_all puts everything in the
 * model.  Edits the model's external-data fields.  When a computed payload
 * comes out NaN or Inf, out->nonfinite is set (the write then fails at
 * commit).  -1 after recording the failure in out->fail: BNFOLD_E_INVALID
 * when the output cannot take the external data (not a regular file, or
 * it would replace a data file the input reads; inlined, past 2 GB),
 * BNFOLD_E_IO when the data file cannot be opened, BNFOLD_E_NOMEM. */
int bnf_output_write_model(bnf_output *out, Onnx__ModelProto *m, const bnf_payloads *pl, bool inline_all);

/* Copy the input, byte for byte.  -1 when its weights live in external
 * data files (BNFOLD_E_INVALID, recorded in out->fail). */
int bnf_output_write_input(bnf_output *out, const bnf_input *in);

#endif
