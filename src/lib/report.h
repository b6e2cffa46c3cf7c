/* The JSON report (schema: src/lib/report.schema.json), made from the
 * result alone.  The only cJSON user. */
#ifndef BNF_REPORT_H
#define BNF_REPORT_H

#include "result.h"

/* The report of r as a malloc'd JSON text, or NULL when memory runs out.
 * output is NULL when no model is written. */
char *bnf_report_json(const bnf_result *r, const char *input, const char *output);

#endif
