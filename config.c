/* config.c: the settings table (variable, field, default, bounds) and the API key's credential. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "docs.h"
#include "http.h"

struct config config;

/* Where the API key may be when LSO_API_KEY is not set: a systemd credential. */
#define API_KEY_CREDENTIAL "lso-api-key"
/* LSO_READ_TIMEOUT_SEC's default, also in force while the settings are read. */
#define READ_TIMEOUT_SEC_DEFAULT 10

/* A numeric setting: a count or seconds (number), or a size in bytes (bytes). */
struct number_setting {
	const char *variable;
	long *number;
	size_t *bytes;
	long long fallback, min, max;
};

static const struct number_setting number_settings[] = {
	{ "EXECUTABLE_TIMEOUT_SEC", &config.executable_timeout_sec, NULL, 300, 1, SETTING_SECONDS_MAX },
	{ "REQUEST_TIMEOUT_SEC", &config.callback_timeout_sec, NULL, 10, 1, SETTING_SECONDS_MAX },
	/* 0: decided when a job first needs a slot */
	{ "MAX_THREAD_POOL_WORKERS", &config.slot_count, NULL, 0, 0, SETTING_SLOTS_MAX },
	/* Each queued job is a process (its runner): past this, 503 rather than without bound. */
	{ "LSO_MAX_QUEUED", &config.max_queued, NULL, 64, 1, SETTING_QUEUED_MAX },
	{ "LSO_MAX_BODY_BYTES", NULL, &config.max_body_bytes, 1048576, 1, SETTING_BYTES_MAX },
	{ "LSO_MAX_OUTPUT_BYTES", NULL, &config.max_output_bytes, 16777216, 1, SETTING_BYTES_MAX },
	{ "LSO_READ_TIMEOUT_SEC", &config.read_timeout_sec, NULL, READ_TIMEOUT_SEC_DEFAULT, 1,
	    SETTING_SECONDS_MAX },
	{ "LSO_CALLBACK_RETRIES", &config.callback_retries, NULL, 5, 0, SETTING_RETRIES_MAX },
	{ "ANSIBLE_PLAYBOOK_TIMEOUT_SEC", &config.playbook_idle_sec, NULL, 300, 1, SETTING_SECONDS_MAX },
	{ "LSO_PLAYBOOK_MAX_SEC", &config.playbook_max_sec, NULL, 86400, 1, SETTING_SECONDS_MAX },
	{ "LSO_MAX_CONNECTIONS", &config.max_connections, NULL, 64, 1, SETTING_CONNECTIONS_MAX },
};

/* A duration in seconds with up to three decimals ("30", "0.25"), kept in milliseconds. */
struct duration_setting {
	const char *variable;
	long *ms;
	long long fallback_ms, max_ms;
};

static const struct duration_setting duration_settings[] = {
	/* 0: never */
	{ "LSO_IDLE_EXIT_SEC", &config.idle_exit_ms, 30000, SETTING_SECONDS_MAX * 1000 },
};

/* A text setting: the variable, else a second one, else the default; "" counts as unset. */
struct text_setting {
	const char *variable;
	const char **text;
	const char *fallback_variable;
	const char *fallback;
};

static const struct text_setting text_settings[] = {
	{ "ANSIBLE_PLAYBOOKS_ROOT_DIR", &config.playbooks_root, NULL, NULL },
	{ "ANSIBLE_PLAYBOOK", &config.ansible_playbook, NULL, NULL },
	{ "EXECUTABLES_ROOT_DIR", &config.executables_root, NULL, NULL },
	{ "LSO_STATE_DIR", &config.state_dir, "STATE_DIRECTORY", "/var/lib/lso" },
	{ "JOB_FILES_ROOT_DIR", &config.job_files_root, NULL, NULL },
	{ "LSO_DOCS_ASSETS_URL", &config.docs_assets_url, NULL, DOCS_ASSETS_URL_DEFAULT },
	/* A user name or a uid; looked up when a run needs it (runuser.c). */
	{ "LSO_RUN_USER", &config.run_user, NULL, NULL },
};

/* A yes/no setting, read as pydantic reads a bool; "" counts as unset. */
struct flag_setting {
	const char *variable;
	bool *flag;
	bool fallback;
};

static const struct flag_setting flag_settings[] = {
	{ "LSO_OAUTH2_ACTIVE", &config.oauth2_active, false },
	{ "LSO_SYNC_RECORDS", &config.sync_records, true },
};

#define STRING(x) STRING_OF(x)
#define STRING_OF(x) #x
#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static const char *
env_or(const char *name, const char *fallback)
{
	const char *value = name ? getenv(name) : NULL;

	return value && *value ? value : fallback;
}

/* A positive whole number from the environment, or the default; -1 when malformed. */
static long long
env_number(const char *name, long long fallback)
{
	const char *value = getenv(name);
	char *end;
	long long n;

	if (!value || !*value)
		return fallback;
	errno = 0;
	n = strtoll(value, &end, 10);
	if (errno || *end || n < 0)
		return -1;
	return n;
}

/* Seconds with up to three decimals from the environment, in milliseconds, or the default; -1 when malformed. */
static long long
env_seconds_ms(const char *name, long long fallback_ms, long long max_ms)
{
	const char *value = getenv(name), *p;
	long long ms = 0, scale = 1000;

	if (!value || !*value)
		return fallback_ms;
	for (p = value; *p >= '0' && *p <= '9' && ms <= max_ms; p++)
		ms = ms * 10 + (*p - '0') * 1000;
	if (p == value || ms > max_ms)
		return -1;
	if (*p == '.')
		for (p++; *p >= '0' && *p <= '9' && scale > 1; p++)
			ms += (*p - '0') * (scale /= 10);
	return *p ? -1 : ms;
}

