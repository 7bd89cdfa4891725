/* log.h: one log line per event (log.c). */
#ifndef LSO_LOG_H
#define LSO_LOG_H

/*
 * Log one line: to journald with the field LSO_JOB_ID=id when stderr is the
 * journal's, else to stderr. id may be NULL or "".
 */
void log_line(const char *id, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
