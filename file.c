/* file.c: reading a file whole, for /proc, records and lock files. */
#include <fcntl.h>
#include <unistd.h>

#include "file.h"
#include "json.h"

char *
file_read_fd(int fd, size_t *len)
{
	struct jbuf b = { 0 };
	char buf[65536];
	ssize_t n;

	while ((n = read(fd, buf, sizeof(buf))) > 0)
		jbuf_add(&b, buf, (size_t)n);
	if (n < 0 || b.failed || !b.data) {
		jbuf_free(&b);
		return NULL;
	}
	*len = b.len;
	return b.data;
}

char *
file_read(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	char *text;

	if (fd < 0)
		return NULL;
	text = file_read_fd(fd, len);
	close(fd);
	return text;
}
