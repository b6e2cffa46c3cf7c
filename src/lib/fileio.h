/* The loops every file read and write needs, written once: retry on EINTR,
 * go on after a short count, and tell end of file from an error. */
#ifndef BNF_FILEIO_H
#define BNF_FILEIO_H

#include <stddef.h>
#include <stdint.h>

/* Read len bytes at offset off of fd into buf.  0, or -1 with errno set
 * (EIO when the file ends first); *got (may be NULL) holds the bytes read. */
int bnf_pread_in_full(int fd, void *buf, size_t len, uint64_t off, size_t *got);
/* Read up to len bytes from fd's position: the count read, which is below
 * len only at end of file; -1 with errno set on an error. */
long long bnf_read_in_full(int fd, void *buf, size_t len);
/* Write len bytes to fd.  0, or -1 with errno set (EIO when write returns 0);
 * *done (may be NULL) holds the bytes written. */
int bnf_write_in_full(int fd, const void *buf, size_t len, size_t *done);

#endif
