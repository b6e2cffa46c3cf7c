#include "model_read.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "fileio.h"
#include "wire.h"

/* protobuf-c's structs take about 1-10 times the bytes of a real model, and
 * up to ~130 times for a file of empty records: refuse above this. */
#define BNF_UNPACK_RATIO 32
#define BNF_UNPACK_SLACK ((size_t)256 << 20)

/* All of fd (stdin, a pipe, a device) into memory. */
static int read_all(int fd, const char *path, uint8_t **data, size_t *len, bnf_err *e)
{
	size_t cap = 1 << 16, n = 0;
	uint8_t *buf = malloc(cap);
	if (!buf)
		return bnf_fail(e, BNFOLD_E_NOMEM, "%s: out of memory", path);
	for (;;) {
		long long r;
		if (n == cap && BNF_GROW(buf, n, cap) < 0) {
			free(buf);
			return bnf_fail(e, BNFOLD_E_NOMEM, "%s: out of memory reading the input", path);
		}
		if ((r = bnf_read_in_full(fd, buf + n, cap - n)) < 0) {
			free(buf);
			return bnf_fail(e, BNFOLD_E_IO, "%s: cannot read: %s", path, strerror(errno));
		}
		n += (size_t)r;
		if (n < cap) /* the end of the file */
			break;
	}
	*data = buf;
	*len = n;
	return 0;
}

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
	bnf_wire w;      /* over the input file */
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
		const uint8_t *p = bnf_wire_take(&s->w, n, &k);
		if (!p)
			return -1;
		if (gb_put(out, p, k) < 0)
			return scan_oom(s);
		n -= k;
	}
	return 0;
}

/* Leave the payload of n bytes at the cursor in the file: out gets a
 * placeholder (the magic and the payload's index) in its place. */
