/* From bytes to a model (model_parse.h): the framing check, the streaming
 * scan, and the walk over every TensorProto. */
#include "model_parse.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "fileio.h"
#include "wire.h"

/* protobuf-c's structs take about 1-10 times the bytes of a real model, and
 * up to ~130 times for a file of empty records: refuse above this. */
#define BNF_UNPACK_RATIO 32
#define BNF_UNPACK_SLACK ((size_t)256 << 20)

/* ---- the structure scan: the model without its large payloads ---- */

/* Message types on the way from ModelProto to every TensorProto. */
enum { M_OTHER, M_MODEL, M_GRAPH, M_NODE, M_ATTR, M_TENSOR, M_SPARSE, M_TRAINING, M_FUNCTION };

#define PLACEHOLDER 16 /* magic (8) + payload index (8) */

/* The message type of field `field` inside a message of type `type`. */
static int child_type(int type, uint32_t field)
{
	switch (type) {
	case M_MODEL: return field == 7 ? M_GRAPH : field == 20 ? M_TRAINING : field == 25 ? M_FUNCTION : M_OTHER;
	case M_GRAPH: return field == 1 ? M_NODE : field == 5 ? M_TENSOR : field == 15 ? M_SPARSE : M_OTHER;
	case M_NODE: return field == 5 ? M_ATTR : M_OTHER;
	case M_ATTR:
		return field == 5 || field == 10 ? M_TENSOR : field == 6 || field == 11 ? M_GRAPH
		       : field == 22 || field == 23 ? M_SPARSE : M_OTHER;
	case M_SPARSE: return field == 1 || field == 2 ? M_TENSOR : M_OTHER;
	case M_TRAINING: return field == 1 || field == 2 ? M_GRAPH : M_OTHER;
	case M_FUNCTION: return field == 7 ? M_NODE : M_OTHER;
	default: return M_OTHER;
	}
}

typedef struct growbuf {
	uint8_t *p;
	size_t len, cap;
} growbuf;

static int gb_put(growbuf *b, const void *data, size_t n)
{
	size_t last;
	if (n == 0)
		return 0;
	if (!bnf_add_size(b->len, n - 1, &last) || BNF_GROW(b->p, last, b->cap) < 0)
		return -1;
	memcpy(b->p + b->len, data, n);
	b->len += n;
	return 0;
}

static int gb_varint(growbuf *b, uint64_t v)
{
	uint8_t tmp[10];
	size_t n = 0;
	do {
		tmp[n] = (uint8_t)(v & 0x7f);
		v >>= 7;
		if (v)
			tmp[n] |= 0x80;
		n++;
	} while (v);
	return gb_put(b, tmp, n);
}

typedef struct payload_span {
	uint64_t off, len;
} payload_span;

typedef struct scanner {
	bnf_wire *w;     /* over the input */
	uint8_t magic[8];
	payload_span *spans;
	size_t n_spans, cap_spans;
	bool oom;
} scanner;

static int scan_oom(scanner *s)
{
	s->oom = true;
	return -1;
}

/* Append the next n bytes of the input to out. */
static int scan_copy(scanner *s, uint64_t n, growbuf *out)
{
	while (n > 0) {
		size_t k;
		const uint8_t *p = bnf_wire_take(s->w, n, &k);
		if (!p)
			return -1;
		if (gb_put(out, p, k) < 0)
			return scan_oom(s);
		n -= k;
	}
	return 0;
}

/* Leave the payload of n bytes at the cursor where it is: out gets a
 * placeholder (the magic and the payload's index) in its place. */
static int scan_placeholder(scanner *s, uint64_t n, growbuf *out)
{
	uint8_t idx[8];
	if (BNF_GROW(s->spans, s->n_spans, s->cap_spans) < 0)
		return scan_oom(s);
	s->spans[s->n_spans] = (payload_span){s->w->pos, n};
	for (int i = 0; i < 8; i++)
		idx[i] = (uint8_t)((uint64_t)s->n_spans >> (8 * i));
	s->n_spans++;
	if (gb_varint(out, PLACEHOLDER) < 0 || gb_put(out, s->magic, 8) < 0 || gb_put(out, idx, 8) < 0)
		return scan_oom(s);
	bnf_wire_skip(s->w, n);
	return 0;
}

static int scan_msg(scanner *s, uint64_t end, int type, int depth, growbuf *out);

