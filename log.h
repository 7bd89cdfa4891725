/* log.h: one log line per event (log.c). */
#ifndef LSO_LOG_H
#define LSO_LOG_H

#include <stddef.h>

/*
 * Log one line: to journald with the field LSO_JOB_ID=id when stderr is the
 * journal's, else to stderr. id may be NULL or "".
 */
void log_line(const char *id, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Look up once what every line of this process would read again: its
 * unit's name (burst mode: before it forks a child per connection).
 * log_unit_changed: the process moved to another unit (a job's scope).
 */
void log_preload(void);
void log_unit_changed(void);

/*
 * Burst mode: log_line hands journal messages to fd (a packet pipe) for the
 * burst process to forward with log_forward, one whole message (a datagram
 * of journald's native protocol) at a time. log_relay_drop: a job's
 * process, which outlives the burst process, logs directly again.
 */
void log_relay(int fd);
void log_relay_drop(void);
int log_forward(const char *msg, size_t len);

#endif
