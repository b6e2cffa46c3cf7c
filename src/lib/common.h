/* Shared helpers: messages and checked arithmetic. */
#ifndef BNF_COMMON_H
#define BNF_COMMON_H

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bnfold.h"

#define BNF_VERSION BNFOLD_VERSION_STRING

/* How far ahead (bytes) a loop streaming over a mapped tensor asks for its
 * cache lines (__builtin_prefetch: a hint, never a fault, also past the
 * end).  The CPU's own prefetcher stops at every 4 KiB page, and the pages
 * of the page cache lie anywhere: a read that runs into a new page waits
 * for memory, unless it was asked for one page earlier. */
#define BNF_PREFETCH_AHEAD 4096

/* Where library code records what went wrong: the first failure of a call
 * (its code, one of bnfold_status, and one line naming the file).  The
 * library never prints: the caller of the public API reads this. */
typedef struct bnf_err {
	int code;        /* 0 while nothing failed */
	char msg[1024];
} bnf_err;

/* Record code and the message in e unless e already holds a failure (the
 * first one is the cause); e may be NULL.  Always returns -1, so callers
 * can write `return bnf_fail(e, BNFOLD_E_IO, ...)`. */
int bnf_fail(bnf_err *e, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int bnf_vfail(bnf_err *e, int code, const char *fmt, va_list ap);

/* Room for one more element in the array *arrp of n elements of elem bytes
 * with *cap allocated: doubles *cap when full.  0, or -1 when memory runs
 * out (the array is left as it was).  Use BNF_GROW(arr, n, cap). */
int bnf_grow(void *arrp, size_t elem, size_t n, size_t *cap);
#define BNF_GROW(arr, n, cap) bnf_grow(&(arr), sizeof(*(arr)), (n), &(cap))

/* pthread_create(t, NULL, fn, arg) with the asynchronous signals (SIGINT,
 * SIGTERM, ...) blocked in the new thread: they go to the caller's threads,
 * whose handlers know what the library told them (bnfold_options.tempfile).
 * Faults (SIGBUS, SIGSEGV, ...) stay with the thread that causes them. */
int bnf_thread_start(pthread_t *t, void *(*fn)(void *), void *arg);

/* A list of owned strings, searchable once sorted. */
typedef struct bnf_strlist {
	char **v;
	size_t n, cap;
} bnf_strlist;

/* Append a copy of s.  0, or -1 when memory runs out. */
int bnf_strlist_add(bnf_strlist *l, const char *s);
/* Sort l for bnf_strlist_has (a linear search per name was quadratic in
 * the number of folds). */
void bnf_strlist_sort(bnf_strlist *l);
/* True when s is in l, sorted by bnf_strlist_sort. */
bool bnf_strlist_has(const bnf_strlist *l, const char *s);
void bnf_strlist_free(bnf_strlist *l);

/* a*b and a+b into *r; false on size_t overflow. */
bool bnf_mul_size(size_t a, size_t b, size_t *r);
bool bnf_add_size(size_t a, size_t b, size_t *r);

/* strdup that returns NULL for NULL. */
char *bnf_strdup(const char *s);
/* printf into a new malloc'd string, NULL on failure. */
char *bnf_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
