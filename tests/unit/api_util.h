/* Files and folders for the tests of the public API (test_api.c,
 * test_api_threads.c): small helpers over libc, so those tests include
 * bnfold.h and nothing else of the library. */
#ifndef BNF_API_UTIL_H
#define BNF_API_UTIL_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

#endif
