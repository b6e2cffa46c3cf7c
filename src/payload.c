#include "payload.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

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

int bnf_payloads_init(bnf_payloads *pl, bnf_source *src)
{
	memset(pl, 0, sizeof(*pl));
	pl->src = src;
	/* Address space only: tokens are compared, never dereferenced. */
	pl->arena = mmap(NULL, TOKEN_SPACE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (pl->arena == MAP_FAILED) {
		pl->arena = NULL;
		return bnf_error("cannot reserve address space for computed payloads");
	}
	pl->cap = TOKEN_SPACE;
	pl->allocator.alloc = pl_alloc;
	pl->allocator.free = pl_free;
	pl->allocator.allocator_data = pl;
	return 0;
}

void bnf_payloads_free(bnf_payloads *pl)
{
	for (size_t i = 0; i < pl->n; i++) {
		free(pl->lazy[i]->scale);
		free(pl->lazy[i]);
	}
	free(pl->lazy);
	if (pl->arena)
		munmap(pl->arena, pl->cap);
	memset(pl, 0, sizeof(*pl));
}

uint8_t *bnf_payloads_add(bnf_payloads *pl, const bnf_tview *src, const bnf_transform *tf, size_t len)
{
	bnf_lazy *lz, **v;
	size_t ch = tf->layout.channels;

	if (pl->n >= pl->cap) {
		bnf_error("more than %zu folded tensors in one model", pl->cap);
		return NULL;
	}
	lz = calloc(1, sizeof(*lz));
	v = realloc(pl->lazy, (pl->n + 1) * sizeof(*v));
	if (v)
		pl->lazy = v;
	if (!lz || !v || !(lz->scale = malloc((ch ? ch : 1) * sizeof(double)))) {
		free(lz);
		bnf_error("out of memory");
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
	return pl->src && p >= pl->src->base && p < pl->src->base + pl->src->len;
}

void bnf_lazy_read(const bnf_lazy *lz, size_t first, size_t n, double *out)
{
	bnf_tview_read_range(&lz->src, first, n, out);
	for (size_t i = 0; i < n; i++)
		out[i] = bnf_round_to(lz->tf.dtype, out[i] * lz->scale[bnf_layout_channel(&lz->tf.layout, first + i)]);
}
