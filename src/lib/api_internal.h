/* What the public API's files share: the result behind bnfold_result and
 * the last steps of every entry point. */
#ifndef BNF_API_INTERNAL_H
#define BNF_API_INTERNAL_H

#include "bnfold.h"
#include "common.h"
#include "onnx.pb-c.h"
#include "result.h"

/* A new public result that takes over res (left empty) and keeps the
 * names of the input and output (output may be NULL); each fusion and
 * skip gets its place among order (bnf_result_set_order).  NULL when
 * memory runs out. */
bnfold_result *bnf_api_result_new(bnf_result *res, const bnf_strlist *order, const char *input, const char *output);

/* Record in e that a fusion of res failed its check, naming the one
 * furthest over its tolerance; returns -1. */
int bnf_api_verify_error(const bnf_result *res, const char *input, bnf_err *e);

/* Copy e into err (may be NULL) and return its code; on an error other
 * than BNFOLD_E_VERIFY the result is freed and *result set to NULL. */
bnfold_status bnf_api_finish(const bnf_err *e, bnfold_result **result, bnfold_error *err);

#endif
