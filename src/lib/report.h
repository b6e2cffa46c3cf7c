/* One input's entry of the JSON report (schema: src/lib/report.schema.json,
 * definitions/input), made from the result alone.  The library's only cJSON
 * user; the program wraps the entries of its inputs in one document. */
#ifndef BNF_REPORT_H
#define BNF_REPORT_H

#include "result.h"

/* The entry of r as a malloc'd JSON text, or NULL when memory runs out.
 * output is NULL when no model is written. */
char *bnf_report_json(const bnf_result *r, const char *input, const char *output);

#endif
