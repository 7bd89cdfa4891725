/* lso.h: the configuration every part of lso reads, filled once at start. */
#ifndef LSO_H
#define LSO_H

#include <stddef.h>

#ifndef LSO_VERSION
#define LSO_VERSION "0.0.0"
#endif
#define LSO_API_VERSION "2.0"

/* Exit codes: configuration errors apart from system errors. */
#define EXIT_CONFIG 78   /* EX_CONFIG */
#define EXIT_SYSTEM 71   /* EX_OSERR */

struct config {
	const char *executables_root;  /* EXECUTABLES_ROOT_DIR, NULL: none */
	const char *state_dir;         /* LSO_STATE_DIR, $STATE_DIRECTORY, /var/lib/lso */
	const char *api_token;         /* LSO_API_TOKEN or credential lso-token, NULL: off */
	bool api_token_loaded;         /* api_token is read when a route first needs it */
	long executable_timeout_sec;   /* EXECUTABLE_TIMEOUT_SEC */
	long request_timeout_sec;      /* REQUEST_TIMEOUT_SEC: one callback POST */
	long max_workers;              /* MAX_THREAD_POOL_WORKERS, 0: min(32, ncpu + 4) */
	size_t max_body_bytes;         /* LSO_MAX_BODY_BYTES */
	size_t max_output_bytes;       /* LSO_MAX_OUTPUT_BYTES */
	long read_timeout_sec;         /* LSO_READ_TIMEOUT_SEC */
	long callback_retries;         /* LSO_CALLBACK_RETRIES */
	const char *playbooks_root;    /* ANSIBLE_PLAYBOOKS_ROOT_DIR, NULL: none */
	const char *ansible_playbook;  /* ANSIBLE_PLAYBOOK, NULL: found on PATH */
	long playbook_idle_sec;        /* ANSIBLE_PLAYBOOK_TIMEOUT_SEC: silence that stops a run */
	long playbook_max_sec;         /* LSO_PLAYBOOK_MAX_SEC: overall bound of a run */
	long max_connections;          /* LSO_MAX_CONNECTIONS: burst mode's children at once */
	long idle_exit_ms;             /* LSO_IDLE_EXIT_SEC (fractions too): burst mode's idle exit, 0: never */
};

extern struct config config;

/* Fill config from the environment; NULL, or the name of the bad variable. */
const char *lso_config_load(void);

/*
 * Serve one request on the connection (in_fd, out_fd) with the loaded
 * configuration: read, route, answer, close, log. The same code serves every
 * launcher and the fuzz harnesses.
 */
void lso_serve(int in_fd, int out_fd);

#endif
