#include "wire.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "fileio.h"

#define WINDOW ((size_t)1 << 16)

void bnf_wire_init_buffer(bnf_wire *w, const uint8_t *data, size_t len)
{
	memset(w, 0, sizeof(*w));
	w->win = data;
	w->win_len = len;
	w->size = len;
	w->fd = -1;
}

int bnf_wire_init_file(bnf_wire *w, int fd, uint64_t size)
{
	memset(w, 0, sizeof(*w));
	w->fd = fd;
	w->size = size;
	if (!(w->buf = malloc(WINDOW)))
		return -1;
	w->win = w->buf;
	return 0;
}

void bnf_wire_free(bnf_wire *w)
{
	free(w->buf);
	w->buf = NULL;
	w->win = NULL;
}

/* Move the window to start at pos: 0, or -1 at the end of the data or on
 * a read error (w->err). */
static int refill(bnf_wire *w)
{
	size_t have;
	if (w->fd < 0 || w->pos >= w->size)
		return -1;
	have = w->size - w->pos < WINDOW ? (size_t)(w->size - w->pos) : WINDOW;
	w->win_off = w->pos;
	w->win_len = 0;
	if (bnf_pread_in_full(w->fd, w->buf, have, w->pos, NULL) < 0) {
		w->err = errno;
		return -1;
	}
	w->win_len = have;
	return 0;
}

/* w->pos is past the window (it only moves forward from the window's start). */
static inline bool past_window(const bnf_wire *w)
{
	return w->pos - w->win_off >= w->win_len;
}

static int read_varint(bnf_wire *w, uint64_t end, uint64_t *v)
{
	uint64_t x = 0;
	for (int shift = 0; shift < 64; shift += 7) {
		uint8_t b;
		if (w->pos >= end || (past_window(w) && refill(w) < 0))
			return -1;
		b = w->win[w->pos++ - w->win_off];
		x |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*v = x;
			return 0;
		}
	}
	return -1; /* more than 10 bytes */
}

int bnf_wire_next(bnf_wire *w, uint64_t end, bnf_wire_field *f)
{
	w->at = w->pos;
	if (read_varint(w, end, &f->tag) < 0)
		return bnf_wire_fail(w, "a field tag is cut off");
	/* Field numbers run from 1 to 2^29 - 1.  protobuf-c takes a number 0
	 * spelt in two bytes as an unknown field, then writes it in one byte,
	 * which it rejects: the output would not parse. */
	if ((f->tag >> 3) == 0 || (f->tag >> 3) > 0x1fffffff)
		return bnf_wire_fail(w, "a field number is 0 or above 2^29 - 1");
	f->number = (uint32_t)(f->tag >> 3);
	f->type = (int)(f->tag & 7);
	switch (f->type) {
	case BNF_WIRE_VARINT:
		if (read_varint(w, end, &f->value) < 0)
			return bnf_wire_fail(w, "a number is cut off");
		return 0;
	case BNF_WIRE_FIXED64:
	case BNF_WIRE_FIXED32:
		f->value = f->type == BNF_WIRE_FIXED64 ? 8 : 4;
		if (end - w->pos < f->value)
			return bnf_wire_fail(w, "a fixed-size field runs past the end of its message");
		return 0;
	case BNF_WIRE_LEN:
		if (read_varint(w, end, &f->value) < 0)
			return bnf_wire_fail(w, "a length is cut off");
		if (f->value > end - w->pos)
			return bnf_wire_fail(w, "a length runs past the end of its message");
		return 0;
	default:
		return bnf_wire_fail(w, "a field has a wire type protobuf does not use any more");
	}
}

const uint8_t *bnf_wire_take(bnf_wire *w, uint64_t n, size_t *got)
{
	const uint8_t *p;
	size_t have;
	if (past_window(w) && refill(w) < 0) {
		bnf_wire_fail(w, "the data ends inside a field");
		return NULL;
	}
	p = w->win + (w->pos - w->win_off);
	have = w->win_len - (size_t)(w->pos - w->win_off);
	*got = n < have ? (size_t)n : have;
	w->pos += *got;
	return p;
}

int bnf_wire_enter(bnf_wire *w, int depth)
{
	if (depth <= BNF_MAX_NESTING)
		return 0;
	w->too_deep = true;
	return bnf_wire_fail(w, "too deep");
}

int bnf_wire_fail(bnf_wire *w, const char *why)
{
	w->why = why;
	return -1;
}

int bnf_wire_error(const bnf_wire *w, bnf_err *e, const char *name)
{
	if (w->too_deep)
		return bnf_fail(e, BNFOLD_E_NOT_ONNX,
				"%s: messages are nested more than %d deep (at byte %llu); subgraphs this deep are not "
				"supported", name, BNF_MAX_NESTING, (unsigned long long)w->at);
	return bnf_fail(e, w->err ? BNFOLD_E_IO : BNFOLD_E_NOT_ONNX,
			"%s: not an ONNX model (truncated or corrupt: %s, at byte %llu)", name,
			w->err ? strerror(w->err) : w->why, (unsigned long long)w->at);
}
