/* Shared helpers: messages and checked arithmetic. */
#ifndef BNF_COMMON_H
#define BNF_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BNF_VERSION "0.1.0"

/* 0 = errors only (-q), 1 = normal, 2 = verbose (-v). The only global. */
extern int bnf_display_level;

/* Print "bnfold: error: <msg>" on stderr; always returns -1 so callers can
 * write `return bnf_error(...)`. */
int bnf_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "bnfold: warning: <msg>", shown unless -q. */
void bnf_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Plain message on stderr shown when bnf_display_level >= level. */
void bnf_info(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* a*b and a+b into *r; false on size_t overflow. */
bool bnf_mul_size(size_t a, size_t b, size_t *r);
bool bnf_add_size(size_t a, size_t b, size_t *r);

/* strdup that returns NULL for NULL. */
char *bnf_strdup(const char *s);
/* printf into a new malloc'd string, NULL on failure. */
char *bnf_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
