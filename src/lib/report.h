/* The JSON report (schema: src/report.schema.json).  The only cJSON user. */
#ifndef BNF_REPORT_H
#define BNF_REPORT_H

#include "edit.h"
#include "result.h"

/* The report as a malloc'd JSON text, or NULL after bnf_error(). output is
 * NULL when no model is written. */
char *bnf_report_json(const bnf_result *r, const char *input, const char *output,
		      const bnf_fold_options *opt);

#endif
