/* The report of one run (--report FILE): one JSON document for any number
 * of inputs (schema: src/lib/report.schema.json; docs/report.md):
 *
 *   {"tool": {...}, "job": "fold", "options": {...},
 *    "inputs": [ENTRY, ...], "totals": {...}}
 *
 * An ENTRY is the library's object for one input (bnfold_result_json), or
 * {"input", "error"} for an input that failed before it had a result.  An
 * input whose fusion failed verification keeps its object, with an "error"
 * of exit 4 and a null output.  The totals are computed from the entries
 * when the text is made, so they always add up. */
#ifndef BNF_CLI_REPORT_DOC_H
#define BNF_CLI_REPORT_DOC_H

#include "bnfold.h"

typedef struct cli_report cli_report;

/* A new document for a run of job ("fold", "check" or "list") with the
 * library options opt.  NULL when memory runs out. */
cli_report *cli_report_new(const char *job, const bnfold_options *opt);

/* Add an input's entry.  res may be NULL (the input failed before any
 * result: the entry is {"input", "error"}).  code is NULL for an input
 * that went well, else a bnfold_status_name() or "refused", with the exit
 * status it calls for (1 or 4) and the error line (without "bnfold: error:
 * ").  Strings may hold any bytes: what is not UTF-8 becomes U+FFFD.
 * -1 when memory runs out (the document then fails as a whole). */
int cli_report_add(cli_report *d, const char *input, bnfold_result *res, const char *code, int exit_status,
		   const char *message);

/* The document as a malloc'd text ending in a newline, or NULL when memory
 * ran out at any point. */
char *cli_report_text(cli_report *d);

/* NULL is fine. */
void cli_report_free(cli_report *d);

#endif
