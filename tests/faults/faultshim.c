/* Fault injection for the output tests, loaded into bnfold with LD_PRELOAD
 * (tests/faults/test_faults.py); never part of bnfold itself.
 *
 * It acts only on files whose path contains $BNFOLD_FAULT_MATCH (for a
 * descriptor: the path /proc/self/fd shows), so the input, stderr and other
 * files behave normally.  Each variable below is optional:
 *
 *   BNFOLD_FAULT_WRITE_AFTER=N  after N bytes in total, write() fails: the
 *                               write that crosses N is cut short at N, the
 *                               next one fails with BNFOLD_FAULT_ERRNO
 *   BNFOLD_FAULT_ERRNO=NAME     ENOSPC (default), EIO, EDQUOT, EFBIG, ...
 *   BNFOLD_FAULT_SHORT=K        every write() writes at most K bytes
 *   BNFOLD_FAULT_DELAY_MS=MS    sleep before every write(); first creates the
 *                               file $BNFOLD_FAULT_READY, so a test knows a
 *                               write is under way
 *   BNFOLD_FAULT_FSYNC=NAME     fsync() fails with that errno
 *   BNFOLD_FAULT_FALLOCATE=NAME fallocate() of a match fails (nothing reserved)
 *   BNFOLD_FAULT_FTRUNCATE=NAME ftruncate() of a match fails
 *   BNFOLD_FAULT_SPACE_LOG=FILE append a line "CALL PATH" to FILE for every
 *                               fallocate() and ftruncate() of a match
 *   BNFOLD_FAULT_CLOSE=NAME     close() closes, then reports that errno
 *   BNFOLD_FAULT_RENAME=NAME    rename() onto or from a match fails
 *   BNFOLD_FAULT_CREATE=NAME    mkstemp() / open(O_CREAT) of a match fails
 *   BNFOLD_FAULT_OPEN=NAME      any open() of a match fails (e.g. a match of
 *                               /proc/self/status, to hide it)
 *   BNFOLD_FAULT_NO_UMASK=1     umask() aborts: it sets the mask process-wide,
 *                               which a library must not do
 *   BNFOLD_FAULT_SYNC_LOG=FILE  append a line "CALL PATH" to FILE for every
 *                               fsync(), fdatasync() and sync_file_range() of
 *                               a match (then call it as usual)
 */
#define _GNU_SOURCE
/* Define the plain and the 64-bit names both, whichever bnfold was built to call. */
#undef _FILE_OFFSET_BITS
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static unsigned long long written;

static int errno_by_name(const char *name)
{
	static const struct { const char *name; int value; } names[] = {
		{"ENOSPC", ENOSPC}, {"EIO", EIO}, {"EDQUOT", EDQUOT}, {"EFBIG", EFBIG},
		{"EROFS", EROFS}, {"EACCES", EACCES}, {"EPERM", EPERM}, {"EXDEV", EXDEV},
		{"ENOENT", ENOENT}, {"EINTR", EINTR},
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(names[i].name, name) == 0)
			return names[i].value;
	return EIO;
}

/* The errno variable `var` names, or 0 when it is unset. */
static int fault(const char *var)
{
	const char *v = getenv(var);
	return v && *v ? errno_by_name(v) : 0;
}

static int path_matches(const char *path)
{
	const char *m = getenv("BNFOLD_FAULT_MATCH");
	return path && m && *m && strstr(path, m) != NULL;
}

static int fd_matches(int fd)
{
	char link[64], path[4096];
	ssize_t n;
	if (fd < 0)
		return 0;
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, path, sizeof(path) - 1);
	if (n < 0)
		return 0;
	path[n] = '\0';
	return path_matches(path);
}

#define REAL(name) ((__typeof__(&name))dlsym(RTLD_NEXT, #name))

/* The fault $var asks for on fd: -1 with errno set when fd is a match
 * and var names an errno, else 0 (call the real function). */
static int fd_fault(const char *var, int fd)
{
	int e = fault(var);
	if (e && fd_matches(fd)) {
		errno = e;
		return -1;
	}
	return 0;
}

