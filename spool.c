/*
 * spool.c: a run's output in an unnamed file, and JSON streamed in bounded
 * chunks: the 16 MiB a program may print, 96 once escaped, are never held
 * in memory, once or twice.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "http.h"
#include "json.h"
#include "spool.h"

/* The most bytes one escaping step looks at: a UTF-8 sequence. */
#define STEP_LOOKAHEAD 4

void
spool_sink_count(struct spool_sink *s)
{
	s->fd = -1;
	s->positioned = false;
	s->idle_ms = 0;
	s->at = 0;
	s->failed = false;
	s->used = 0;
}

void
spool_sink_fd(struct spool_sink *s, int fd, bool positioned, int64_t idle_ms)
{
	spool_sink_count(s);
	s->fd = fd;
	s->positioned = positioned;
	s->idle_ms = idle_ms;
}

/* The gathered bytes to the descriptor, at their offset for a file. */
static int
write_out(struct spool_sink *s)
{
	off_t start = s->at - (off_t)s->used;
	size_t done = 0;
	ssize_t n;

	if (s->positioned) {
		for (; done < s->used; done += (size_t)n)
			if ((n = pwrite(s->fd, s->buf + done, s->used - done, start + (off_t)done)) <= 0 &&
			    !(n < 0 && errno == EINTR && (n = 0) == 0))
				return -1;
		return 0;
	}
	return http_send(s->fd, s->buf, s->used, s->idle_ms);
}

int
spool_flush(struct spool_sink *s)
{
	if (s->fd >= 0 && !s->failed && s->used > 0 && write_out(s) < 0)
		s->failed = true;
	s->used = 0;
	return s->failed ? -1 : 0;
}

void
spool_put(struct spool_sink *s, const char *data, size_t len)
{
	size_t take;

	if (s->fd < 0) {
		s->at += (off_t)len;
		return;
	}
	while (len > 0) {
		if (s->used == sizeof(s->buf))
			spool_flush(s);
		take = sizeof(s->buf) - s->used < len ? sizeof(s->buf) - s->used : len;
		memcpy(s->buf + s->used, data, take);
		s->used += take;
		s->at += (off_t)take;
		data += take;
		len -= take;
	}
}

void
spool_puts(struct spool_sink *s, const char *text)
{
	spool_put(s, text, strlen(text));
}

void
spool_put_jbuf(struct spool_sink *s, struct jbuf *b)
{
	spool_put(s, b->data ? b->data : "", b->len);
	if (b->failed)
		s->failed = true;
	jbuf_free(b);
}

void
spool_printf(struct spool_sink *s, const char *fmt, ...)
{
	char text[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(text)) {
		s->failed = true;  /* our own short texts only: never cut one */
		return;
	}
	spool_put(s, text, (size_t)n);
}

/* An unnamed file in dir: O_TMPFILE, else made and unlinked at once. */
static int
unnamed_in(const char *dir)
{
	char path[PATH_MAX];
	int fd;

	if (!dir || !*dir)
		return -1;
	if ((fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600)) >= 0)
		return fd;
	if (snprintf(path, sizeof(path), "%s/.lso-spool-XXXXXX", dir) >= (int)sizeof(path))
		return -1;
	if ((fd = mkostemp(path, O_CLOEXEC)) >= 0)
		unlink(path);
	return fd;
}

int
spool_open(void)
{
	const char *dirs[] = { config.state_dir, getenv("TMPDIR"), "/tmp" };
	int fd = -1, first_errno = 0;

	for (size_t i = 0; i < sizeof(dirs) / sizeof(*dirs) && fd < 0; i++) {
		fd = unnamed_in(dirs[i]);
		if (fd < 0 && !first_errno)
			first_errno = errno;
	}
	if (fd < 0)
		errno = first_errno ? first_errno : ENOENT;
	return fd;
}

int
spool_open_small(bool *in_memory)
{
	int fd = memfd_create("lso-spool", MFD_CLOEXEC);

	*in_memory = fd >= 0;
	return fd >= 0 ? fd : spool_open();
}

int
spool_open_for(off_t expected)
{
	bool in_memory;

	return expected <= SPOOL_IN_MEMORY_MAX_BYTES ? spool_open_small(&in_memory) : spool_open();
}

int
spool_spill(int *fd, bool *in_memory, off_t need)
{
	struct stat st;
	int file;

	if (!*in_memory || need <= SPOOL_IN_MEMORY_MAX_BYTES)
		return 0;
	if (fstat(*fd, &st) < 0 || (file = spool_open()) < 0)
		return -1;
	if (spool_append(file, *fd, 0, st.st_size) < 0) {
		int saved = errno;
		close(file);
		return errno = saved, -1;
	}
	close(*fd);
	*fd = file;
	*in_memory = false;
	return 0;
}

/*
 * One step of json_escape at u[0..left): how many bytes it takes (*in) and
 * how many it writes (returned). Looks at STEP_LOOKAHEAD bytes at most.
 */
