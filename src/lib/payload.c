#include "payload.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"

#define TOKEN_SPACE (1u << 20) /* computed payloads one run can have */

static void *pl_alloc(void *data, size_t size)
{
	(void)data;
	return malloc(size);
}

static void pl_free(void *data, void *ptr)
{
	if (!bnf_payloads_borrowed(data, ptr))
		free(ptr);
}

int bnf_payloads_init(bnf_payloads *pl, const char *model_path, bnf_err *fail)
{
	memset(pl, 0, sizeof(*pl));
	pl->fail = fail;
	/* Address space only: tokens are compared, never dereferenced. */
	pl->arena = mmap(NULL, TOKEN_SPACE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (pl->arena == MAP_FAILED) {
		pl->arena = NULL;
		return bnf_fail(fail, BNFOLD_E_NOMEM, "cannot reserve address space for computed payloads");
	}
	pl->cap = TOKEN_SPACE;
	pl->allocator.alloc = pl_alloc;
	pl->allocator.free = pl_free;
	pl->allocator.allocator_data = pl;
	if (model_path && strcmp(model_path, "-") != 0) {
		const char *slash = strrchr(model_path, '/');
		pl->dir = slash ? bnf_asprintf("%.*s", (int)(slash - model_path + (slash == model_path)), model_path)
				: bnf_strdup(".");
		pl->model_path = bnf_strdup(model_path);
		if (!pl->dir || !pl->model_path) {
			bnf_payloads_free(pl);
			return bnf_fail(fail, BNFOLD_E_NOMEM, "out of memory");
		}
	}
	return 0;
}

void bnf_payloads_free(bnf_payloads *pl)
{
	for (size_t i = 0; i < pl->n; i++) {
		free(pl->lazy[i]->scale);
		free(pl->lazy[i]);
	}
	free(pl->lazy);
	for (size_t i = 0; i < pl->n_srcs; i++)
		bnf_source_close(pl->srcs[i]);
	free(pl->srcs);
	free(pl->dir);
	free(pl->model_path);
	if (pl->arena)
		munmap(pl->arena, pl->cap);
	memset(pl, 0, sizeof(*pl));
}

bnf_source *bnf_payloads_add_source(bnf_payloads *pl, int fd, size_t len, const char *path, bool external)
{
	bnf_source *s;

	if (BNF_GROW(pl->srcs, pl->n_srcs, pl->srcs_cap) < 0) {
		close(fd);
		bnf_fail(pl->fail, BNFOLD_E_NOMEM, "%s: out of memory", path);
		return NULL;
	}
	if (!(s = bnf_source_open(fd, len, path, external, pl->fail)))
		return NULL;
	pl->srcs[pl->n_srcs++] = s;
	return s;
}

bnf_source *bnf_payloads_add_memory(bnf_payloads *pl, const void *data, size_t len, const char *name)
{
	bnf_source *s;

	if (BNF_GROW(pl->srcs, pl->n_srcs, pl->srcs_cap) < 0) {
		bnf_fail(pl->fail, BNFOLD_E_NOMEM, "%s: out of memory", name);
		return NULL;
	}
	if (!(s = bnf_source_memory(data, len, name, pl->fail)))
		return NULL;
	pl->srcs[pl->n_srcs++] = s;
	return s;
}

bnf_source *bnf_payloads_source_of(const bnf_payloads *pl, const void *ptr)
{
	const uint8_t *p = ptr;
	for (size_t i = 0; pl && p && i < pl->n_srcs; i++) {
		const bnf_source *s = pl->srcs[i];
		if (s->base && p >= s->base && p < s->base + s->len)
			return pl->srcs[i];
	}
	return NULL;
}

bnf_source *bnf_payloads_external(bnf_payloads *pl, const char *location, char *err, size_t errlen)
{
	char *path = NULL, *real = NULL, *realdir = NULL;
	bnf_source *src = NULL;
	struct stat st;
	int fd = -1;

	for (size_t i = 0; i < pl->n_srcs; i++)
		if (pl->srcs[i]->external && strcmp(pl->srcs[i]->path + strlen(pl->dir) + 1, location) == 0)
			return pl->srcs[i];
	if (!pl->dir) {
		snprintf(err, errlen, "external data '%s' cannot be located for a model read from stdin", location);
		return NULL;
	}
	if (!location[0] || location[0] == '/') {
		snprintf(err, errlen, "external data location '%s' is %s", location, location[0] ? "absolute" : "empty");
		return NULL;
	}
	for (const char *c = location; *c; c = strchr(c, '/') ? strchr(c, '/') + 1 : c + strlen(c)) {
		if (strncmp(c, "..", 2) == 0 && (c[2] == '/' || c[2] == '\0')) {
			snprintf(err, errlen, "external data location '%s' leaves the model's directory", location);
			return NULL;
		}
	}
	if (!(path = bnf_asprintf("%s/%s", pl->dir, location))) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (!(real = realpath(path, NULL))) {
		snprintf(err, errlen, "external data '%s': %s", location, strerror(errno));
		goto out;
	}
	if (!(realdir = realpath(pl->dir, NULL))) {
		snprintf(err, errlen, "the model's directory '%s': %s", pl->dir, strerror(errno));
		goto out;
	}
	if (strncmp(real, realdir, strlen(realdir)) != 0 || real[strlen(realdir)] != '/') {
		snprintf(err, errlen, "external data '%s' resolves outside the model's directory", location);
		goto out;
	}
	if ((fd = open(real, O_RDONLY | O_CLOEXEC)) < 0 || fstat(fd, &st) < 0) {
		snprintf(err, errlen, "external data '%s': %s", location, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "external data '%s' is not a regular file", location);
		goto out;
	}
	src = bnf_payloads_add_source(pl, fd, (size_t)st.st_size, path, true);
	fd = -1;
	if (!src)
		snprintf(err, errlen, "cannot open external data '%s'", location);
out:
	if (fd >= 0)
		close(fd);
	free(path);
	free(real);
	free(realdir);
	return src;
}

uint8_t *bnf_payloads_add(bnf_payloads *pl, const bnf_tview *src, const bnf_transform *tf, size_t len)
{
	bnf_lazy *lz;
	size_t ch = tf->layout.channels;

	if (pl->n >= pl->cap) {
		bnf_fail(pl->fail, BNFOLD_E_NOT_ONNX, "more than %zu folded tensors in one model", pl->cap);
		return NULL;
	}
	lz = calloc(1, sizeof(*lz));
	if (!lz || BNF_GROW(pl->lazy, pl->n, pl->lazy_cap) < 0 || !(lz->scale = malloc((ch ? ch : 1) * sizeof(double)))) {
		free(lz);
		bnf_fail(pl->fail, BNFOLD_E_NOMEM, "out of memory");
		return NULL;
	}
	memcpy(lz->scale, tf->scale, ch * sizeof(double));
	lz->src = *src;
	lz->tf = *tf;
	lz->tf.scale = lz->scale;
	lz->len = len;
	pl->lazy[pl->n] = lz;
	return pl->arena + pl->n++;
}

const bnf_lazy *bnf_payloads_lazy(const bnf_payloads *pl, const void *ptr)
{
	const uint8_t *p = ptr;
	if (!pl || !pl->arena || p < pl->arena || p >= pl->arena + pl->n)
		return NULL;
	return pl->lazy[p - pl->arena];
}

bool bnf_payloads_borrowed(const bnf_payloads *pl, const void *ptr)
{
	const uint8_t *p = ptr;
	if (!pl || !p)
		return false;
	if (pl->arena && p >= pl->arena && p < pl->arena + pl->cap)
		return true;
	return bnf_payloads_source_of(pl, ptr) != NULL;
}

bool bnf_payloads_from_external(const bnf_payloads *pl, const void *ptr)
{
	const bnf_lazy *lz = bnf_payloads_lazy(pl, ptr);
	const bnf_source *s;
	if (lz)
		return lz->src.lazy ? bnf_payloads_from_external(pl, lz->src.raw)
				    : lz->src.src && lz->src.src->external;
	s = bnf_payloads_source_of(pl, ptr);
	return s && s->external;
}

uint64_t bnf_payloads_external_bytes(const bnf_payloads *pl)
{
	uint64_t n = 0;
	for (size_t i = 0; i < pl->n_srcs; i++)
		if (pl->srcs[i]->external)
			n += pl->srcs[i]->len;
	return n;
}

void bnf_tview_bind(bnf_tview *v, const bnf_payloads *pl)
{
	bnf_source *src;
	if (!v->raw || !pl)
		return;
	if ((v->lazy = bnf_payloads_lazy(pl, v->raw)))
		return;
	if (!(src = bnf_payloads_source_of(pl, v->raw)))
		return;
	v->src = src;
	v->src_off = (uint64_t)(v->raw - src->base);
}
