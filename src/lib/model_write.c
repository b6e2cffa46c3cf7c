#include "model_write.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "transform.h"

typedef struct stream_buffer {
	ProtobufCBuffer base;
	bnf_output *out;
	const bnf_payloads *pl;
	bnf_window *win; /* the write's (bnf_output_write_model) */
} stream_buffer;

/* Write a computed payload chunk by chunk, computed straight into the
 * output buffer, reading its source in place through win. */
static void write_lazy(bnf_output *out, const bnf_lazy *lz, bnf_window *win)
{
	enum { CHUNK = 1 << 16 };
	size_t es = bnf_dtype_size(lz->tf.dtype), numel = lz->src.numel;
	double *scratch = malloc(CHUNK * sizeof(double));

	if (!scratch) {
		out->err = ENOMEM;
		return;
	}
	for (size_t done = 0, n; done < numel && !out->err; done += n) {
		size_t room;
		uint8_t *dst;
		n = numel - done < CHUNK ? numel - done : CHUNK;
		/* a chunk where the buffer has room for it, else a full buffer's worth at a time */
		dst = bnf_output_reserve(out, n * es, &room);
		if (n > room / es)
			n = room / es;
		if (!bnf_transform_apply(&lz->tf, &lz->src, done, n, win, scratch, dst)) {
			out->nonfinite = true; /* the caller folds again, scanning first (bnf_fold_options) */
			out->err = ERANGE;
		}
		bnf_output_advance(out, n * es);
	}
	if (lz->src.src && lz->src.src->err && !out->err) {
		out->err = lz->src.src->err;
		out->read_from = lz->src.src->path;
	}
	free(scratch);
}

/* Write one payload: computed (reading through win), copied from a source
 * file, or in memory (a source in memory among them: data points at its
 * bytes). */
static void write_payload(bnf_output *out, const bnf_payloads *pl, bnf_window *win, const uint8_t *data, size_t len)
{
	const bnf_lazy *lz;
	bnf_source *src;

	if (pl && (lz = bnf_payloads_lazy(pl, data)) != NULL) {
		write_lazy(out, lz, win);
		return;
	}
	if (pl && len > 0 && (src = bnf_payloads_source_of(pl, data)) != NULL && !src->in_memory) {
		bnf_output_copy(out, src->fd, src->path, (uint64_t)(data - src->base), len);
		if (src->err && !out->err) {
			out->err = src->err;
			out->read_from = src->path;
		}
		return;
	}
	bnf_output_write(out, data, len);
}

static void stream_append(ProtobufCBuffer *b, size_t len, const uint8_t *data)
{
	stream_buffer *sb = (stream_buffer *)b;
	write_payload(sb->out, sb->pl, sb->win, data, len);
}

typedef struct extern_ctx {
	bnf_output *data;     /* the data file */
	const bnf_payloads *pl;
	bnf_window *win;      /* the write's (bnf_output_write_model) */
	const char *location; /* its name, relative to the model */
	uint64_t off;
	int err;
} extern_ctx;

static Onnx__StringStringEntryProto *kv(const char *k, const char *v)
{
	Onnx__StringStringEntryProto *e = malloc(sizeof(*e));
	if (!e)
		return NULL;
	onnx__string_string_entry_proto__init(e);
	e->key = bnf_strdup(k);
	e->value = bnf_strdup(v);
	if (!e->key || !e->value) {
		free(e->key);
		free(e->value);
		free(e);
		return NULL;
	}
	return e;
}

/* A tensor whose payload came from external data goes to the data file. */
static int externalize(Onnx__TensorProto *t, void *vctx)
{
	extern_ctx *x = vctx;
	char off[32], len[32];
	Onnx__StringStringEntryProto **e;

	if (!t->has_raw_data || !bnf_payloads_from_external(x->pl, t->raw_data.data))
		return 0;
	write_payload(x->data, x->pl, x->win, t->raw_data.data, t->raw_data.len);
	snprintf(off, sizeof(off), "%llu", (unsigned long long)x->off);
	snprintf(len, sizeof(len), "%zu", t->raw_data.len);
	if (!(e = calloc(3, sizeof(*e))) || !(e[0] = kv("location", x->location)) || !(e[1] = kv("offset", off)) ||
	    !(e[2] = kv("length", len))) {
		if (e)
			for (int i = 0; i < 3; i++)
				if (e[i])
					protobuf_c_message_free_unpacked(&e[i]->base, NULL);
		free(e);
		x->err = ENOMEM;
		return -1;
	}
	x->off += t->raw_data.len;
	t->external_data = e;
	t->n_external_data = 3;
	t->has_data_location = 1;
	t->data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
	t->has_raw_data = 0; /* the data pointer stays for freeing */
	return 0;
}

