#include "fileio.h"

#include <errno.h>
#include <unistd.h>

int bnf_pread_in_full(int fd, void *buf, size_t len, uint64_t off, size_t *got)
{
	size_t n = 0;
	int rc = 0;
	while (n < len) {
		ssize_t r = pread(fd, (uint8_t *)buf + n, len - n, (off_t)(off + n));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			if (r == 0)
				errno = EIO;
			rc = -1;
			break;
		}
		n += (size_t)r;
	}
	if (got)
		*got = n;
	return rc;
}

long long bnf_read_in_full(int fd, void *buf, size_t len)
{
	size_t n = 0;
	while (n < len) {
		ssize_t r = read(fd, (uint8_t *)buf + n, len - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			break;
		n += (size_t)r;
	}
	return (long long)n;
}

int bnf_write_in_full(int fd, const void *buf, size_t len, size_t *done)
{
	size_t n = 0;
	int rc = 0;
	while (n < len) {
		ssize_t w = write(fd, (const uint8_t *)buf + n, len - n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			if (w == 0)
				errno = EIO;
			rc = -1;
			break;
		}
		n += (size_t)w;
	}
	if (done)
		*done = n;
	return rc;
}