/* The contents of a length-delimited field f inside a message of type. */
static int scan_len(scanner *s, const bnf_wire_field *f, int type, int depth, growbuf *out)
{
	int child = child_type(type, f->number);
	if (type == M_TENSOR && f->number == 9 && f->value >= BNF_STREAM_MIN)
		return scan_placeholder(s, f->value, out);
	if (child != M_OTHER) {
		/* The sub-message shrinks: scan it, then write its new length. */
		growbuf sub = {0};
		int rc;
		if (bnf_wire_enter(s->w, depth + 1) < 0)
			return -1;
		rc = scan_msg(s, s->w->pos + f->value, child, depth + 1, &sub);
		if (rc == 0 && (gb_varint(out, sub.len) < 0 || gb_put(out, sub.p, sub.len) < 0))
			rc = scan_oom(s);
		free(sub.p);
		return rc;
	}
	if (gb_varint(out, f->value) < 0)
		return scan_oom(s);
	return scan_copy(s, f->value, out);
}

/* Copy the message from the cursor up to `end`, of `type`, into out,
 * replacing every raw_data of a TensorProto of BNF_STREAM_MIN bytes or
 * more by a placeholder and skipping its bytes. */
static int scan_msg(scanner *s, uint64_t end, int type, int depth, growbuf *out)
{
	while (s->w->pos < end) {
		bnf_wire_field f;
		if (bnf_wire_next(s->w, end, &f) < 0)
			return -1;
		if (gb_varint(out, f.tag) < 0)
			return scan_oom(s);
		switch (f.type) {
		case BNF_WIRE_VARINT:
			if (gb_varint(out, f.value) < 0)
				return scan_oom(s);
			break;
		case BNF_WIRE_LEN:
			if (scan_len(s, &f, type, depth, out) < 0)
				return -1;
			break;
		default: /* fixed-size */
			if (scan_copy(s, f.value, out) < 0)
				return -1;
			break;
		}
	}
	return 0;
}

typedef struct resolve_ctx {
	scanner *s;
	const uint8_t *base;
	ProtobufCAllocator *alloc;
	bool *done;
	size_t n_done;
} resolve_ctx;

/* Point a placeholder raw_data back at its payload where it is. */
static int resolve_placeholder(Onnx__TensorProto *t, void *vctx)
{
	resolve_ctx *r = vctx;
	uint64_t idx = 0;
	if (!t->has_raw_data || t->raw_data.len != PLACEHOLDER || memcmp(t->raw_data.data, r->s->magic, 8) != 0)
		return 0;
	for (int i = 0; i < 8; i++)
		idx |= (uint64_t)t->raw_data.data[8 + i] << (8 * i);
	if (idx >= r->s->n_spans || r->done[idx])
		return -1;
	r->done[idx] = true;
	r->n_done++;
	r->alloc->free(r->alloc->allocator_data, t->raw_data.data);
	t->raw_data.data = (uint8_t *)r->base + r->s->spans[idx].off;
	t->raw_data.len = (size_t)r->s->spans[idx].len;
	return 0;
}

static void fill_random(uint8_t *p, size_t n)
{
	int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	long long got = fd >= 0 ? bnf_read_in_full(fd, p, n) : -1;
	if (fd >= 0)
		close(fd);
	if (got != (long long)n) { /* no entropy source: still unlikely in real data */
		uint64_t x = (uint64_t)getpid() * 0x9e3779b97f4a7c15ULL ^ (uint64_t)(uintptr_t)p;
		for (size_t i = 0; i < n; i++, x = x * 6364136223846793005ULL + 1442695040888963407ULL)
			p[i] = (uint8_t)(x >> 56);
	}
}

/* ---- the framing check, and parsing ---- */

/* The framing check: a cursor over the data, and the bytes protobuf-c
 * will allocate for it, roughly. */
typedef struct frame_check {
	bnf_wire w;
	size_t estimate;
} frame_check;

static void estimate_add(frame_check *c, size_t n)
{
	if (!bnf_add_size(c->estimate, n, &c->estimate))
		c->estimate = SIZE_MAX;
}

/* Walk the wire format of one message from the cursor up to end as
 * protobuf-c will, checking that every length stays inside its enclosing
 * message and that sub-messages nest at most BNF_MAX_NESTING deep
 * (protobuf-c's unpacker, its free and pack recurse once per level), and
 * estimating the memory the unpacked model takes. */
