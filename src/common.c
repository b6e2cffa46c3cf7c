#include "common.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int bnf_display_level = 1;

static void vmessage(const char *prefix, const char *fmt, va_list ap)
{
	fputs(prefix, stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

int bnf_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vmessage("bnfold: error: ", fmt, ap);
	va_end(ap);
	return -1;
}

void bnf_warn(const char *fmt, ...)
{
	va_list ap;
	if (bnf_display_level < 1)
		return;
	va_start(ap, fmt);
	vmessage("bnfold: warning: ", fmt, ap);
	va_end(ap);
}

void bnf_info(int level, const char *fmt, ...)
{
	va_list ap;
	if (bnf_display_level < level)
		return;
	va_start(ap, fmt);
	vmessage("", fmt, ap);
	va_end(ap);
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