static size_t
escape_step(const unsigned char *u, size_t left, size_t *in)
{
	*in = 1;
	if (u[0] == '\r') {
		*in = left > 1 && u[1] == '\n' ? 2 : 1;
		return 2;
	}
	if (u[0] == '"' || u[0] == '\\')
		return 2;
	if (u[0] < 0x20)
		return u[0] >= '\b' && u[0] <= '\r' && u[0] != 0x0b ? 2 : 6;
	if (u[0] < 0x80)
		return 1;
	if ((*in = json_utf8_len(u, left)) > 0)
		return *in;
	*in = 1;
	return 3;
}

/*
 * Where in buf[0..avail) a chunk may end so that escaping it alone gives
 * the bytes escaping the whole stream would: the start of a step that sees
 * all it looks at (at the end of the stream, everything). With budget, also
 * no further than fits in *used + budget bytes escaped; *used grows.
 */
static size_t
chunk_end(const char *buf, size_t avail, bool at_end, size_t budget, size_t *used)
{
	const unsigned char *u = (const unsigned char *)buf;
	size_t i = 0, in, out;

	while (i < avail && (at_end || avail - i >= STEP_LOOKAHEAD)) {
		out = escape_step(u + i, avail - i, &in);
		if (*used + out > budget)
			break;
		*used += out;
		i += in;
	}
	return i;
}

/*
 * Walk [from, from + len) of fd chunk by chunk; each chunk, as chunk_end
 * cuts it, goes escaped to s (when set); stops where the budget is spent.
 * How far it got, or -1.
 */
static off_t
walk(int fd, off_t from, off_t len, size_t budget, struct spool_sink *s)
{
	char buf[SPOOL_CHUNK_BYTES];
	struct jbuf escaped = { 0 };
	size_t have = 0, end, used = 0;
	off_t read_at = 0, done = 0;
	ssize_t n;

	while (done < len) {
		if (read_at < len && have < sizeof(buf)) {
			size_t want = sizeof(buf) - have;
			if ((off_t)want > len - read_at)
				want = (size_t)(len - read_at);
			if ((n = pread(fd, buf + have, want, from + read_at)) <= 0) {
				if (n < 0 && errno == EINTR)
					continue;
				jbuf_free(&escaped);
				return n == 0 ? (errno = EIO, -1) : -1;
			}
			have += (size_t)n;
			read_at += n;
		}
		end = chunk_end(buf, have, read_at == len, budget, &used);
		if (s && end > 0) {
			escaped.len = 0;
			json_escape(&escaped, buf, end, true);
			spool_put(s, escaped.data, escaped.len);
			if (escaped.failed)
				s->failed = true;
		}
		done += (off_t)end;
		memmove(buf, buf + end, have - end);
		have -= end;
		if (end == 0 && (read_at == len || have >= STEP_LOOKAHEAD))
			break;  /* the budget is spent */
	}
	jbuf_free(&escaped);
	return done;
}

int
spool_escape(struct spool_sink *s, int fd, off_t len)
{
	return spool_escape_range(s, fd, 0, len);
}

int
spool_escape_range(struct spool_sink *s, int fd, off_t from, off_t to)
{
	return walk(fd, from, to - from, SIZE_MAX, s) == to - from ? 0 : -1;
}

off_t
spool_fit(int fd, off_t len, size_t budget)
{
	return walk(fd, 0, len, budget, NULL);
}

int
spool_copy(struct spool_sink *s, int fd, off_t from, off_t to)
{
	char buf[SPOOL_CHUNK_BYTES];
	ssize_t n;

	for (; from < to; from += n) {
		size_t want = to - from < (off_t)sizeof(buf) ? (size_t)(to - from) : sizeof(buf);
		if ((n = pread(fd, buf, want, from)) <= 0)
			return n == 0 ? (errno = EIO, -1) : -1;
		spool_put(s, buf, (size_t)n);
	}
	return 0;
}

int
spool_last_byte(int fd, off_t len)
{
	unsigned char c;

	if (len <= 0 || pread(fd, &c, 1, len - 1) != 1)
		return -1;
	return c;
}

int
spool_append(int to, int from, off_t from_at, off_t len)
{
	char buf[SPOOL_CHUNK_BYTES];
	off_t to_at = lseek(to, 0, SEEK_END);
	ssize_t n;

	if (to_at < 0)
		return -1;
	while (len > 0) {
		n = copy_file_range(from, &from_at, to, &to_at, (size_t)len, 0);
		if (n < 0 && (errno == EXDEV || errno == EINVAL || errno == ENOSYS ||
		    errno == EOPNOTSUPP)) {
			n = pread(from, buf, (size_t)(len < (off_t)sizeof(buf) ? len : (off_t)sizeof(buf)), from_at);
			if (n > 0 && pwrite(to, buf, (size_t)n, to_at) != n)
				return -1;
			if (n > 0)
				from_at += n, to_at += n;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n == 0 ? (errno = EIO, -1) : -1;
		len -= n;
	}
	return 0;
}
