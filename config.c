/* config.c: the settings table (variable, field, default, bounds) and the token's credential. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "http.h"

struct config config;

/* Where the API token may be when LSO_API_TOKEN is not set: a systemd credential. */
#define TOKEN_CREDENTIAL "lso-token"
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
	{ "LSO_MAX_BODY_BYTES", NULL, &config.max_body_bytes, 1048576, 1, SETTING_BYTES_MAX },
	{ "LSO_MAX_OUTPUT_BYTES", NULL, &config.max_output_bytes, 16777216, 1, SETTING_BYTES_MAX },
	{ "LSO_READ_TIMEOUT_SEC", &config.read_timeout_sec, NULL, READ_TIMEOUT_SEC_DEFAULT, 1,
	    SETTING_SECONDS_MAX },
	{ "LSO_CALLBACK_RETRIES", &config.callback_retries, NULL, 5, 0, SETTING_RETRIES_MAX },
	{ "ANSIBLE_PLAYBOOK_TIMEOUT_SEC", &config.playbook_idle_sec, NULL, 300, 1, SETTING_SECONDS_MAX },
	{ "LSO_PLAYBOOK_MAX_SEC", &config.playbook_max_sec, NULL, 86400, 1, SETTING_SECONDS_MAX },
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
};

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

/* The token from LSO_API_TOKEN, else from the systemd credential lso-token. */
static const char *
load_token(void)
{
	static char token[TOKEN_MAX_BYTES + 1];
	const char *dir = getenv("CREDENTIALS_DIRECTORY");
	char path[PATH_MAX];
	size_t len;
	FILE *f;

	if (getenv("LSO_API_TOKEN") && *getenv("LSO_API_TOKEN"))
		return getenv("LSO_API_TOKEN");
	if (!dir || snprintf(path, sizeof(path), "%s/%s", dir, TOKEN_CREDENTIAL) >= (int)sizeof(path))
		return NULL;
	f = fopen(path, "re");
	if (!f)
		return NULL;
	len = fread(token, 1, TOKEN_MAX_BYTES, f);
	fclose(f);
	token[len] = '\0';
	token[strcspn(token, "\r\n")] = '\0';
	return *token ? token : NULL;
}

const char *
config_api_token(void)
{
	if (!config.api_token_loaded) {
		config.api_token = load_token();
		config.api_token_loaded = true;
	}
	return config.api_token;
}

const char *
config_load(void)
{
	long long value[COUNT(number_settings)];
	const struct number_setting *n;
	const struct text_setting *t;

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
	for (t = text_settings; t < text_settings + COUNT(text_settings); t++)
		*t->text = env_or(t->variable, env_or(t->fallback_variable, t->fallback));
	config.api_token = NULL;
	config.api_token_loaded = false;
	return NULL;
}
