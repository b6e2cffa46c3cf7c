#include "model_io.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"

#define OUT_BUF (1u << 20)

/* protobuf-c's structs take about 1-10 times the bytes of a real model, and
 * up to ~130 times for a file of empty records: refuse above this. */
#define BNF_UNPACK_RATIO 32
#define BNF_UNPACK_SLACK ((size_t)256 << 20)

/* The temp file being written, removed if SIGINT/SIGTERM arrives before the
 * rename.  A signal handler can only reach it through a static. */
static char pending_tmp[PATH_MAX];

static void on_signal(int sig)
{
	if (pending_tmp[0])
		unlink(pending_tmp);
	signal(sig, SIG_DFL);
	raise(sig);
}

static const int cleanup_signals[] = {SIGINT, SIGTERM, SIGHUP};

/* Remove the temp file on these signals, except where the caller chose to
 * ignore one (nohup, background jobs): that choice stands. */
static void catch_signals(void)
{
	for (size_t i = 0; i < sizeof(cleanup_signals) / sizeof(cleanup_signals[0]); i++) {
		struct sigaction sa, old;
		if (sigaction(cleanup_signals[i], NULL, &old) == 0 && old.sa_handler == SIG_IGN)
			continue;
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = on_signal;
		sigemptyset(&sa.sa_mask);
		sa.sa_flags = SA_RESTART;
		sigaction(cleanup_signals[i], &sa, NULL);
	}
}

/* Block (true) or restore the cleanup signals, so that a temp file never
 * exists without being known to on_signal. */
static void hold_signals(bool hold, sigset_t *saved)
{
	sigset_t set;
	if (!hold) {
		sigprocmask(SIG_SETMASK, saved, NULL);
		return;
	}
	sigemptyset(&set);
	for (size_t i = 0; i < sizeof(cleanup_signals) / sizeof(cleanup_signals[0]); i++)
		sigaddset(&set, cleanup_signals[i]);
	sigprocmask(SIG_BLOCK, &set, saved);
}

static int read_all(int fd, const char *path, uint8_t **data, size_t *len)
{
	size_t cap = 1 << 16, n = 0;
	uint8_t *buf = malloc(cap);
	if (!buf)
		return bnf_error("%s: out of memory", path);
	for (;;) {
		ssize_t r;
		if (n == cap) {
			uint8_t *nb;
			if (cap > SIZE_MAX / 2 || !(nb = realloc(buf, cap * 2))) {
				free(buf);
				return bnf_error("%s: out of memory reading the input", path);
			}
			buf = nb;
			cap *= 2;
		}
		r = read(fd, buf + n, cap - n);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			free(buf);
			return bnf_error("%s: cannot read: %s", path, strerror(errno));
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	*data = buf;
	*len = n;
	return 0;
}

int bnf_input_open(const char *path, bnf_input *in)
{
	struct stat st;
	int fd = -1;
	uint8_t *buf = NULL;

	memset(in, 0, sizeof(*in));
	in->path = path;
	if (strcmp(path, "-") == 0) {
		if (read_all(0, "(stdin)", &buf, &in->len) < 0)
			return -1;
		in->data = buf;
	} else {
		if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
			return bnf_error("%s: cannot open: %s", path, strerror(errno));
		if (fstat(fd, &st) < 0) {
			bnf_error("%s: cannot stat: %s", path, strerror(errno));
			goto fail;
		}
		if (S_ISDIR(st.st_mode)) {
			bnf_error("%s: is a directory, not an ONNX model", path);
			goto fail;
		}
		if (S_ISREG(st.st_mode)) {
			if (st.st_size == 0) {
				bnf_error("%s: file is empty, not an ONNX model", path);
				goto fail;
			}
			if ((uint64_t)st.st_size > SIZE_MAX) {
				bnf_error("%s: file is too large for this machine", path);
				goto fail;
			}
			in->len = (size_t)st.st_size;
			in->data = mmap(NULL, in->len, PROT_READ, MAP_PRIVATE, fd, 0);
			if (in->data == MAP_FAILED) {
				in->data = NULL;
				bnf_error("%s: cannot map: %s", path, strerror(errno));
				goto fail;
			}
			in->mapped = true;
		} else {
			if (read_all(fd, path, &buf, &in->len) < 0)
				goto fail;
			in->data = buf;
		}
		close(fd);
		fd = -1;
	}
	/* bnf_model_parse reports an empty input */
	if (!(in->model = bnf_model_parse(strcmp(path, "-") == 0 ? "(stdin)" : path, in->data, in->len)))
		goto fail;
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	bnf_input_close(in);
	return -1;
}

void bnf_input_close(bnf_input *in)
{
	if (in->model)
		onnx__model_proto__free_unpacked(in->model, NULL);
	if (in->data) {
		if (in->mapped)
			munmap((void *)in->data, in->len);
		else
			free((void *)in->data);
	}
	memset(in, 0, sizeof(*in));
}

/* ---- parsing ---- */

/* Where the framing check stopped, and why. */
typedef struct scan_state {
	const uint8_t *data;
	size_t estimate; /* bytes protobuf-c will allocate, roughly */
	size_t fail_at;
	const char *why;
	bool too_deep;
} scan_state;

static int scan_fail(scan_state *s, size_t at, const char *why)
{
	s->fail_at = at;
	s->why = why;
	return -1;
}

static int read_varint(const uint8_t *p, size_t end, size_t *pos, uint64_t *v)
{
	uint64_t x = 0;
	for (int shift = 0; shift < 64; shift += 7) {
		uint8_t b;
		if (*pos >= end)
			return -1;
		b = p[(*pos)++];
		x |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*v = x;
			return 0;
		}
	}
	return -1; /* more than 10 bytes */
}

