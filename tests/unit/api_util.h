/* Helpers of the tests of the public API (test_api.c, test_api_errors.c,
 * test_api_threads.c): files and folders over libc, and calls and checks
 * over bnfold.h, which is all of the library those tests include. */
#ifndef BNF_API_UTIL_H
#define BNF_API_UTIL_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bnfold.h"
#include "tap.h"

/* The whole file in a new buffer (free it) and its length; NULL when it
 * cannot be read. */
static inline unsigned char *util_read(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	unsigned char *buf = NULL, *nb;
	size_t cap = 0, r;

	*len = 0;
	if (!f)
		return NULL;
	do {
		if (*len == cap) {
			if (!(nb = realloc(buf, cap = cap ? cap * 2 : 65536))) {
				free(buf);
				fclose(f);
				return NULL;
			}
			buf = nb;
		}
		r = fread(buf + *len, 1, cap - *len, f);
		*len += r;
	} while (r > 0);
	if (ferror(f)) {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	return buf;
}

/* Write len bytes to path; 0 or -1. */
static inline int util_write(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");
	int ok = f && fwrite(data, 1, len, f) == len;
	if (f && fclose(f) != 0)
		ok = 0;
	return ok ? 0 : -1;
}

/* True when path's content is exactly len bytes at data. */
static inline int util_same(const char *path, const void *data, size_t len)
{
	size_t n;
	unsigned char *got = util_read(path, &n);
	int same = got && n == len && (len == 0 || memcmp(got, data, len) == 0);
	free(got);
	return same;
}

static inline int util_exists(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0;
}

/* A new empty folder under $TMPDIR (or /tmp), its path in dir. */
static inline int util_mkdtemp(char *dir, size_t size, const char *tag)
{
	const char *base = getenv("TMPDIR");
	snprintf(dir, size, "%s/bnfold-%s-XXXXXX", base && *base ? base : "/tmp", tag);
	return mkdtemp(dir) ? 0 : -1;
}

/* Entries of dir other than . and .. */
static inline int util_count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;
	if (!d)
		return -1;
	while ((e = readdir(d)))
		n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
	closedir(d);
	return n;
}

/* Remove the files of dir (one level), then dir. */
static inline void util_rmdir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char p[4096];
	if (d) {
		while ((e = readdir(d)))
			if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
				snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
				unlink(p);
			}
		closedir(d);
	}
	rmdir(dir);
}

/* ---------------------------------------------------------------- the API */

static inline void path_in(char *buf, size_t size, const char *dir, const char *name)
{
	snprintf(buf, size, "%s/%s", dir, name);
}

/* A message as the header promises: one line, not empty, naming what it
 * is about first ("NAME: ..."). */
static inline int good_message(const bnfold_error *e, const char *name)
{
	size_t n = strlen(e->message);
	return n > 0 && !strchr(e->message, '\n') && e->message[n - 1] != ' ' &&
	       (!name || (strncmp(e->message, name, strlen(name)) == 0 && strncmp(e->message + strlen(name), ": ", 2) == 0));
}

static inline int same_counts(const bnfold_counts *a, const bnfold_counts *b)
{
	return a->bn_found == b->bn_found && a->bn_folded == b->bn_folded && a->affine_folded == b->affine_folded &&
	       a->skipped == b->skipped && a->nodes_before == b->nodes_before && a->nodes_after == b->nodes_after &&
	       a->graph_inputs_removed == b->graph_inputs_removed && a->verified == b->verified &&
	       a->verify_failed == b->verify_failed;
}

struct folded {
	bnfold_status st;
	void *out;
	size_t out_len;
	bnfold_result *r;
	bnfold_counts n;
	bnfold_error e;
};

static inline void fold_buf(const void *in, size_t len, const char *name, const bnfold_options *o, struct folded *f)
{
	memset(f, 0, sizeof(*f));
	f->st = bnfold_fold_buffer(in, len, name, &f->out, &f->out_len, o, &f->r, &f->e);
	bnfold_result_counts(f->r, &f->n);
}

static inline void folded_free(struct folded *f)
{
	bnfold_free(f->out);
	bnfold_result_free(f->r);
}

#endif