ssize_t write(int fd, const void *buf, size_t n)
{
	const char *after = getenv("BNFOLD_FAULT_WRITE_AFTER"), *s = getenv("BNFOLD_FAULT_SHORT");
	const char *delay = getenv("BNFOLD_FAULT_DELAY_MS"), *ready = getenv("BNFOLD_FAULT_READY");
	ssize_t r;

	if (!fd_matches(fd))
		return REAL(write)(fd, buf, n);
	if (delay && *delay) {
		long ms = atol(delay);
		struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
		if (ready && *ready) {
			int rfd = REAL(open)(ready, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
			if (rfd >= 0)
				REAL(close)(rfd);
		}
		nanosleep(&ts, NULL);
	}
	if (s && *s && (size_t)atol(s) < n)
		n = (size_t)atol(s);
	if (after && *after) {
		unsigned long long limit = strtoull(after, NULL, 10);
		if (written >= limit) {
			errno = fault("BNFOLD_FAULT_ERRNO") ? fault("BNFOLD_FAULT_ERRNO") : ENOSPC;
			return -1;
		}
		if (n > limit - written)
			n = (size_t)(limit - written);
	}
	r = REAL(write)(fd, buf, n);
	if (r > 0)
		written += (unsigned long long)r;
	return r;
}

/* Note a call on fd in the log file $var names, if fd is a match. */
static void log_call(const char *var, const char *call, int fd)
{
	const char *log = getenv(var);
	char link[64], path[4096], line[4200];
	ssize_t n;
	int lfd, saved = errno;

	if (!log || !*log || !fd_matches(fd))
		return;
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, path, sizeof(path) - 1);
	path[n < 0 ? 0 : n] = '\0';
	n = snprintf(line, sizeof(line), "%s %s\n", call, path);
	lfd = REAL(open)(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (lfd >= 0) {
		(void)!REAL(write)(lfd, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
		REAL(close)(lfd);
	}
	errno = saved;
}

/* Note a sync call on fd in $BNFOLD_FAULT_SYNC_LOG, if fd is a match. */
static void log_sync(const char *call, int fd)
{
	log_call("BNFOLD_FAULT_SYNC_LOG", call, fd);
}

int fsync(int fd)
{
	log_sync("fsync", fd);
	return fd_fault("BNFOLD_FAULT_FSYNC", fd) < 0 ? -1 : REAL(fsync)(fd);
}

int fdatasync(int fd)
{
	log_sync("fdatasync", fd);
	return REAL(fdatasync)(fd);
}

int sync_file_range(int fd, off64_t off, off64_t len, unsigned int flags)
{
	log_sync("sync_file_range", fd);
	return REAL(sync_file_range)(fd, off, len, flags);
}

static int fallocate_checked(int fd, int mode, off64_t off, off64_t len, int (*real)(int, int, off64_t, off64_t))
{
	log_call("BNFOLD_FAULT_SPACE_LOG", "fallocate", fd);
	return fd_fault("BNFOLD_FAULT_FALLOCATE", fd) < 0 ? -1 : real(fd, mode, off, len);
}

int fallocate(int fd, int mode, off_t off, off_t len)
{
	return fallocate_checked(fd, mode, off, len, REAL(fallocate64));
}

int fallocate64(int fd, int mode, off64_t off, off64_t len)
{
	return fallocate_checked(fd, mode, off, len, REAL(fallocate64));
}

static int ftruncate_checked(int fd, off64_t len)
{
	log_call("BNFOLD_FAULT_SPACE_LOG", "ftruncate", fd);
	return fd_fault("BNFOLD_FAULT_FTRUNCATE", fd) < 0 ? -1 : REAL(ftruncate64)(fd, len);
}

int ftruncate(int fd, off_t len)
{
	return ftruncate_checked(fd, len);
}

int ftruncate64(int fd, off64_t len)
{
	return ftruncate_checked(fd, len);
}

int close(int fd)
{
	int e = fault("BNFOLD_FAULT_CLOSE");
	int match = e && fd_matches(fd);
	int r = REAL(close)(fd);
	if (match && r == 0) {
		errno = e;
		return -1;
	}
	return r;
}

int rename(const char *from, const char *to)
{
	int e = fault("BNFOLD_FAULT_RENAME");
	if (e && (path_matches(from) || path_matches(to))) {
		errno = e;
		return -1;
	}
	return REAL(rename)(from, to);
}

int mkstemp(char *tmpl)
{
	int e = fault("BNFOLD_FAULT_CREATE");
	if (e && path_matches(tmpl)) {
		errno = e;
		return -1;
	}
	return REAL(mkstemp)(tmpl);
}

int mkstemp64(char *tmpl)
{
	int e = fault("BNFOLD_FAULT_CREATE");
	if (e && path_matches(tmpl)) {
		errno = e;
		return -1;
	}
	return REAL(mkstemp64)(tmpl);
}

mode_t umask(mode_t mask)
{
	const char *v = getenv("BNFOLD_FAULT_NO_UMASK");
	if (v && *v) {
		static const char msg[] = "faultshim: umask() called\n";
		(void)!REAL(write)(2, msg, sizeof(msg) - 1);
		abort();
	}
	return REAL(umask)(mask);
}

static int open_checked(const char *path, int flags, mode_t mode, int (*real)(const char *, int, ...))
{
	int e = fault("BNFOLD_FAULT_CREATE"), any = fault("BNFOLD_FAULT_OPEN");
	if (((flags & (O_CREAT | O_TMPFILE)) && e && path_matches(path)) || (any && path_matches(path))) {
		errno = any && path_matches(path) ? any : e;
		return -1;
	}
	return real(path, flags, mode);
}

int open(const char *path, int flags, ...)
{
	mode_t mode = 0;
	if (flags & (O_CREAT | O_TMPFILE)) {
		va_list ap;
		va_start(ap, flags);
		mode = (mode_t)va_arg(ap, int);
		va_end(ap);
	}
	return open_checked(path, flags, mode, REAL(open));
}

int open64(const char *path, int flags, ...)
{
	mode_t mode = 0;
	if (flags & (O_CREAT | O_TMPFILE)) {
		va_list ap;
		va_start(ap, flags);
		mode = (mode_t)va_arg(ap, int);
		va_end(ap);
	}
	return open_checked(path, flags, mode, REAL(open64));
}