static void estimate_add(scan_state *s, size_t n)
{
	if (!bnf_add_size(s->estimate, n, &s->estimate))
		s->estimate = SIZE_MAX;
}

/* Walk the wire format of one message in data[pos, end) as protobuf-c will,
 * checking that every length stays inside its enclosing message and that
 * sub-messages nest at most BNF_MAX_NESTING deep (protobuf-c's unpacker,
 * its free and pack recurse once per level), and estimating the memory the
 * unpacked model takes. */
static int scan_message(scan_state *s, size_t pos, size_t end, const ProtobufCMessageDescriptor *desc,
			int depth)
{
	estimate_add(s, desc->sizeof_message + 16);
	while (pos < end) {
		size_t at = pos;
		uint64_t key, n;
		const ProtobufCFieldDescriptor *fd;

		if (read_varint(s->data, end, &pos, &key) < 0)
			return scan_fail(s, at, "a field tag is cut off");
		/* Field numbers run from 1 to 2^29 - 1.  protobuf-c takes a
		 * number 0 spelt in two bytes as an unknown field, then writes it
		 * in one byte, which it rejects: the output would not parse. */
		if ((key >> 3) == 0 || (key >> 3) > 0x1fffffff)
			return scan_fail(s, at, "a field number is 0 or above 2^29 - 1");
		fd = (key >> 3) <= UINT32_MAX ? protobuf_c_message_descriptor_get_field(desc, (unsigned)(key >> 3)) : NULL;
		estimate_add(s, 32); /* a slot in a repeated field, or an unknown-field record */
		switch (key & 7) {
		case 0:
			if (read_varint(s->data, end, &pos, &n) < 0)
				return scan_fail(s, at, "a number is cut off");
			break;
		case 1:
		case 5:
			n = (key & 7) == 1 ? 8 : 4;
			if (end - pos < n)
				return scan_fail(s, at, "a fixed-size field runs past the end of its message");
			pos += n;
			break;
		case 2:
			if (read_varint(s->data, end, &pos, &n) < 0)
				return scan_fail(s, at, "a length is cut off");
			if (n > end - pos)
				return scan_fail(s, at, "a length runs past the end of its message");
			if (fd && fd->type == PROTOBUF_C_TYPE_MESSAGE) {
				if (depth >= BNF_MAX_NESTING) {
					s->too_deep = true;
					return scan_fail(s, at, "too deep");
				}
				if (scan_message(s, pos, pos + n, fd->descriptor, depth + 1) < 0)
					return -1;
			} else if (fd && fd->type == PROTOBUF_C_TYPE_STRING && memchr(s->data + pos, 0, n)) {
				/* protobuf-c keeps strings NUL-terminated: the rest of
				 * the name would be lost (and two names could become one) */
				return scan_fail(s, at, "a string holds a NUL byte, which bnfold cannot keep");
			} else {
				/* a string or bytes copy, or a packed array (a one-byte varint becomes 8 bytes) */
				estimate_add(s, fd && fd->label == PROTOBUF_C_LABEL_REPEATED &&
							fd->type != PROTOBUF_C_TYPE_STRING && fd->type != PROTOBUF_C_TYPE_BYTES
						? n * 8 : n + 1);
			}
			pos += n;
			break;
		default:
			return scan_fail(s, at, "a field has a wire type protobuf does not use any more");
		}
	}
	return 0;
}

