/* log.c: log lines, to journald by its native protocol, else to stderr. */
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "file.h"
#include "http.h"
#include "json.h"
#include "log.h"

/* Is stderr journald's stream ($JOURNAL_STREAM names its device and inode)? */
static bool
stderr_is_journal(void)
{
	const char *stream = getenv("JOURNAL_STREAM");
	unsigned long dev, ino;
	struct stat st;

	return stream && sscanf(stream, "%lu:%lu", &dev, &ino) == 2 && fstat(2, &st) == 0 &&
	    st.st_dev == (dev_t)dev && st.st_ino == (ino_t)ino;
}

/* Our unit's name as log_preload found it (burst mode: once for all children). */
static bool unit_known;
static char *unit_preloaded;    /* NULL: not in a unit */

/*
 * Burst mode: the connection children hand their journal messages to the
 * burst process through this packet pipe (log_relay), which forwards them
 * (log_forward). journald gathers a sender's metadata from /proc once per
 * process it has not seen lately: for a child per request that was most of
 * what a request line cost it (~0.15 ms of CPU, against ~0.02 ms from a
 * process it knows). -1: send directly.
 */
static int relay_fd = -1;

/*
 * Our unit (instance or job scope): the last component of our cgroup, on the
 * first line of /proc/self/cgroup that ends in one. NULL outside a unit.
 */
static char *
own_unit(void)
{
	size_t len;
	char *text, *unit = NULL, *save, *line, *name;

	if (unit_known)
		return unit_preloaded ? strdup(unit_preloaded) : NULL;
	text = file_read("/proc/self/cgroup", &len);

	for (line = text ? strtok_r(text, "\n", &save) : NULL; line && !unit;
	    line = strtok_r(NULL, "\n", &save))
		if ((name = strrchr(line, '/')) && (strstr(name, ".service") || strstr(name, ".scope")))
			unit = strdup(name + 1);
	free(text);
	return unit;
}

void
log_preload(void)
{
	unit_preloaded = own_unit();
	unit_known = true;
}

void
log_unit_changed(void)
{
	free(unit_preloaded);
	unit_preloaded = NULL;
	unit_known = false;
}

void
log_relay(int fd)
{
	relay_fd = fd;
}

void
log_relay_drop(void)
{
	if (relay_fd >= 0)
		close(relay_fd);
	relay_fd = -1;
}

int
log_forward(const char *msg, size_t len)
{
	static const struct sockaddr_un addr = { .sun_family = AF_UNIX,
		.sun_path = "/run/systemd/journal/socket" };
	static int fd = -1;

	if (fd < 0 && (fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0)
		return -1;
	return sendto(fd, msg, len, MSG_NOSIGNAL, (const struct sockaddr *)&addr,
	    sizeof(addr)) == (ssize_t)len ? 0 : -1;
}

/*
 * Send a line to journald with structured fields, by its native protocol
 * (one datagram): cheaper per request than loading libsystemd for sd_journal_send.
 * journald looks up the sender's unit when it reads the datagram, by then
 * maybe after we exited: OBJECT_SYSTEMD_UNIT (which journalctl -u matches for
 * root's messages) names it in any case.
 */
static int
journal_send(const char *line, const char *id)
{
	struct jbuf msg = { 0 };
	char *unit = own_unit();
	int r = -1;

	jbuf_puts(&msg, "SYSLOG_IDENTIFIER=lso\nPRIORITY=6\nMESSAGE=");
	jbuf_add(&msg, line, strcspn(line, "\n"));
	if (id && *id)
		jbuf_printf(&msg, "\nLSO_JOB_ID=%s", id);
	if (unit)
		jbuf_printf(&msg, "\nOBJECT_SYSTEMD_UNIT=%s", unit);
	free(unit);
	jbuf_add(&msg, "\n", 1);
	/* One packet, whole or not at all (at most PIPE_BUF); a full relay: directly. */
	if (!msg.failed && relay_fd >= 0 && msg.len <= PIPE_BUF &&
	    write(relay_fd, msg.data, msg.len) == (ssize_t)msg.len)
		r = 0;
	else if (!msg.failed)
		r = log_forward(msg.data, msg.len);
	jbuf_free(&msg);
	return r;
}

void
log_line(const char *id, const char *fmt, ...)
{
	char line[LOG_LINE_MAX_BYTES];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (WITH_SYSTEMD && stderr_is_journal() && journal_send(line, id) == 0)
		return;
	fprintf(stderr, "%s\n", line);
}