static int check_message(frame_check *c, uint64_t end, const ProtobufCMessageDescriptor *desc, int depth)
{
	bnf_wire *w = &c->w;
	estimate_add(c, desc->sizeof_message + 16);
	while (w->pos < end) {
		bnf_wire_field f;
		const ProtobufCFieldDescriptor *fd;

		if (bnf_wire_next(w, end, &f) < 0)
			return -1;
		fd = protobuf_c_message_descriptor_get_field(desc, f.number);
		estimate_add(c, 32); /* a slot in a repeated field, or an unknown-field record */
		if (f.type != BNF_WIRE_LEN) {
			if (f.type != BNF_WIRE_VARINT)
				bnf_wire_skip(w, f.value);
			continue;
		}
		if (fd && fd->type == PROTOBUF_C_TYPE_MESSAGE) {
			if (bnf_wire_enter(w, depth + 1) < 0 ||
			    check_message(c, w->pos + f.value, fd->descriptor, depth + 1) < 0)
				return -1;
			continue;
		}
		if (fd && fd->type == PROTOBUF_C_TYPE_STRING) {
			/* protobuf-c keeps strings NUL-terminated: the rest of the
			 * name would be lost (and two names could become one) */
			for (uint64_t left = f.value; left > 0;) {
				size_t got;
				const uint8_t *p = bnf_wire_take(w, left, &got);
				if (!p)
					return -1;
				if (memchr(p, 0, got))
					return bnf_wire_fail(w, "a string holds a NUL byte, which bnfold cannot keep");
				left -= got;
			}
		} else {
			bnf_wire_skip(w, f.value);
		}
		/* a string or bytes copy, or a packed array (a one-byte varint becomes 8 bytes) */
		estimate_add(c, fd && fd->label == PROTOBUF_C_LABEL_REPEATED && fd->type != PROTOBUF_C_TYPE_STRING &&
					fd->type != PROTOBUF_C_TYPE_BYTES
				? f.value * 8 : f.value + 1);
	}
	return 0;
}

/* The framing check of len bytes at data, the estimate of their unpacking
 * bounded as for a model of limit_len bytes. */
static int check_bounded(const char *name, const uint8_t *data, size_t len, size_t limit_len, bnf_err *fail)
{
	frame_check c = {0};
	size_t limit;

	if (len == 0)
		return bnf_fail(fail, BNFOLD_E_NOT_ONNX, "%s: input is empty, not an ONNX model", name);
	bnf_wire_init_buffer(&c.w, data, len);
	if (check_message(&c, len, &onnx__model_proto__descriptor, 1) < 0)
		return bnf_wire_error(&c.w, fail, name);
	if (!bnf_mul_size(limit_len, BNF_UNPACK_RATIO, &limit) || !bnf_add_size(limit, BNF_UNPACK_SLACK, &limit))
		limit = SIZE_MAX;
	if (c.estimate > limit)
		return bnf_fail(fail, BNFOLD_E_NOT_ONNX,
				"%s: unpacking would take about %zu MiB, more than %d times the file size; "
				"the model is made of millions of tiny or empty records", name, c.estimate >> 20,
				BNF_UNPACK_RATIO);
	return 0;
}

int bnf_model_check(const char *name, const uint8_t *data, size_t len, bnf_err *fail)
{
	return check_bounded(name, data, len, len, fail);
}

/* bnf_model_parse_with, bounded as for a model of limit_len bytes. */
static Onnx__ModelProto *parse_bounded(const char *name, const uint8_t *data, size_t len, ProtobufCAllocator *alloc,
				       size_t limit_len, bnf_err *fail)
{
	Onnx__ModelProto *m;

	if (check_bounded(name, data, len, limit_len, fail) < 0)
		return NULL;
	if (!(m = onnx__model_proto__unpack(alloc, len, data))) {
		bnf_fail(fail, BNFOLD_E_NOT_ONNX, "%s: not an ONNX model (the protobuf data is corrupt)", name);
		return NULL;
	}
	if (!m->has_ir_version || !m->graph) {
		bnf_fail(fail, BNFOLD_E_NOT_ONNX, "%s: not an ONNX model (no %s)", name, m->graph ? "ir_version" : "graph");
		onnx__model_proto__free_unpacked(m, alloc);
		return NULL;
	}
	return m;
}

Onnx__ModelProto *bnf_model_parse(const char *name, const uint8_t *data, size_t len, bnf_err *fail)
{
	return bnf_model_parse_with(name, data, len, NULL, fail);
}

Onnx__ModelProto *bnf_model_parse_with(const char *name, const uint8_t *data, size_t len, ProtobufCAllocator *alloc,
				       bnf_err *fail)
{
	return parse_bounded(name, data, len, alloc, len, fail);
}

/* ---- every TensorProto of a model ---- */

static int walk_graph(Onnx__GraphProto *g, bnf_tensor_fn fn, void *ctx);