/*
 * LSO_HOST_TAG: exactly two hex digits, the first two characters of every
 * job id this host makes (README, Scaling out), so a balancer in front of
 * several hosts routes a request naming a job to its owner by the id alone.
 * Unset: -1, ids wholly random. Malformed: -2.
 */
static int
env_host_tag(const char *name)
{
	const char *value = getenv(name);
	char *end;
	long tag;

	if (!value || !*value)
		return -1;
	if (strlen(value) != 2 || !strchr("0123456789abcdefABCDEF", value[0]) ||
	    !strchr("0123456789abcdefABCDEF", value[1]))
		return -2;
	tag = strtol(value, &end, 16);
	return *end ? -2 : (int)tag;
}

/* pydantic's bool from a string: 1, else 0, or -1 when it is none of its words. */
static int
parse_flag(const char *value)
{
	static const char *const yes[] = { "true", "1", "yes", "on", "t", "y" };
	static const char *const no[] = { "false", "0", "no", "off", "f", "n" };

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(value, yes[i]) == 0)
			return 1;
		if (strcasecmp(value, no[i]) == 0)
			return 0;
	}
	return -1;
}

/*
 * The key in the credential file: its first line, which must not be empty.
 * Anything else (missing, a directory, empty, a blank first line, too long)
 * is a reason, and no key: auth then stays on and lets nobody in.
 */
static const char *
read_key_credential(const char *dir, char *key, const char **why)
{
	char path[PATH_MAX];
	struct stat st;
	ssize_t len;
	int fd;

	*why = "LSO_API_KEY is unset and there is no credential " API_KEY_CREDENTIAL;
	if (!dir || !*dir ||
	    snprintf(path, sizeof(path), "%s/%s", dir, API_KEY_CREDENTIAL) >= (int)sizeof(path))
		return NULL;
	/* O_NONBLOCK: a FIFO put there by mistake must not hang the request. */
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)) < 0)
		return NULL;
	len = -1;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		*why = "the credential " API_KEY_CREDENTIAL " is not a regular file";
	else if ((len = read(fd, key, API_KEY_MAX_BYTES + 1)) < 0)
		*why = "the credential " API_KEY_CREDENTIAL " cannot be read";
	close(fd);
	if (len < 0)
		return NULL;
	if (len > API_KEY_MAX_BYTES) {
		*why = "the credential " API_KEY_CREDENTIAL " is longer than " STRING(API_KEY_MAX_BYTES) " bytes";
		return NULL;
	}
	key[len] = '\0';
	key[strcspn(key, "\r\n")] = '\0';
	if (!*key) {
		*why = len ? "the credential " API_KEY_CREDENTIAL " begins with a blank line" :
		    "the credential " API_KEY_CREDENTIAL " is empty";
		return NULL;
	}
	return key;
}

/* The key from LSO_API_KEY, else from the systemd credential lso-api-key. */
static const char *
load_key(const char **why)
{
	static char key[API_KEY_MAX_BYTES + 2];
	const char *from_env = getenv("LSO_API_KEY");

	if (from_env && *from_env)
		return from_env;
	return read_key_credential(getenv("CREDENTIALS_DIRECTORY"), key, why);
}

enum config_auth
config_auth(const char **key, const char **why)
{
	if (!config.oauth2_active)
		return CONFIG_AUTH_OFF;
	if (!config.api_key_loaded) {
		config.api_key = load_key(&config.api_key_problem);
		config.api_key_loaded = true;
	}
	*key = config.api_key;
	*why = config.api_key_problem;
	return config.api_key ? CONFIG_AUTH_ON : CONFIG_AUTH_BROKEN;
}

const char *
config_load(void)
{
	long long value[COUNT(number_settings)];
	const struct number_setting *n;
	const struct text_setting *t;
	const struct flag_setting *f;

	config.read_timeout_sec = READ_TIMEOUT_SEC_DEFAULT; /* lets even a configuration error be answered */
	/* Every number is checked before any is set: a bad one leaves the defaults above. */
	for (size_t i = 0; i < COUNT(number_settings); i++) {
		n = &number_settings[i];
		value[i] = env_number(n->variable, n->fallback);
		if (value[i] < n->min || value[i] > n->max)
			return n->variable;
	}
	for (size_t i = 0; i < COUNT(number_settings); i++) {
		n = &number_settings[i];
		if (n->number)
			*n->number = (long)value[i];
		else
			*n->bytes = (size_t)value[i];
	}
	for (const struct duration_setting *d = duration_settings;
	    d < duration_settings + COUNT(duration_settings); d++) {
		long long ms = env_seconds_ms(d->variable, d->fallback_ms, d->max_ms);

		if (ms < 0)
			return d->variable;
		*d->ms = (long)ms;
	}
	for (f = flag_settings; f < flag_settings + COUNT(flag_settings); f++) {
		const char *value = env_or(f->variable, NULL);
		int flag = value ? parse_flag(value) : f->fallback;

		if (flag < 0)
			return f->variable;
		*f->flag = flag;
	}
	if ((config.host_tag = env_host_tag("LSO_HOST_TAG")) < -1) {
		config.host_tag = -1;
		return "LSO_HOST_TAG";
	}
	for (t = text_settings; t < text_settings + COUNT(text_settings); t++)
		*t->text = env_or(t->variable, env_or(t->fallback_variable, t->fallback));
	config.api_key = NULL;
	config.api_key_problem = NULL;
	config.api_key_loaded = false;
	return NULL;
}
