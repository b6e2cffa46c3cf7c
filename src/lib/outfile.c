/* copy_file_range, sync_file_range and fallocate are Linux's;
 * BNF_USE_COPY_FILE_RANGE, BNF_USE_SYNC_FILE_RANGE and BNF_USE_FALLOCATE
 * (meson.build) say whether this build calls them: without, bytes are
 * copied through the buffer, the final fsync alone writes a temp file
 * back, and blocks are allocated as the writes come. */
#define _GNU_SOURCE
#include "outfile.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#if BNF_USE_FALLOCATE
#include <linux/magic.h>
#include <sys/vfs.h>
#endif

#include "common.h"
#include "fileio.h"

bool bnf_same_file(const char *a, const char *b)
{
	struct stat sa, sb;
	if (strcmp(a, "-") == 0 || strcmp(b, "-") == 0)
		return false;
	if (stat(a, &sa) < 0 || stat(b, &sb) < 0)
		return false;
	return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/* The process's umask, read where reading it changes nothing: umask(2)
 * sets it process-wide, and setting it to read it races with every other
 * thread creating a file.  -1 where /proc does not show it (no /proc,
 * Linux before 4.7). */
static int read_umask(void)
{
	char buf[4096], *p;
	long long n;
	int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	n = bnf_read_in_full(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	if (strncmp(buf, "Umask:", 6) == 0)
		p = buf + 6;
	else if ((p = strstr(buf, "\nUmask:")))
		p += 7;
	else
		return -1;
	return (int)(strtoul(p, NULL, 8) & 0777);
}

/* mkstemp with mode 0666 less the umask, applied by the kernel: for where
 * the umask cannot be read.  Fills the template's XXXXXX. */
static int create_unique(char *tmpl)
{
	static const char chars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
	char *x = tmpl + strlen(tmpl) - 6;
	unsigned char r[6];

	for (int tries = 0; tries < 1000; tries++) {
		int fd;
		if (getentropy(r, sizeof(r)) < 0)
			return -1;
		for (int i = 0; i < 6; i++)
			x[i] = chars[r[i] % (sizeof(chars) - 1)];
		if ((fd = open(tmpl, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0666)) >= 0 || errno != EEXIST)
			return fd;
	}
	errno = EEXIST;
	return -1;
}

/* Create out->tmp_path (a mkstemp template) and tell out->tempfile, with
 * the signals a program cleans up on blocked in between: a temp file never
 * exists unknown to its handler. */
static int create_temp(bnf_output *out, const char *path, const char *dir)
{
	sigset_t set, saved;
	int e;

	if (out->tempfile) {
		sigemptyset(&set);
		sigaddset(&set, SIGINT);
		sigaddset(&set, SIGTERM);
		sigaddset(&set, SIGHUP);
		pthread_sigmask(SIG_BLOCK, &set, &saved);
	}
	/* mode -1: a new file whose umask is unknown gets the temp file's mode */
	out->fd = out->mode >= 0 ? mkstemp(out->tmp_path) : create_unique(out->tmp_path);
	e = errno;
	if (out->fd >= 0 && out->tempfile)
		out->tempfile(out->tmp_path, true, out->tempfile_ctx);
	if (out->tempfile)
		pthread_sigmask(SIG_SETMASK, &saved, NULL);
	if (out->fd < 0) {
		bnf_fail(out->fail, BNFOLD_E_IO, "%s: cannot create a file in '%s': %s", path, dir, strerror(e));
		free(out->tmp_path);
		out->tmp_path = NULL;
		return -1;
	}
	if (out->mode < 0) {
		struct stat st;
		out->mode = fstat(out->fd, &st) == 0 ? (int)(st.st_mode & 07777) : 0644;
	}
	return 0;
}

/* A regular file (or a new one): write beside the real target (symlinks
 * resolved), with its permissions, then rename. */
static int open_temp(bnf_output *out, const char *path)
{
	struct stat st;
	char *dir = NULL;
	const char *slash, *base;
	int um, rc = -1;

	out->final_path = realpath(path, NULL);
	if (!out->final_path) {
		if (errno != ENOENT || !(out->final_path = bnf_strdup(path)))
			return bnf_fail(out->fail, BNFOLD_E_IO, "%s: cannot resolve: %s", path, strerror(errno));
	}
	um = read_umask();
	out->mode = um >= 0 ? (int)(0666 & ~um) : -1;
	if (stat(out->final_path, &st) == 0) {
		out->mode = (int)(st.st_mode & 07777);
		out->replaces = true;
	}
	slash = strrchr(out->final_path, '/');
	base = slash ? slash + 1 : out->final_path;
	if (!slash)
		dir = bnf_strdup(".");
	else if (slash == out->final_path)
		dir = bnf_strdup("/");
	else if ((dir = bnf_strdup(out->final_path)))
		dir[slash - out->final_path] = '\0';
	if (!dir || !(out->tmp_path = bnf_asprintf("%s/.%s.bnfold-XXXXXX", dir, base)))
		bnf_fail(out->fail, BNFOLD_E_NOMEM, "%s: out of memory", path);
	else
		rc = create_temp(out, path, dir);
	free(dir);
	return rc;
}

int bnf_output_open(const char *path, bnf_output *out, bnf_tempfile_fn tempfile, void *tempfile_ctx,
		    bnf_err *fail)
{
	struct stat st;

	memset(out, 0, sizeof(*out));
	out->fd = -1;
	out->sync = BNFOLD_SYNC_AUTO;
	out->tempfile = tempfile;
	out->tempfile_ctx = tempfile_ctx;
	out->fail = fail;
	/* a copy: the caller's string may be gone by the time commit names it */
	if (!(out->path = bnf_strdup(path)) || !(out->buf = malloc(BNF_OUT_BUF))) {
		bnf_fail(fail, BNFOLD_E_NOMEM, "%s: out of memory", path);
		goto fail;
	}
	if (strcmp(path, "-") == 0) {
		/* what the program has printed but not flushed goes first */
		fflush(stdout);
		out->fd = 1;
		return 0;
	}
	if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
		if (S_ISDIR(st.st_mode)) {
			bnf_fail(fail, BNFOLD_E_IO, "%s: is a directory", path);
			goto fail;
		}
		/* A device, FIFO or socket: write into it, never replace it. */
		if ((out->fd = open(path, O_WRONLY | O_CLOEXEC)) < 0) {
			bnf_fail(fail, BNFOLD_E_IO, "%s: cannot open for writing: %s", path, strerror(errno));
			goto fail;
		}
		return 0;
	}
	if (open_temp(out, path) < 0)
		goto fail;
	return 0;
fail:
	bnf_output_abort(out);
	return -1;
}

int bnf_output_open_memory(const char *name, size_t size, bnf_output *out, bnf_err *fail)
{
	return bnf_output_open_memory_from(name, size, NULL, NULL, out, fail);
}

int bnf_output_open_memory_from(const char *name, size_t size, void *(*alloc)(size_t size, void *ctx), void *ctx,
				bnf_output *out, bnf_err *fail)
{
	memset(out, 0, sizeof(*out));
	out->fd = -1;
	out->memory = true;
	out->mem_size = size;
	out->sync = BNFOLD_SYNC_NEVER;
	out->fail = fail;
	out->mem_borrowed = alloc != NULL;
	if (!(out->path = bnf_strdup(name)) || !(out->buf = alloc ? alloc(size, ctx) : malloc(size ? size : 1))) {
		bnf_fail(fail, BNFOLD_E_NOMEM, "%s: out of memory writing the model", name);
		bnf_output_abort(out);
		return -1;
	}
	return 0;
}

bool bnf_output_syncs(const bnf_output *out)
{
	return out->tmp_path && (out->sync == BNFOLD_SYNC_ALWAYS || (out->sync == BNFOLD_SYNC_AUTO && out->replaces));
}

void bnf_output_attach(bnf_output *out, bnf_output *data)
{
	out->data = data;
	data->sync = out->sync;
	out->replaces = data->replaces = out->replaces || data->replaces;
}

void bnf_output_expect(bnf_output *out, uint64_t bytes)
{
#if BNF_USE_FALLOCATE
	struct statfs sf;

	/* Measured on ext4 only, where blocks reserved this way are unwritten
	 * extents: nothing is written for them, and a write into one needs
	 * no reservation of its own.  (tmpfs, for one, would fill them with
	 * zeroed pages first.) */
	if (!out->tmp_path || out->reserved || bytes == 0 || bytes > (uint64_t)INT64_MAX ||
	    fstatfs(out->fd, &sf) < 0 || sf.f_type != EXT4_SUPER_MAGIC)
		return;
	/* advice only: a refusal (no space for all of it, say) leaves the
	 * writes to allocate as they go, and whatever it did reserve is cut
	 * off at commit all the same */
	(void)fallocate(out->fd, FALLOC_FL_KEEP_SIZE, 0, (off_t)bytes);
	out->reserved = true;
#else
	(void)out, (void)bytes;
#endif
}

/* Start writeback of what a temp file to be synced has gained since the
 * last call, in steps of WRITEBACK_STEP: the disk works while the rest is
 * computed, and fsync at the end waits for less.  A file that is not
 * synced is left to the kernel's own writeback, as cp's output is. */
#define WRITEBACK_STEP ((uint64_t)8 << 20)

static void wrote(bnf_output *out, uint64_t n)
{
	out->written += n;
#if BNF_USE_SYNC_FILE_RANGE
	if (out->written - out->flushing >= WRITEBACK_STEP && bnf_output_syncs(out)) {
		/* advice only: an error here shows again at fsync */
		(void)sync_file_range(out->fd, (off_t)out->flushing, (off_t)(out->written - out->flushing),
				      SYNC_FILE_RANGE_WRITE);
		out->flushing = out->written;
	}
#endif
}

/* Write n bytes at p to the file now, unless an error came first. */
static void write_raw(bnf_output *out, const uint8_t *p, size_t n)
{
	size_t done;
	int rc, e;
	if (n == 0 || out->err)
		return;
	rc = bnf_write_in_full(out->fd, p, n, &done);
	e = errno;
	wrote(out, done);
	if (rc < 0)
		out->err = e;
}

static void flush(bnf_output *out)
{
	if (out->memory) /* the buffer is the output */
		return;
	write_raw(out, out->buf, out->used);
	out->used = 0;
}

/* Room for len more bytes in an output in memory, else the error. */
static bool mem_room(bnf_output *out, size_t len)
{
	if (len <= out->mem_size - out->used)
		return true;
	if (!out->err)
		out->err = EOVERFLOW;
	return false;
}

void bnf_output_write(bnf_output *out, const void *data, size_t len)
{
	if (out->err || len == 0) /* protobuf-c appends empty fields as (NULL, 0) */
		return;
	if (out->memory) {
		if (mem_room(out, len)) {
			memcpy(out->buf + out->used, data, len);
			out->used += len;
		}
		return;
	}
	if (out->used + len > BNF_OUT_BUF)
		flush(out);
	if (len >= BNF_OUT_BUF) {
		write_raw(out, data, len);
		return;
	}
	memcpy(out->buf + out->used, data, len);
	out->used += len;
}

uint8_t *bnf_output_reserve(bnf_output *out, size_t want, size_t *room)
{
	if (out->memory) {
		*room = mem_room(out, want) ? out->mem_size - out->used : 0;
		return out->buf + out->used;
	}
	if (BNF_OUT_BUF - out->used < want)
		flush(out);
	*room = BNF_OUT_BUF - out->used;
	return out->buf + out->used;
}

void bnf_output_advance(bnf_output *out, size_t n)
{
	out->used += n;
}

/* Copy up to len bytes at off of fd to the end of out's temp file in the
 * kernel: the count copied, 0 at the end of fd, or -1 when the kernel
 * cannot copy between these files (or this build does not ask it to). */
static ssize_t kernel_copy(bnf_output *out, int fd, uint64_t off, size_t len)
{
#if BNF_USE_COPY_FILE_RANGE
	loff_t in_off = (loff_t)off;
	return out->tmp_path ? copy_file_range(fd, &in_off, out->fd, NULL, len, 0) : -1;
#else
	(void)out, (void)fd, (void)off, (void)len;
	return -1;
#endif
}

void bnf_output_copy(bnf_output *out, int fd, const char *path, uint64_t off, size_t len)
{
	size_t got;

	if (out->err)
		return;
	if (out->memory) {
		if (mem_room(out, len) && bnf_pread_in_full(fd, out->buf + out->used, len, off, &got) < 0) {
			out->err = errno;
			out->read_from = path;
		}
		out->used += out->err ? 0 : len;
		return;
	}
	flush(out);
	while (len > 0 && !out->err) {
		ssize_t n = kernel_copy(out, fd, off, len);
		size_t k = len < BNF_OUT_BUF ? len : BNF_OUT_BUF;
		if (n > 0) {
			off += (uint64_t)n;
			len -= (size_t)n;
			wrote(out, (uint64_t)n);
			continue;
		}
		if (n == 0 && out->tmp_path) { /* the input shrank under us */
			out->err = EIO;
			out->read_from = path;
			return;
		}
		/* not between these files: through the (empty) buffer */
		if (bnf_pread_in_full(fd, out->buf, k, off, &got) < 0) {
			int e = errno;
			write_raw(out, out->buf, got); /* what was read goes out first, as it would have */
			if (!out->err) {
				out->err = e;
				out->read_from = path;
			}
			return;
		}
		write_raw(out, out->buf, k);
		off += k;
		len -= k;
	}
}

/* Everything a commit does but the rename: write out the buffer, report
 * the first error, and close the file, a temp file with its mode set and
 * fsync'd when bnf_output_syncs says so. */
static int finish(bnf_output *out)
{
	flush(out);
	if (out->err && out->read_from)
		return bnf_fail(out->fail, BNFOLD_E_IO, "%s: cannot read: %s", out->read_from, strerror(out->err));
	if (out->err) /* ENOMEM: a computed payload found no memory to be computed in */
		return bnf_fail(out->fail, out->err == ENOMEM ? BNFOLD_E_NOMEM : BNFOLD_E_IO, "%s: cannot write: %s",
				strcmp(out->path, "-") == 0 ? "(stdout)" : out->path, strerror(out->err));
	if (out->reserved && ftruncate(out->fd, (off_t)out->written) < 0)
		return bnf_fail(out->fail, BNFOLD_E_IO, "%s: cannot write: %s", out->path, strerror(errno));
	if (out->tmp_path && (fchmod(out->fd, (mode_t)out->mode) < 0 || (bnf_output_syncs(out) && fsync(out->fd) < 0)))
		return bnf_fail(out->fail, BNFOLD_E_IO, "%s: cannot write: %s", out->path, strerror(errno));
	if (out->fd > 2 && close(out->fd) < 0) {
		out->fd = -1;
		return bnf_fail(out->fail, BNFOLD_E_IO, "%s: cannot write: %s", out->path, strerror(errno));
	}
	if (out->fd == 1 && fflush(stdout) != 0)
		return bnf_fail(out->fail, BNFOLD_E_IO, "(stdout): cannot write: %s", strerror(errno));
	out->fd = -1;
	return 0;
}

/* Replace final_path with the finished temp file, if there is one. */
static int place(bnf_output *out)
{
	if (!out->tmp_path)
		return 0;
	if (rename(out->tmp_path, out->final_path) < 0)
		return bnf_fail(out->fail, BNFOLD_E_IO, "%s: cannot replace: %s", out->path, strerror(errno));
	if (out->tempfile)
		out->tempfile(out->tmp_path, false, out->tempfile_ctx);
	free(out->tmp_path);
	out->tmp_path = NULL;
	return 0;
}

/* Whether a file has appeared at out's final path since it was opened:
 * the rename replaces it all the same. */
static void recheck_replaces(bnf_output *out)
{
	struct stat st;
	if (out->tmp_path && !out->replaces && stat(out->final_path, &st) == 0)
		out->replaces = true;
}

int bnf_output_commit(bnf_output *out)
{
	int rc = -1;

	recheck_replaces(out);
	if (out->data) {
		recheck_replaces(out->data);
		out->replaces = out->data->replaces = out->replaces || out->data->replaces;
	}
	/* Both files complete before either replaces anything, so a failure
	 * until then leaves both earlier files as they were; then the data
	 * file first: the model must not point at a missing one. */
	if ((out->data && finish(out->data) < 0) || finish(out) < 0)
		goto done;
	if ((out->data && place(out->data) < 0) || place(out) < 0)
		goto done;
	rc = 0;
done:
	bnf_output_abort(out); /* removes what is left: temp files, the data output */
	return rc;
}

int bnf_output_commit_memory(bnf_output *out, void **data, size_t *len)
{
	int rc = -1;

	if (out->err && out->read_from)
		bnf_fail(out->fail, BNFOLD_E_IO, "%s: cannot read: %s", out->read_from, strerror(out->err));
	else if (out->err == ENOMEM) /* a computed payload found no memory to be computed in */
		bnf_fail(out->fail, BNFOLD_E_NOMEM, "%s: out of memory writing the model", out->path);
	else if (out->err == EOVERFLOW || (!out->err && out->used != out->mem_size)) /* a wrong size announced: a bug */
		bnf_fail(out->fail, BNFOLD_E_IO, "%s: internal error: the model came out at %s bytes than announced",
			 out->path, out->err ? "more" : "fewer");
	else if (out->err)
		bnf_fail(out->fail, BNFOLD_E_IO, "%s: cannot write: %s", out->path, strerror(out->err));
	else
		rc = 0;
	if (rc == 0) {
		*data = out->buf;
		*len = out->used;
		out->buf = NULL;
	}
	bnf_output_abort(out);
	return rc;
}

void bnf_output_abort(bnf_output *out)
{
	if (out->data) {
		bnf_output_abort(out->data);
		free(out->data);
		out->data = NULL;
	}
	if (out->fd > 2)
		close(out->fd);
	out->fd = -1;
	if (out->tmp_path) {
		unlink(out->tmp_path);
		if (out->tempfile)
			out->tempfile(out->tmp_path, false, out->tempfile_ctx);
		free(out->tmp_path);
		out->tmp_path = NULL;
	}
	free(out->final_path);
	out->final_path = NULL;
	if (!out->mem_borrowed)
		free(out->buf);
	out->buf = NULL;
	free(out->path);
	out->path = NULL;
}

int bnf_write_file(const char *path, const void *data, size_t len, bnfold_sync sync, bnf_tempfile_fn tempfile,
		   void *tempfile_ctx, bnf_err *fail)
{
	bnf_output out;
	if (bnf_output_open(path, &out, tempfile, tempfile_ctx, fail) < 0)
		return -1;
	out.sync = sync;
	bnf_output_expect(&out, len);
	bnf_output_write(&out, data, len);
	return bnf_output_commit(&out);
}
