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
#include "model_parse.h"
#include "wire.h"

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

/* Parse the file leaving large payloads in it.  in->data is then only an
 * address range (PROT_NONE) whose offsets stand for file offsets. */
static int open_streaming(bnf_input *in, int fd)
{
	bnf_wire w;
	bnf_source *src;
	int rc;

	if (bnf_wire_init_file(&w, fd, in->len) < 0) {
		close(fd);
		return bnf_fail(in->fail, BNFOLD_E_NOMEM, "%s: out of memory", in->path);
	}
	/* The registry owns fd and the address range from here on. */
	if (!(src = bnf_payloads_add_source(&in->payloads, fd, in->len, in->path, false))) {
		bnf_wire_free(&w);
		return -1;
	}
	in->data = src->base;
	in->reserved = true;
	in->fd = fd;
	in->streaming = true;
	/* Depth counts from 2 here: this scan has always refused a model one
	 * level of nesting earlier than bnf_model_parse does, and the same
	 * models must keep being refused the same way. */
	rc = bnf_model_scan(&w, 2, src->base, in->path, 0, &in->payloads.allocator, &in->model, in->fail);
	bnf_wire_free(&w);
	if (rc == 1)
		rc = bnf_fail(in->fail, BNFOLD_E_NOT_ONNX,
			      "%s: not an ONNX model (a tensor holds raw_data twice, or data is misplaced)", in->path);
	return rc;
}

/* Parse the in->len bytes at in->data (in memory) leaving large payloads
 * where they are: a source over those bytes reads them in place, so that
 * memory beyond them does not grow with the weights.  The whole data is
 * checked first, as bnf_model_parse checks it, so a malformed model is
 * refused with the same line (name in it) whichever way it is read.  0; -1
 * after recording why; 1 when it cannot be read this way (a payload the
 * scan cannot place), nothing recorded: then parse it whole. */
static int open_in_memory(bnf_input *in, const char *name)
{
	bnf_wire w;
	int rc;

	if (bnf_model_check(name, in->data, in->len, in->fail) < 0)
		return -1;
	if (!bnf_payloads_add_memory(&in->payloads, in->data, in->len, name))
		return -1;
	in->streaming = true;
	bnf_wire_init_buffer(&w, in->data, in->len);
	/* Unpacking is bounded by the size of the whole data, as bnf_model_parse bounds it. */
	rc = bnf_model_scan(&w, 1, in->data, name, in->len, &in->payloads.allocator, &in->model, in->fail);
	if (rc == 1) { /* to be parsed whole: no tensor will point into the source */
		in->streaming = false;
		in->payloads.materialize = true;
	}
	return rc;
}

/* The model at in->data, in memory: parsed leaving its large payloads
 * there (stream), or whole.  0, or -1 after recording why. */
static int parse_in_memory(bnf_input *in, const char *name, bool stream)
{
	int r = stream ? open_in_memory(in, name) : 1;
	if (r == 1 && !(in->model = bnf_model_parse(name, in->data, in->len, in->fail)))
		return -1;
	return r < 0 ? -1 : 0;
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
	/* stdin, a pipe or a device, read into memory (or, not streaming, a
	 * file mapped whole); an empty input is reported here */
	if (parse_in_memory(in, strcmp(path, "-") == 0 ? "(stdin)" : path, stream) < 0)
		goto fail;
	return check_model(in);
fail:
	if (fd >= 0)
		close(fd);
	bnf_input_close(in);
	return -1;
}

int bnf_input_open_buffer(const char *name, const void *data, size_t len, bool stream, bnf_input *in,
			  bnf_err *fail)
{
	memset(in, 0, sizeof(*in));
	in->path = name;
	in->fd = -1;
	in->fail = fail;
	in->data = data;
	in->len = len;
	in->borrowed = true;
	if (bnf_payloads_init(&in->payloads, NULL, fail) < 0)
		return -1;
	in->payloads.materialize = !stream;
	/* External data is not looked for (check_model): there is no directory. */
	if (parse_in_memory(in, name, stream) < 0) {
		bnf_input_close(in);
		return -1;
	}
	return 0;
}

void bnf_input_close(bnf_input *in)
{
	if (in->model)
		onnx__model_proto__free_unpacked(in->model, &in->payloads.allocator);
	/* a reserved range belongs to the registry, borrowed bytes to the caller */
	if (in->data && !in->reserved && !in->borrowed) {
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
