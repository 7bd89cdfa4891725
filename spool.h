/*
 * spool.h: a run's output kept in an unnamed file rather than in memory, and
 * JSON written a bounded chunk at a time: to a socket, into a file, or only
 * counted, so that a body's Content-Length is known before it is sent (spool.c).
 */
#ifndef LSO_SPOOL_H
#define LSO_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* How much is read from a spool, and gathered for the sink's descriptor, at once. */
#define SPOOL_CHUNK_BYTES 65536

/* Where JSON goes: counted only (fd -1), written at offsets of a file, or sent on a socket. */
struct spool_sink {
	int fd;            /* -1: count only */
	bool positioned;   /* pwrite from offset 0 (a file), else write (a socket) */
	int64_t idle_ms;   /* a socket: how long the client may take nothing */
	off_t at;          /* bytes put so far: the size once flushed */
	bool failed;       /* a write failed: the rest is dropped */
	size_t used;
	char buf[SPOOL_CHUNK_BYTES];
};

/* A sink that only counts, and one that writes to fd. */
void spool_sink_count(struct spool_sink *s);
void spool_sink_fd(struct spool_sink *s, int fd, bool positioned, int64_t idle_ms);

void spool_put(struct spool_sink *s, const char *data, size_t len);
void spool_puts(struct spool_sink *s, const char *text);
struct jbuf;
/* b put (a failed b fails the sink), then freed. */
void spool_put_jbuf(struct spool_sink *s, struct jbuf *b);
void spool_printf(struct spool_sink *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* What is gathered, written; -1 if any write failed. */
int spool_flush(struct spool_sink *s);

/*
 * An unnamed file for a run's output, gone at close: O_TMPFILE in the state
 * directory (disk), else in $TMPDIR or /tmp; else a file made there and
 * unlinked at once. -1 with errno when none can be had.
 */
int spool_open(void);

/*
 * A run's output up to this size stays in memory (memfd): an unnamed file
 * on disk costs an inode created and freed per run (on ext4 without a
 * journal each freed one slows the next creations, see record.c). Past it,
 * spool_spill moves it to a file.
 */
#define SPOOL_IN_MEMORY_MAX_BYTES (256 * 1024)

/* A spool that starts in memory (*in_memory), else on disk; -1 with errno. */
int spool_open_small(bool *in_memory);

/* A spool for about expected bytes: in memory when that is small, else on disk. */
int spool_open_for(off_t expected);

/*
 * Before a spool in memory grows to need bytes: past
 * SPOOL_IN_MEMORY_MAX_BYTES, its bytes so far move to spool_open's file,
 * which replaces *fd. -1 with errno (the spool is left as it was).
 */
int spool_spill(int *fd, bool *in_memory, off_t need);

/* bytes [0, len) of fd escaped as json_escape does (newlines translated) into s; -1: unreadable. */
int spool_escape(struct spool_sink *s, int fd, off_t len);

/* The same for bytes [from, to) of fd, escaped as a stream of their own. */
int spool_escape_range(struct spool_sink *s, int fd, off_t from, off_t to);

/* Bytes [from, to) of fd into s as they are; -1 with errno. */
int spool_copy(struct spool_sink *s, int fd, off_t from, off_t to);

/* How many bytes of [0, len) of fd escape into at most budget bytes (json_escape_fit); -1 errno. */
off_t spool_fit(int fd, off_t len, size_t budget);

/* The last byte of [0, len) of fd; -1 when len is 0 or unreadable. */
int spool_last_byte(int fd, off_t len);

/* Copy [from_at, from_at + len) of from to the end of to, in the kernel where it can; -1 errno. */
int spool_append(int to, int from, off_t from_at, off_t len);

#endif
