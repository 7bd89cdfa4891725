/*
 * runuser.c: LSO_RUN_USER: the user programs and playbooks run as, looked up
 * once and entered by the child before exec, so that a program cannot read
 * what only lso's user may (the API key's credential above all), nor signal
 * or trace lso.
 */
#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "config.h"
#include "runuser.h"

/* The run user as looked up: once per process (per request; once per burst). */
static struct {
	bool loaded, ok;
	bool switching;         /* false: unset, or lso already is that user */
	uid_t uid;
	gid_t gid;
	gid_t *groups;
	int group_count;
	char *env_text[3];      /* HOME=, USER=, LOGNAME= */
	const char *env[4];
	char why[256];
} run_user;

/* The passwd entry LSO_RUN_USER names: a user name, or a number taken as a uid. */
static struct passwd *
find_user(const char *name)
{
	char *end;
	unsigned long uid;

	errno = 0;
	if (name[0] >= '0' && name[0] <= '9') {
		uid = strtoul(name, &end, 10);
		if (!*end && uid == (uid_t)uid)
			return getpwuid((uid_t)uid);
	}
	return getpwnam(name);
}

/* Does lso hold CAP_SETUID and CAP_SETGID (effective), which switching needs? */
static bool
may_switch(void)
{
	struct __user_cap_header_struct header = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = { { 0 } };
	unsigned int need = 1U << CAP_SETUID | 1U << CAP_SETGID;

	if (syscall(SYS_capget, &header, data) < 0)
		return geteuid() == 0;
	return (data[0].effective & need) == need;
}

/* The user's groups as initgroups would set them: its own gid and every group listing it. */
static bool
load_groups(const struct passwd *pw)
{
	int count = 32;

	for (int tries = 0; tries < 8; tries++) {
		gid_t *groups = realloc(run_user.groups, (size_t)count * sizeof(*groups));

		if (!groups)
			return false;
		run_user.groups = groups;
		if (getgrouplist(pw->pw_name, pw->pw_gid, groups, &count) >= 0) {
			run_user.group_count = count;
			return true;
		}
	}
	return false;
}

static bool
load_env(const struct passwd *pw)
{
	const char *const names[] = { "HOME", "USER", "LOGNAME" };
	const char *const values[] = { pw->pw_dir, pw->pw_name, pw->pw_name };

	for (int i = 0; i < 3; i++) {
		size_t size = strlen(names[i]) + strlen(values[i]) + 2;

		if (!(run_user.env_text[i] = malloc(size)))
			return false;
		snprintf(run_user.env_text[i], size, "%s=%s", names[i], values[i]);
		run_user.env[i] = run_user.env_text[i];
	}
	return true;
}

/* Look up LSO_RUN_USER; false, with run_user.why, when nothing may run. */
static bool
load(const char *name)
{
	struct passwd *pw;

	if (!name)
		return true;
	if (!(pw = find_user(name))) {
		snprintf(run_user.why, sizeof(run_user.why), "LSO_RUN_USER=%s: %s", name,
		    errno ? strerror(errno) : "no such user");
		return false;
	}
	run_user.uid = pw->pw_uid;
	run_user.gid = pw->pw_gid;
	if (!load_groups(pw) || !load_env(pw)) {
		snprintf(run_user.why, sizeof(run_user.why), "LSO_RUN_USER=%s: its groups: %s", name,
		    strerror(errno ? errno : ENOMEM));
		return false;
	}
	/* Already that user (lso run as it): nothing to switch, nothing to be allowed. */
	run_user.switching = geteuid() != pw->pw_uid || getegid() != pw->pw_gid ||
	    getuid() != pw->pw_uid || getgid() != pw->pw_gid;
	if (run_user.switching && !may_switch()) {
		snprintf(run_user.why, sizeof(run_user.why), "LSO_RUN_USER=%s: lso (uid %ld) may not "
		    "switch users (it needs root, or CAP_SETUID and CAP_SETGID)", name, (long)geteuid());
		return false;
	}
	return true;
}

bool
runuser_ready(const char **why)
{
	if (!run_user.loaded) {
		run_user.ok = load(config.run_user);
		run_user.loaded = true;
	}
	*why = run_user.why;
	return run_user.ok;
}

bool
runuser_ids(uid_t *uid, gid_t *gid)
{
	if (!run_user.ok || !run_user.switching)
		return false;
	*uid = run_user.uid;
	*gid = run_user.gid;
	return true;
}

bool
runuser_switches(void)
{
	return run_user.ok && run_user.switching;
}

const char *const *
runuser_env(void)
{
	return run_user.ok && config.run_user ? run_user.env : NULL;
}

const char *
runuser_home(void)
{
	return runuser_env() ? run_user.env[0] + strlen("HOME=") : NULL;
}

/*
 * Groups first (only root may set them), then the gid (setting the uid
 * would give up the right to), then the uid: real, effective and saved
 * alike, so no way back. Raw system calls: glibc's wrappers would signal
 * the other threads of a process, and this child shares our memory.
 */

int
runuser_enter(void)
{
	if (!config.run_user)
		return 0;
	if (!run_user.ok)
		return EPERM; /* never run as lso's user instead */
	if (!run_user.switching)
		return 0;
	if (syscall(SYS_setgroups, (size_t)run_user.group_count, run_user.groups) < 0 ||
	    syscall(SYS_setresgid, run_user.gid, run_user.gid, run_user.gid) < 0 ||
	    syscall(SYS_setresuid, run_user.uid, run_user.uid, run_user.uid) < 0)
		return errno;
	return 0;
}
