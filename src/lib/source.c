#include "source.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common.h"
#include "fileio.h"

bnf_source *bnf_source_open(int fd, size_t len, const char *path, bool external, bnf_err *fail)
{
	bnf_source *s = calloc(1, sizeof(*s));

	if (!s || !(s->path = bnf_strdup(path))) {
		free(s);
		close(fd);
		bnf_fail(fail, BNFOLD_E_NOMEM, "%s: out of memory", path);
		return NULL;
	}
	s->fd = fd;
	s->len = len;
	s->external = external;
	if (len) {
		/* Address space only: offsets into it stand for file offsets. */
		void *base = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (base == MAP_FAILED) {
			bnf_fail(fail, BNFOLD_E_NOMEM, "%s: cannot reserve address space: %s", path, strerror(errno));
			close(fd);
			free(s->path);
			free(s);
			return NULL;
		}
		s->base = base;
	}
	return s;
}

bnf_source *bnf_source_memory(const void *data, size_t len, const char *name, bnf_err *fail)
{
	bnf_source *s = calloc(1, sizeof(*s));

	if (!s || !(s->path = bnf_strdup(name))) {
		free(s);
		bnf_fail(fail, BNFOLD_E_NOMEM, "%s: out of memory", name);
		return NULL;
	}
	s->fd = -1;
	s->base = data;
	s->len = len;
	s->in_memory = true;
	return s;
}

void bnf_source_close(bnf_source *src)
{
	if (!src)
		return;
	if (src->base && src->len && !src->in_memory)
		munmap((void *)src->base, src->len);
	if (src->fd >= 0)
		close(src->fd);
	free(src->path);
	free(src);
}

int bnf_source_read(bnf_source *src, void *dst, size_t len, uint64_t off)
{
	size_t got = 0;

	if (src->in_memory && len <= src->len && off <= src->len - len) {
		memcpy(dst, src->base + off, len);
		return 0;
	}
	if (src->in_memory)
		errno = EIO; /* past the end: as a file that ends first */
	else if (bnf_pread_in_full(src->fd, dst, len, off, &got) == 0)
		return 0;
	if (!src->err)
		src->err = errno;
	memset((uint8_t *)dst + got, 0, len - got);
	return -1;
}

/* Bytes mapped at a time: small enough to keep the process small, large
 * enough that mapping costs less than copying. */
#define WINDOW ((size_t)4 << 20)

const uint8_t *bnf_window_map(bnf_window *w, bnf_source *src, uint64_t off, size_t len)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	uint64_t start, end;
	void *p;

	/* inside the window (written so that no sum can wrap) */
	if (w->p && w->src == src && off >= w->off && len <= w->len && off - w->off <= w->len - len)
		return w->p + (off - w->off);
	if (src->in_memory)
		return len <= src->len && off <= src->len - len ? src->base + off : NULL;
	if (src->fd < 0 || len > src->len || off > src->len - len)
		return NULL;
	bnf_window_drop(w);
	start = off - off % page;
	end = off + len - start > WINDOW ? off + len : start + WINDOW;
	if (end > src->len)
		end = src->len;
	p = mmap(NULL, (size_t)(end - start), PROT_READ, MAP_SHARED, src->fd, (off_t)start);
	if (p == MAP_FAILED)
		return NULL;
	w->src = src;
	w->p = p;
	w->off = start;
	w->len = (size_t)(end - start);
	return w->p + (off - start);
}

void bnf_window_drop(bnf_window *w)
{
	if (w->p)
		munmap((void *)w->p, w->len);
	memset(w, 0, sizeof(*w));
}
