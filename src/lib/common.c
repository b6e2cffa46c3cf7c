#include "common.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int bnf_vfail(bnf_err *e, int code, const char *fmt, va_list ap)
{
	if (e && !e->code) {
		e->code = code;
		vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	}
	return -1;
}

int bnf_fail(bnf_err *e, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	bnf_vfail(e, code, fmt, ap);
	va_end(ap);
	return -1;
}

int bnf_grow(void *arrp, size_t elem, size_t n, size_t *cap)
{
	void **arr = arrp, *p;
	size_t want, bytes;
	if (n < *cap)
		return 0;
	want = *cap ? *cap : 4;
	while (want <= n) {
		if (want > SIZE_MAX / 2)
			return -1;
		want *= 2;
	}
	if (!bnf_mul_size(want, elem, &bytes) || !(p = realloc(*arr, bytes)))
		return -1;
	*arr = p;
	*cap = want;
	return 0;
}

bool bnf_mul_size(size_t a, size_t b, size_t *r)
{
	if (a != 0 && b > SIZE_MAX / a)
		return false;
	*r = a * b;
	return true;
}

bool bnf_add_size(size_t a, size_t b, size_t *r)
{
	if (b > SIZE_MAX - a)
		return false;
	*r = a + b;
	return true;
}

char *bnf_strdup(const char *s)
{
	size_t n;
	char *p;
	if (!s)
		return NULL;
	n = strlen(s) + 1;
	p = malloc(n);
	if (p)
		memcpy(p, s, n);
	return p;
}

char *bnf_asprintf(const char *fmt, ...)
{
	va_list ap;
	int n;
	char *p;
	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return NULL;
	p = malloc((size_t)n + 1);
	if (!p)
		return NULL;
	va_start(ap, fmt);
	vsnprintf(p, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return p;
}

int bnf_strlist_add(bnf_strlist *l, const char *s)
{
	char *copy;
	if (BNF_GROW(l->v, l->n, l->cap) < 0 || !(copy = bnf_strdup(s)))
		return -1;
	l->v[l->n++] = copy;
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void bnf_strlist_sort(bnf_strlist *l)
{
	if (l->n > 1)
		qsort(l->v, l->n, sizeof(*l->v), cmp_str);
}

bool bnf_strlist_has(const bnf_strlist *l, const char *s)
{
	return l->n > 0 && bsearch(&s, l->v, l->n, sizeof(*l->v), cmp_str) != NULL;
}

void bnf_strlist_free(bnf_strlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	memset(l, 0, sizeof(*l));
}

int bnf_thread_start(pthread_t *t, void *(*fn)(void *), void *arg)
{
	static const int faults[] = {SIGBUS, SIGSEGV, SIGFPE, SIGILL, SIGTRAP, SIGSYS, SIGABRT};
	sigset_t mask, old;
	int rc;

	sigfillset(&mask);
	for (size_t i = 0; i < sizeof(faults) / sizeof(faults[0]); i++)
		sigdelset(&mask, faults[i]);
	pthread_sigmask(SIG_SETMASK, &mask, &old);
	rc = pthread_create(t, NULL, fn, arg);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return rc;
}
