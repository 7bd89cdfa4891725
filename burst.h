/*
 * burst.h: burst mode. Handed a listening socket (lso-burst.socket,
 * Accept=no), lso accepts connections itself and forks a child per
 * connection that serves exactly one request with lso_serve, bounded by
 * LSO_MAX_CONNECTIONS, and exits after LSO_IDLE_EXIT_SEC without a
 * connection in flight; systemd starts it again on the next one.
 */
#ifndef LSO_BURST_H
#define LSO_BURST_H

#include <stdbool.h>

/* Is fd a listening stream socket (the handover of burst mode)? */
bool burst_is_listening(int fd);

/*
 * Serve the connections of listen_fd until idle or SIGTERM/SIGINT, with the
 * loaded configuration; returns lso's exit code.
 */
int burst_serve(int listen_fd);

#endif