static int scan_placeholder(scanner *s, uint64_t n, growbuf *out)
{
	uint8_t idx[8];
	if (BNF_GROW(s->spans, s->n_spans, s->cap_spans) < 0)
		return scan_oom(s);
	s->spans[s->n_spans] = (payload_span){s->w.pos, n};
	for (int i = 0; i < 8; i++)
		idx[i] = (uint8_t)((uint64_t)s->n_spans >> (8 * i));
	s->n_spans++;
	if (gb_varint(out, PLACEHOLDER) < 0 || gb_put(out, s->magic, 8) < 0 || gb_put(out, idx, 8) < 0)
		return scan_oom(s);
	bnf_wire_skip(&s->w, n);
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
		if (bnf_wire_enter(&s->w, depth + 1) < 0)
			return -1;
		rc = scan_msg(s, s->w.pos + f->value, child, depth + 1, &sub);
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
	while (s->w.pos < end) {
		bnf_wire_field f;
		if (bnf_wire_next(&s->w, end, &f) < 0)
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

typedef struct resolve_ctx {
	scanner *s;
	bnf_input *in;
	bool *done;
	size_t n_done;
} resolve_ctx;

/* Point a placeholder raw_data back at its payload in the file. */
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
	r->in->payloads.allocator.free(r->in->payloads.allocator.allocator_data, t->raw_data.data);
	t->raw_data.data = (uint8_t *)r->in->data + r->s->spans[idx].off;
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

/* Parse the file leaving large payloads in it.  in->data is then only an
 * address range (PROT_NONE) whose offsets stand for file offsets. */
static int open_streaming(bnf_input *in, int fd)
{
	scanner s = {0};
	growbuf skel = {0};
	resolve_ctx r = {0};
	bnf_source *src;
	int rc = -1;

	if (bnf_wire_init_file(&s.w, fd, in->len) < 0) {
		close(fd);
		return bnf_fail(in->fail, BNFOLD_E_NOMEM, "%s: out of memory", in->path);
	}
	/* The registry owns fd and the address range from here on. */
	if (!(src = bnf_payloads_add_source(&in->payloads, fd, in->len, in->path, false)))
		goto out;
	in->data = src->base;
	in->reserved = true;
	in->fd = fd;
	fill_random(s.magic, sizeof(s.magic));
	in->streaming = true;
	/* Depth counts from 2 here: this scan has always refused a model one
	 * level of nesting earlier than bnf_model_parse does, and the same
	 * models must keep being refused the same way. */
	if (scan_msg(&s, in->len, M_MODEL, 2, &skel) < 0) {
		if (s.oom)
			bnf_fail(in->fail, BNFOLD_E_NOMEM, "%s: out of memory reading the model", in->path);
		else
			bnf_wire_error(&s.w, in->fail, in->path);
		goto out;
	}
	/* The structure, without the payloads: checked, then unpacked.  (Byte
	 * offsets in its messages are offsets in this structure.) */
	if (!(in->model = bnf_model_parse_with(in->path, skel.p ? skel.p : (uint8_t *)"", skel.len, &in->payloads.allocator,
					       in->fail)))
		goto out;
	r.s = &s;
	r.in = in;
	if (!(r.done = calloc(s.n_spans + 1, sizeof(bool)))) {
		bnf_fail(in->fail, BNFOLD_E_NOMEM, "%s: out of memory", in->path);
		goto out;
	}
	if (bnf_model_tensors(in->model, resolve_placeholder, &r) < 0 || r.n_done != s.n_spans) {
		bnf_fail(in->fail, BNFOLD_E_NOT_ONNX,
			 "%s: not an ONNX model (a tensor holds raw_data twice, or data is misplaced)", in->path);
		goto out;
	}
	rc = 0;
out:
	free(r.done);
	free(s.spans);
	free(skel.p);
	bnf_wire_free(&s.w);
	return rc;
}

/* One external tensor: point its raw_data into the data file's source
 * and forget the external fields (the writer decides the layout again). */
static int resolve_external(Onnx__TensorProto *t, void *vctx)
{
	bnf_input *in = vctx;
	const char *location = NULL, *name = t->name ? t->name : "";
	uint64_t offset = 0, length = UINT64_MAX, numel = 1;
	size_t es;
	bnf_source *src;
	char err[300];

	if (!t->has_data_location || t->data_location != ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL)
		return 0;
	for (size_t i = 0; i < t->n_external_data; i++) {
		const char *k = t->external_data[i]->key, *v = t->external_data[i]->value;
		char *end;
		if (!k || !v)
			continue;
		if (strcmp(k, "location") == 0) {
			location = v;
		} else if (strcmp(k, "offset") == 0 || strcmp(k, "length") == 0) {
			unsigned long long x;
			errno = 0;
			x = strtoull(v, &end, 10);
			if (errno || end == v || *end || v[0] == '-')
				return bnf_fail(in->fail, BNFOLD_E_NOT_ONNX,
						"%s: tensor '%s': external data %s '%s' is not a number", in->path, name, k, v);
			if (k[0] == 'o')
				offset = x;
			else
				length = x;
		}
	}
	if (!location)
		return bnf_fail(in->fail, BNFOLD_E_NOT_ONNX, "%s: tensor '%s': external data has no location", in->path,
				name);
	for (size_t d = 0; d < t->n_dims; d++) {
		if (t->dims[d] < 0 || (t->dims[d] && numel > UINT64_MAX / (uint64_t)t->dims[d]))
			return bnf_fail(in->fail, BNFOLD_E_NOT_ONNX, "%s: tensor '%s': dims are negative or overflow",
					in->path, name);
		numel *= (uint64_t)t->dims[d];
	}
	es = bnf_dtype_size(t->has_data_type ? t->data_type : 0);
	if (length == UINT64_MAX) {
		if (!es || numel > UINT64_MAX / es)
			return bnf_fail(in->fail, BNFOLD_E_NOT_ONNX,
					"%s: tensor '%s': external data without a length, of a type bnfold cannot size",
					in->path, name);
		length = numel * es;
	}
	/* The registry gives its reason in words only: a model read from stdin
	 * has no directory to look in (the caller's choice); any other failure
	 * is taken as the data file's (missing, unreadable, not allowed). */
	if (!(src = bnf_payloads_external(&in->payloads, location, err, sizeof(err))))
		return bnf_fail(in->fail, in->payloads.dir ? BNFOLD_E_IO : BNFOLD_E_INVALID, "%s: tensor '%s': %s",
				in->path, name, err);
	if (offset > src->len || length > src->len - offset)
		return bnf_fail(in->fail, BNFOLD_E_NOT_ONNX,
				"%s: tensor '%s': external data [%llu, +%llu) lies past the end of '%s' (%zu bytes)",
				in->path, name, (unsigned long long)offset, (unsigned long long)length, location, src->len);
	for (size_t i = 0; i < t->n_external_data; i++)
		protobuf_c_message_free_unpacked(&t->external_data[i]->base, &in->payloads.allocator);
	in->payloads.allocator.free(in->payloads.allocator.allocator_data, t->external_data);
	t->external_data = NULL;
	t->n_external_data = 0;
	t->has_data_location = 0;
	t->data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__DEFAULT;
	if (t->has_raw_data)
		in->payloads.allocator.free(in->payloads.allocator.allocator_data, t->raw_data.data);
	t->has_raw_data = 1;
	t->raw_data.data = (uint8_t *)src->base + offset;
	t->raw_data.len = (size_t)length;
	in->has_external = true;
	return 0;
}

/* The parsed model is ONNX at all, and its external data is where it
 * says; closes in otherwise. */
static int check_model(bnf_input *in)
{
	if (!in->model->has_ir_version || !in->model->graph) {
		bnf_fail(in->fail, BNFOLD_E_NOT_ONNX, "%s: not an ONNX model (no %s)", in->path,
			 in->model->graph ? "ir_version" : "graph");
		bnf_input_close(in);
		return -1;
	}
	if (bnf_model_tensors(in->model, resolve_external, in) < 0) {
		bnf_input_close(in);
		return -1;
	}
	return 0;
}

int bnf_input_open(const char *path, bnf_input *in, bool stream, bnf_err *fail)
{
	struct stat st;
	int fd = -1;
	uint8_t *buf = NULL;

	memset(in, 0, sizeof(*in));
	in->path = path;
	in->fd = -1;
	in->fail = fail;
	if (bnf_payloads_init(&in->payloads, path, fail) < 0)
		return -1;
	in->payloads.materialize = !stream;
	if (strcmp(path, "-") == 0) {
		if (read_all(0, "(stdin)", &buf, &in->len, fail) < 0)
			return -1;
		in->data = buf;
	} else {
		if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
			return bnf_fail(fail, BNFOLD_E_IO, "%s: cannot open: %s", path, strerror(errno));
		if (fstat(fd, &st) < 0) {
			bnf_fail(fail, BNFOLD_E_IO, "%s: cannot stat: %s", path, strerror(errno));
			goto fail;
		}
		if (S_ISDIR(st.st_mode)) {
			bnf_fail(fail, BNFOLD_E_IO, "%s: is a directory, not an ONNX model", path);
			goto fail;
		}
		if (S_ISREG(st.st_mode)) {
			if (st.st_size == 0) {
				bnf_fail(fail, BNFOLD_E_NOT_ONNX, "%s: file is empty, not an ONNX model", path);
				goto fail;
			}
			if ((uint64_t)st.st_size > SIZE_MAX) {
				bnf_fail(fail, BNFOLD_E_NOMEM, "%s: file is too large for this machine", path);
				goto fail;
			}
			in->len = (size_t)st.st_size;
			if (stream) {
				int r = open_streaming(in, fd);
				fd = -1; /* the payload registry owns it now */
				if (r < 0)
					goto fail;
				return check_model(in);
			}
			in->data = mmap(NULL, in->len, PROT_READ, MAP_PRIVATE, fd, 0);
			if (in->data == MAP_FAILED) {
				in->data = NULL;
				bnf_fail(fail, errno == ENOMEM ? BNFOLD_E_NOMEM : BNFOLD_E_IO, "%s: cannot map: %s", path,
					 strerror(errno));
				goto fail;
			}
			in->mapped = true;
			in->fd = fd;
			fd = -1;
		} else {
			if (read_all(fd, path, &buf, &in->len, fail) < 0)
				goto fail;
			in->data = buf;
			close(fd);
			fd = -1;
		}
	}
	/* bnf_model_parse reports an empty input */
	if (!(in->model = bnf_model_parse(strcmp(path, "-") == 0 ? "(stdin)" : path, in->data, in->len, fail)))
		goto fail;
	return check_model(in);
fail:
	if (fd >= 0)
		close(fd);
	bnf_input_close(in);
	return -1;
}

void bnf_input_close(bnf_input *in)
{
	if (in->model)
		onnx__model_proto__free_unpacked(in->model, &in->payloads.allocator);
	if (in->data && !in->reserved) { /* a reserved range belongs to the registry */
		if (in->mapped)
			munmap((void *)in->data, in->len);
		else
			free((void *)in->data);
	}
	if (in->mapped && in->fd >= 0)
		close(in->fd);
	bnf_payloads_free(&in->payloads); /* closes the sources' files */
	memset(in, 0, sizeof(*in));
	in->fd = -1;
}

/* ---- parsing ---- */

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

Onnx__ModelProto *bnf_model_parse(const char *name, const uint8_t *data, size_t len, bnf_err *fail)
{
	return bnf_model_parse_with(name, data, len, NULL, fail);
}

Onnx__ModelProto *bnf_model_parse_with(const char *name, const uint8_t *data, size_t len, ProtobufCAllocator *alloc,
				       bnf_err *fail)
{
	frame_check c = {0};
	Onnx__ModelProto *m;
	size_t limit;

	if (len == 0) {
		bnf_fail(fail, BNFOLD_E_NOT_ONNX, "%s: input is empty, not an ONNX model", name);
		return NULL;
	}
	bnf_wire_init_buffer(&c.w, data, len);
	if (check_message(&c, len, &onnx__model_proto__descriptor, 1) < 0) {
		bnf_wire_error(&c.w, fail, name);
		return NULL;
	}
	if (!bnf_mul_size(len, BNF_UNPACK_RATIO, &limit) || !bnf_add_size(limit, BNF_UNPACK_SLACK, &limit))
		limit = SIZE_MAX;
	if (c.estimate > limit) {
		bnf_fail(fail, BNFOLD_E_NOT_ONNX,
			 "%s: unpacking would take about %zu MiB, more than %d times the file size; "
			 "the model is made of millions of tiny or empty records", name, c.estimate >> 20, BNF_UNPACK_RATIO);
		return NULL;
	}
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