/* True when writing data_path would change an external data file of the
 * input while the model itself is not being replaced (--in-place). */
static bool replaces_input_data(const bnf_payloads *pl, const char *model_path, const char *data_path)
{
	bool hit = false;
	for (size_t i = 0; i < pl->n_srcs; i++)
		if (pl->srcs[i]->external)
			hit = hit || bnf_same_file(pl->srcs[i]->path, data_path);
	return hit && !(pl->model_path && bnf_same_file(pl->model_path, model_path));
}

static bool has_external(const bnf_payloads *pl)
{
	for (size_t i = 0; pl && i < pl->n_srcs; i++)
		if (pl->srcs[i]->external)
			return true;
	return false;
}

/* Tensors stored outside the model stay outside: all of them, folded or
 * not, go to one new file beside the output (out->data), which is then
 * self-contained.  The input's data files are never written. */
static int write_external(bnf_output *out, Onnx__ModelProto *m, const bnf_payloads *pl, bnf_window *win)
{
	extern_ctx x = {0};
	const char *base;
	char *data_path, *location;
	int r;

	if (!out->final_path)
		return bnf_fail(out->fail, BNFOLD_E_INVALID,
				"%s: the model keeps its weights in external data, which needs a regular output "
				"file beside it; use --inline to put them in the model", out->path);
	base = strrchr(out->final_path, '/') ? strrchr(out->final_path, '/') + 1 : out->final_path;
	if (!(data_path = bnf_asprintf("%s.data", out->final_path)) || !(out->data = calloc(1, sizeof(*out->data)))) {
		free(data_path);
		return bnf_fail(out->fail, BNFOLD_E_NOMEM, "%s: out of memory", out->path);
	}
	if (replaces_input_data(pl, out->final_path, data_path))
		r = bnf_fail(out->fail, BNFOLD_E_INVALID,
			     "%s: would replace '%s', which the input reads its weights from; choose another output name",
			     out->path, data_path);
	else
		r = bnf_output_open(data_path, out->data, out->tempfile, out->tempfile_ctx, out->fail);
	free(data_path);
	if (r < 0) {
		free(out->data);
		out->data = NULL;
		return -1;
	}
	bnf_output_attach(out, out->data);
	bnf_output_expect(out->data, bnf_payloads_external_bytes(pl));
	if (!(location = bnf_asprintf("%s.data", base)))
		return bnf_fail(out->fail, BNFOLD_E_NOMEM, "%s: out of memory", out->path);
	x.data = out->data;
	x.pl = pl;
	x.win = win;
	x.location = location;
	r = bnf_model_tensors(m, externalize, &x);
	free(location);
	if (r < 0)
		return bnf_fail(out->fail, BNFOLD_E_NOMEM, "%s: out of memory", out->path);
	out->nonfinite = out->data->nonfinite;
	return 0;
}

int bnf_output_write_model(bnf_output *out, Onnx__ModelProto *m, const bnf_payloads *pl, bool inline_all)
{
	/* One window for every computed payload of the write: payloads read
	 * in file order mostly follow one another, so the next one is often
	 * in it already. */
	bnf_window win = BNF_WINDOW_INIT;
	stream_buffer sb = {{stream_append}, out, pl, &win};
	int rc = 0;

	if (has_external(pl) && !inline_all) {
		if ((rc = write_external(out, m, pl, &win)) < 0 || out->nonfinite) /* nonfinite: the caller folds again */
			goto out;
	}
	if (has_external(pl) && inline_all && protobuf_c_message_get_packed_size(&m->base) > INT32_MAX) {
		rc = bnf_fail(out->fail, BNFOLD_E_INVALID,
			      "%s: with its external data inlined the model would pass the 2 GB protobuf limit; "
			      "drop --inline", out->path);
		goto out;
	}
	protobuf_c_message_pack_to_buffer(&m->base, &sb.base);
out:
	bnf_window_drop(&win);
	return rc;
}

int bnf_output_write_input(bnf_output *out, const bnf_input *in)
{
	if (in->has_external)
		return bnf_fail(out->fail, BNFOLD_E_INVALID,
				"%s: nothing to fold, but the model keeps its weights in external data: copy the "
				"model file and its data files instead", in->path);
	if (in->mapped || in->reserved)
		bnf_output_copy(out, in->fd, NULL, 0, in->len); /* a read error is reported as a write error */
	else
		bnf_output_write(out, in->data, in->len);
	return 0;
}
