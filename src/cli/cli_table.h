/* The tables bnfold prints, from a result of the library. */
#ifndef BNF_CLI_TABLE_H
#define BNF_CLI_TABLE_H

#include <stdbool.h>

#include "bnfold.h"

/* The --list table on stdout: one row per BatchNormalization, and per
 * Mul/Add next to a layer, folded or not, in model order, with columns
 * LAYER, NODE, PATTERN, CHANNELS, DTYPE, ACTION, REASON (and DETAILS at
 * display level 2); headed by "input:" when heading.  0, or -1 after an
 * error naming input (out of memory). */
int cli_list_table(const bnfold_result *r, const char *input, bool heading);

/* The op types of the model before and after folding, one row each, then
 * the sizes of the files (model and external data) read and written, on
 * stderr when the display level is at least level.  written: the sizes
 * after are known (a model was written); else they show as "-". */
void cli_stats_table(const bnfold_result *r, const char *input, int level, bool written);

#endif