static int walk_sparse(Onnx__SparseTensorProto *sp, bnf_tensor_fn fn, void *ctx)
{
	if (sp->values && fn(sp->values, ctx) < 0)
		return -1;
	return sp->indices ? fn(sp->indices, ctx) : 0;
}

static int walk_nodes(Onnx__NodeProto **nodes, size_t n, bnf_tensor_fn fn, void *ctx)
{
	for (size_t i = 0; i < n; i++)
		for (size_t a = 0; a < nodes[i]->n_attribute; a++) {
			Onnx__AttributeProto *at = nodes[i]->attribute[a];
			if ((at->t && fn(at->t, ctx) < 0) || (at->g && walk_graph(at->g, fn, ctx) < 0) ||
			    (at->sparse_tensor && walk_sparse(at->sparse_tensor, fn, ctx) < 0))
				return -1;
			for (size_t k = 0; k < at->n_tensors; k++)
				if (fn(at->tensors[k], ctx) < 0)
					return -1;
			for (size_t k = 0; k < at->n_graphs; k++)
				if (walk_graph(at->graphs[k], fn, ctx) < 0)
					return -1;
			for (size_t k = 0; k < at->n_sparse_tensors; k++)
				if (walk_sparse(at->sparse_tensors[k], fn, ctx) < 0)
					return -1;
		}
	return 0;
}

static int walk_graph(Onnx__GraphProto *g, bnf_tensor_fn fn, void *ctx)
{
	for (size_t i = 0; i < g->n_initializer; i++)
		if (fn(g->initializer[i], ctx) < 0)
			return -1;
	for (size_t i = 0; i < g->n_sparse_initializer; i++)
		if (walk_sparse(g->sparse_initializer[i], fn, ctx) < 0)
			return -1;
	return walk_nodes(g->node, g->n_node, fn, ctx);
}

int bnf_model_tensors(Onnx__ModelProto *m, bnf_tensor_fn fn, void *ctx)
{
	if (m->graph && walk_graph(m->graph, fn, ctx) < 0)
		return -1;
	for (size_t i = 0; i < m->n_training_info; i++) {
		Onnx__TrainingInfoProto *ti = m->training_info[i];
		if ((ti->initialization && walk_graph(ti->initialization, fn, ctx) < 0) ||
		    (ti->algorithm && walk_graph(ti->algorithm, fn, ctx) < 0))
			return -1;
	}
	for (size_t i = 0; i < m->n_functions; i++)
		if (walk_nodes(m->functions[i]->node, m->functions[i]->n_node, fn, ctx) < 0)
			return -1;
	return 0;
}

/* ---- the streaming scan, parsed ---- */

/* The skeleton parsed, its placeholders pointed back at the payloads:
 * 0, -1 (recorded), or 1 (a payload cannot be placed). */
static int scan_parse(scanner *s, const growbuf *skel, const uint8_t *base, const char *name, size_t limit_len,
		      ProtobufCAllocator *alloc, Onnx__ModelProto **m, bnf_err *fail)
{
	resolve_ctx r = {.s = s, .base = base, .alloc = alloc};
	int rc = 0;

	/* Byte offsets in the skeleton's messages are offsets in the skeleton. */
	if (!(*m = parse_bounded(name, skel->p ? skel->p : (uint8_t *)"", skel->len, alloc,
				 limit_len ? limit_len : skel->len, fail)))
		return -1;
	if (!(r.done = calloc(s->n_spans + 1, sizeof(bool))))
		rc = bnf_fail(fail, BNFOLD_E_NOMEM, "%s: out of memory", name);
	else if (bnf_model_tensors(*m, resolve_placeholder, &r) < 0 || r.n_done != s->n_spans)
		rc = 1;
	if (rc != 0) {
		onnx__model_proto__free_unpacked(*m, alloc);
		*m = NULL;
	}
	free(r.done);
	return rc;
}

int bnf_model_scan(bnf_wire *w, int depth, const uint8_t *base, const char *name, size_t limit_len,
		   ProtobufCAllocator *alloc, Onnx__ModelProto **m, bnf_err *fail)
{
	scanner s = {.w = w};
	growbuf skel = {0};
	int rc = -1;

	*m = NULL;
	fill_random(s.magic, sizeof(s.magic));
	if (scan_msg(&s, w->size, M_MODEL, depth, &skel) < 0) {
		if (s.oom)
			bnf_fail(fail, BNFOLD_E_NOMEM, "%s: out of memory reading the model", name);
		else
			bnf_wire_error(w, fail, name);
		goto out;
	}
	rc = scan_parse(&s, &skel, base, name, limit_len, alloc, m, fail);
out:
	free(s.spans);
	free(skel.p);
	return rc;
}