Onnx__ModelProto *bnf_model_parse(const char *name, const uint8_t *data, size_t len)
{
	scan_state s = {data, 0, 0, NULL, false};
	Onnx__ModelProto *m;
	size_t limit;

	if (len == 0) {
		bnf_error("%s: input is empty, not an ONNX model", name);
		return NULL;
	}
	if (scan_message(&s, 0, len, &onnx__model_proto__descriptor, 1) < 0) {
		if (s.too_deep)
			bnf_error("%s: messages are nested more than %d deep (at byte %zu); subgraphs this deep are not supported",
				  name, BNF_MAX_NESTING, s.fail_at);
		else
			bnf_error("%s: not an ONNX model (truncated or corrupt: %s, at byte %zu)", name, s.why, s.fail_at);
		return NULL;
	}
	if (!bnf_mul_size(len, BNF_UNPACK_RATIO, &limit) || !bnf_add_size(limit, BNF_UNPACK_SLACK, &limit))
		limit = SIZE_MAX;
	if (s.estimate > limit) {
		bnf_error("%s: unpacking would take about %zu MiB, more than %d times the file size; "
			  "the model is made of millions of tiny or empty records", name, s.estimate >> 20, BNF_UNPACK_RATIO);
		return NULL;
	}
	if (!(m = onnx__model_proto__unpack(NULL, len, data))) {
		bnf_error("%s: not an ONNX model (the protobuf data is corrupt)", name);
		return NULL;
	}
	if (!m->has_ir_version || !m->graph) {
		bnf_error("%s: not an ONNX model (no %s)", name, m->graph ? "ir_version" : "graph");
		onnx__model_proto__free_unpacked(m, NULL);
		return NULL;
	}
	return m;
}

bool bnf_same_file(const char *a, const char *b)
{
	struct stat sa, sb;
	if (strcmp(a, "-") == 0 || strcmp(b, "-") == 0)
		return false;
	if (stat(a, &sa) < 0 || stat(b, &sb) < 0)
		return false;
	return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

int bnf_output_open(const char *path, bnf_output *out)
{
	struct stat st;
	char *dir = NULL;
	const char *slash;
	const char *base;
	mode_t um;
	sigset_t saved;

	memset(out, 0, sizeof(*out));
	out->path = path;
	out->fd = -1;
	if (!(out->buf = malloc(OUT_BUF)))
		return bnf_error("%s: out of memory", path);
	if (strcmp(path, "-") == 0) {
		out->fd = 1;
		return 0;
	}
	if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
		if (S_ISDIR(st.st_mode)) {
			bnf_error("%s: is a directory", path);
			goto fail;
		}
		/* A device, FIFO or socket: write into it, never replace it. */
		if ((out->fd = open(path, O_WRONLY | O_CLOEXEC)) < 0) {
			bnf_error("%s: cannot open for writing: %s", path, strerror(errno));
			goto fail;
		}
		return 0;
	}
	/* A regular file (or a new one): write beside the real target, then rename. */
	out->final_path = realpath(path, NULL);
	if (!out->final_path) {
		if (errno != ENOENT || !(out->final_path = bnf_strdup(path))) {
			bnf_error("%s: cannot resolve: %s", path, strerror(errno));
			goto fail;
		}
	}
	um = umask(0);
	umask(um);
	out->mode = (int)(0666 & ~um);
	if (stat(out->final_path, &st) == 0)
		out->mode = (int)(st.st_mode & 07777);
	slash = strrchr(out->final_path, '/');
	base = slash ? slash + 1 : out->final_path;
	if (!slash)
		dir = bnf_strdup(".");
	else if (slash == out->final_path)
		dir = bnf_strdup("/");
	else if ((dir = bnf_strdup(out->final_path)))
		dir[slash - out->final_path] = '\0';
	if (!dir || !(out->tmp_path = bnf_asprintf("%s/.%s.bnfold-XXXXXX", dir, base))) {
		bnf_error("%s: out of memory", path);
		goto fail;
	}
	hold_signals(true, &saved);
	if ((out->fd = mkstemp(out->tmp_path)) < 0) {
		int e = errno;
		hold_signals(false, &saved);
		bnf_error("%s: cannot create a file in '%s': %s", path, dir, strerror(e));
		free(out->tmp_path);
		out->tmp_path = NULL;
		goto fail;
	}
	if (strlen(out->tmp_path) < sizeof(pending_tmp)) {
		memcpy(pending_tmp, out->tmp_path, strlen(out->tmp_path) + 1);
		catch_signals();
	}
	hold_signals(false, &saved);
	free(dir);
	return 0;
fail:
	free(dir);
	bnf_output_abort(out);
	return -1;
}

