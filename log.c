/* log.c: log lines, to journald by its native protocol, else to stderr. */
#include <stdarg.h>
#include <stdbool.h>
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

/*
 * Our unit (instance or job scope): the last component of our cgroup, on the
 * first line of /proc/self/cgroup that ends in one. NULL outside a unit.
 */
static char *
own_unit(void)
{
	size_t len;
	char *text = file_read("/proc/self/cgroup", &len), *unit = NULL, *save, *line, *name;

	for (line = text ? strtok_r(text, "\n", &save) : NULL; line && !unit;
	    line = strtok_r(NULL, "\n", &save))
		if ((name = strrchr(line, '/')) && (strstr(name, ".service") || strstr(name, ".scope")))
			unit = strdup(name + 1);
	free(text);
	return unit;
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
	struct sockaddr_un addr = { .sun_family = AF_UNIX, .sun_path = "/run/systemd/journal/socket" };
	struct jbuf msg = { 0 };
	char *unit = own_unit();
	int fd, r = -1;

	jbuf_puts(&msg, "SYSLOG_IDENTIFIER=lso\nPRIORITY=6\nMESSAGE=");
	jbuf_add(&msg, line, strcspn(line, "\n"));
	if (id && *id)
		jbuf_printf(&msg, "\nLSO_JOB_ID=%s", id);
	if (unit)
		jbuf_printf(&msg, "\nOBJECT_SYSTEMD_UNIT=%s", unit);
	free(unit);
	jbuf_add(&msg, "\n", 1);
	fd = msg.failed ? -1 : socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd >= 0) {
		r = sendto(fd, msg.data, msg.len, MSG_NOSIGNAL, (struct sockaddr *)&addr,
		    sizeof(addr)) == (ssize_t)msg.len ? 0 : -1;
		close(fd);
	}
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
