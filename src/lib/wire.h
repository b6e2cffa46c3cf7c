/* The protobuf wire format read field by field: one cursor for every walk
 * over a model's bytes, held in memory or read from its file a window at a
 * time.  Every length is checked against the end of the message around it
 * (lengths come from the file, so none is trusted), nesting is limited,
 * and a failure leaves one reason and the offset of the field it was in. */
#ifndef BNF_WIRE_H
#define BNF_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bnf_err;

/* Deepest nesting of protobuf messages accepted (as protobuf's own
 * default recursion limit): ModelProto, GraphProto, NodeProto,
 * AttributeProto, GraphProto, ... so about 30 levels of subgraphs. */
#define BNF_MAX_NESTING 100

/* Wire types ONNX uses; groups (3, 4) are not, 6 and 7 do not exist. */
enum { BNF_WIRE_VARINT = 0, BNF_WIRE_FIXED64 = 1, BNF_WIRE_LEN = 2, BNF_WIRE_FIXED32 = 5 };

/* Bytes [win_off, win_off + win_len) of the data are at win: all of it for
 * a buffer, a window of buf refilled with pread for a file. */
typedef struct bnf_wire {
	const uint8_t *win;
	uint64_t win_off;
	size_t win_len;
	uint64_t pos;      /* offset of the next byte to read */
	int fd;            /* the file read from, or -1 for a buffer */
	uint64_t size;     /* bytes in the data */
	uint8_t *buf;      /* the window's memory, for a file */
	/* After a failure: */
	uint64_t at;       /* offset of the field being read */
	const char *why;   /* what was wrong, for the error line */
	int err;           /* errno of a failed read, else 0 */
	bool too_deep;     /* nested more than BNF_MAX_NESTING deep */
} bnf_wire;

/* One field's header, read by bnf_wire_next. */
typedef struct bnf_wire_field {
	uint64_t tag;      /* number << 3 | type, as read */
	uint32_t number;   /* 1 .. 2^29 - 1 */
	int type;          /* one of BNF_WIRE_* */
	uint64_t value;    /* VARINT: the number; LEN: the length; FIXED64/32: 8 or 4 */
} bnf_wire_field;

/* A cursor over len bytes at data. */
void bnf_wire_init_buffer(bnf_wire *w, const uint8_t *data, size_t len);
/* A cursor over the size bytes of the open file fd, read through a window
 * of 64 KiB (memory does not grow with the file).  0, or -1 when memory
 * runs out.  Free with bnf_wire_free. */
int bnf_wire_init_file(bnf_wire *w, int fd, uint64_t size);
void bnf_wire_free(bnf_wire *w);

/* Read the header of the field at w->pos inside a message ending at end:
 * its tag, then the value of a VARINT or the length of a LEN field.  The
 * cursor is left at the field's contents (after the value of a VARINT),
 * which lie before end.  0, or -1 with the reason in w (bnf_wire_error). */
int bnf_wire_next(bnf_wire *w, uint64_t end, bnf_wire_field *f);

/* Up to n (> 0) of the next bytes, at least one: their address, their
 * count in *got, and the cursor moved past them.  A buffer gives all n at
 * once.  NULL, the reason in w, when the data ends or a read fails. */
const uint8_t *bnf_wire_take(bnf_wire *w, uint64_t n, size_t *got);

/* Move past n bytes without reading them. */
static inline void bnf_wire_skip(bnf_wire *w, uint64_t n)
{
	w->pos += n;
}

/* Before reading a sub-message at depth (the outermost message is 1): 0,
 * or -1 with w->too_deep set when that is deeper than BNF_MAX_NESTING. */
int bnf_wire_enter(bnf_wire *w, int depth);

/* Record why (a string that outlives w) as the reason; returns -1. */
int bnf_wire_fail(bnf_wire *w, const char *why);

/* Record in e the failure of w as one line naming name: "not an ONNX
 * model (truncated or corrupt: WHY, at byte N)" (BNFOLD_E_NOT_ONNX, or
 * BNFOLD_E_IO when a read failed) or "messages are nested more than 100
 * deep ..." (BNFOLD_E_NOT_ONNX).  Returns -1. */
int bnf_wire_error(const bnf_wire *w, struct bnf_err *e, const char *name);

#endif
