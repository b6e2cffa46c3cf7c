/* What the bnfold program says, and how much: errors always, the rest by
 * display level.  The program's only globals: the display level, and the
 * last error line kept for the report. */
#ifndef BNF_CLI_MESSAGES_H
#define BNF_CLI_MESSAGES_H

#include <stdbool.h>
#include <stddef.h>

/* 0 = errors only (-q), 1 = normal, 2 = verbose (-v). */
extern int cli_display_level;

/* "bnfold: error: <msg>" on stderr; always returns -1. */
int cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The <msg> of the last cli_error (at most 4 KiB of it), as it was
 * formatted (control bytes not escaped): what the report records. */
const char *cli_last_error(void);
/* A plain line on stderr, shown when cli_display_level >= level. */
void cli_info(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* strdup that returns NULL for NULL; printf into a new string (NULL when
 * memory runs out). */
char *cli_strdup(const char *s);
char *cli_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* True when a and b name the same existing file. */
bool cli_same_file(const char *a, const char *b);

#endif
