/* config.h: the configuration every part of lso reads, filled once at start (config.c). */
#ifndef LSO_CONFIG_H
#define LSO_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

/* Each field's variable, default and bounds are in config.c's settings table. */
struct config {
	const char *executables_root;  /* EXECUTABLES_ROOT_DIR, NULL: none */
	const char *state_dir;         /* LSO_STATE_DIR, $STATE_DIRECTORY, /var/lib/lso */
	bool sync_records;             /* LSO_SYNC_RECORDS: records on disk before a client hears of them */
	bool oauth2_active;            /* LSO_OAUTH2_ACTIVE: every route but the public ones needs the key */
	const char *api_key;           /* LSO_API_KEY or credential lso-api-key, NULL: none */
	const char *api_key_problem;   /* why there is none (for the log) */
	bool api_key_loaded;           /* api_key is read when a route first needs it */
	long executable_timeout_sec;   /* EXECUTABLE_TIMEOUT_SEC: one run */
	long callback_timeout_sec;     /* REQUEST_TIMEOUT_SEC: one callback or progress POST */
	long slot_count;               /* MAX_THREAD_POOL_WORKERS: slots, 0: min(32, ncpu + 4) */
	long max_queued;               /* LSO_MAX_QUEUED: async jobs waiting for a slot; more get 503 */
	size_t max_body_bytes;         /* LSO_MAX_BODY_BYTES */
	size_t max_output_bytes;       /* LSO_MAX_OUTPUT_BYTES */
	long read_timeout_sec;         /* LSO_READ_TIMEOUT_SEC */
	long callback_retries;         /* LSO_CALLBACK_RETRIES */
	const char *playbooks_root;    /* ANSIBLE_PLAYBOOKS_ROOT_DIR, NULL: none */
	const char *ansible_playbook;  /* ANSIBLE_PLAYBOOK, NULL: found on PATH */
	long playbook_idle_sec;        /* ANSIBLE_PLAYBOOK_TIMEOUT_SEC: silence that stops a run */
	long playbook_max_sec;         /* LSO_PLAYBOOK_MAX_SEC: overall bound of a run */
	const char *job_files_root;    /* JOB_FILES_ROOT_DIR, NULL: no job has files */
	const char *docs_assets_url;   /* LSO_DOCS_ASSETS_URL: where the doc pages' scripts come from */
	long max_connections;          /* LSO_MAX_CONNECTIONS: burst mode's children serving at once */
	long idle_exit_ms;             /* LSO_IDLE_EXIT_SEC (fractions too): burst mode's idle exit, 0: never */
	int host_tag;                  /* LSO_HOST_TAG: a job id's first byte (0..255), -1: random */
	const char *run_user;          /* LSO_RUN_USER: programs and playbooks run as it, NULL: as lso */
};

extern struct config config;

/* Fill config from the environment; NULL, or the name of the bad variable. */
const char *config_load(void);

/*
 * Is auth on, and with which key? The key is read on first use (the public
 * routes never open the credential). CONFIG_AUTH_BROKEN: on, but no usable
 * key; why says what is wrong, naming the setting. Fail closed: nothing is
 * served then.
 */
enum config_auth { CONFIG_AUTH_OFF, CONFIG_AUTH_ON, CONFIG_AUTH_BROKEN };
enum config_auth config_auth(const char **key, const char **why);

#endif