static void flush_raw(bnf_output *out, const uint8_t *p, size_t n)
{
	while (n > 0 && !out->err) {
		ssize_t w = write(out->fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			out->err = errno;
			return;
		}
		if (w == 0) {
			out->err = EIO;
			return;
		}
		p += w;
		n -= (size_t)w;
	}
}

void bnf_output_write(bnf_output *out, const void *data, size_t len)
{
	if (out->err)
		return;
	if (out->used + len > OUT_BUF) {
		flush_raw(out, out->buf, out->used);
		out->used = 0;
	}
	if (len >= OUT_BUF) {
		flush_raw(out, data, len);
		return;
	}
	memcpy(out->buf + out->used, data, len);
	out->used += len;
}

typedef struct stream_buffer {
	ProtobufCBuffer base;
	bnf_output *out;
} stream_buffer;

static void stream_append(ProtobufCBuffer *b, size_t len, const uint8_t *data)
{
	bnf_output_write(((stream_buffer *)b)->out, data, len);
}

void bnf_output_write_model(bnf_output *out, const Onnx__ModelProto *m)
{
	stream_buffer sb = {{stream_append}, out};
	protobuf_c_message_pack_to_buffer(&m->base, &sb.base);
}

int bnf_output_commit(bnf_output *out)
{
	int rc = -1;
	flush_raw(out, out->buf, out->used);
	out->used = 0;
	if (out->err) {
		bnf_error("%s: cannot write: %s", strcmp(out->path, "-") == 0 ? "(stdout)" : out->path,
			  strerror(out->err));
		goto done;
	}
	if (out->tmp_path) {
		if (fchmod(out->fd, (mode_t)out->mode) < 0 || fsync(out->fd) < 0) {
			bnf_error("%s: cannot write: %s", out->path, strerror(errno));
			goto done;
		}
		if (close(out->fd) < 0) {
			out->fd = -1;
			bnf_error("%s: cannot write: %s", out->path, strerror(errno));
			goto done;
		}
		out->fd = -1;
		if (rename(out->tmp_path, out->final_path) < 0) {
			bnf_error("%s: cannot replace: %s", out->path, strerror(errno));
			goto done;
		}
		free(out->tmp_path);
		out->tmp_path = NULL;
		pending_tmp[0] = '\0';
	} else if (out->fd > 2 && close(out->fd) < 0) {
		out->fd = -1;
		bnf_error("%s: cannot write: %s", out->path, strerror(errno));
		goto done;
	} else if (out->fd == 1 && fflush(stdout) != 0) {
		bnf_error("(stdout): cannot write: %s", strerror(errno));
		goto done;
	}
	out->fd = -1;
	rc = 0;
done:
	bnf_output_abort(out);
	return rc;
}

void bnf_output_abort(bnf_output *out)
{
	if (out->fd > 2)
		close(out->fd);
	out->fd = -1;
	if (out->tmp_path) {
		unlink(out->tmp_path);
		free(out->tmp_path);
		out->tmp_path = NULL;
		pending_tmp[0] = '\0';
	}
	free(out->final_path);
	out->final_path = NULL;
	free(out->buf);
	out->buf = NULL;
}

int bnf_write_file(const char *path, const void *data, size_t len)
{
	bnf_output out;
	if (bnf_output_open(path, &out) < 0)
		return -1;
	bnf_output_write(&out, data, len);
	return bnf_output_commit(&out);
}
