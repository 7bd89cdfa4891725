/* config.h: the configuration every part of lso reads, filled once at start (config.c). */
#ifndef LSO_CONFIG_H
#define LSO_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

/* Each field's variable, default and bounds are in config.c's settings table. */
struct config {
	const char *executables_root;  /* EXECUTABLES_ROOT_DIR, NULL: none */
	const char *state_dir;         /* LSO_STATE_DIR, $STATE_DIRECTORY, /var/lib/lso */
	const char *api_token;         /* LSO_API_TOKEN or credential lso-token, NULL: off */
	bool api_token_loaded;         /* api_token is read when a route first needs it */
	long executable_timeout_sec;   /* EXECUTABLE_TIMEOUT_SEC: one run */
	long callback_timeout_sec;     /* REQUEST_TIMEOUT_SEC: one callback or progress POST */
	long slot_count;               /* MAX_THREAD_POOL_WORKERS: slots, 0: min(32, ncpu + 4) */
	size_t max_body_bytes;         /* LSO_MAX_BODY_BYTES */
	size_t max_output_bytes;       /* LSO_MAX_OUTPUT_BYTES */
	long read_timeout_sec;         /* LSO_READ_TIMEOUT_SEC */
	long callback_retries;         /* LSO_CALLBACK_RETRIES */
	const char *playbooks_root;    /* ANSIBLE_PLAYBOOKS_ROOT_DIR, NULL: none */
	const char *ansible_playbook;  /* ANSIBLE_PLAYBOOK, NULL: found on PATH */
	long playbook_idle_sec;        /* ANSIBLE_PLAYBOOK_TIMEOUT_SEC: silence that stops a run */
	long playbook_max_sec;         /* LSO_PLAYBOOK_MAX_SEC: overall bound of a run */
};

extern struct config config;

/* Fill config from the environment; NULL, or the name of the bad variable. */
const char *config_load(void);

/* The API token, read on first use (/api/version never opens the credential); NULL: none. */
const char *config_api_token(void);

#endif
