/* runuser.h: LSO_RUN_USER, the user programs and playbooks run as (runuser.c). */
#ifndef LSO_RUNUSER_H
#define LSO_RUNUSER_H

#include <stdbool.h>
#include <sys/types.h>

/*
 * Is the run user usable? Looked up on first call (a run route, or burst
 * mode's start), then kept. True when LSO_RUN_USER is unset (programs run as
 * lso's user) or names a user lso may switch to; false, with why naming
 * LSO_RUN_USER, when it does not: fail closed, nothing runs.
 */
bool runuser_ready(const char **why);

/* Is there a user to switch to? When so, its ids (for the files a run must read). */
bool runuser_ids(uid_t *uid, gid_t *gid);

/* Does a run switch users: LSO_RUN_USER set, usable, and not lso's own? */
bool runuser_switches(void);

/* HOME=, USER=, LOGNAME= from its passwd entry, NULL-terminated; NULL when unset. */
const char *const *runuser_env(void);

/* Its home in the passwd entry; NULL when unset. */
const char *runuser_home(void);

/*
 * In the child, before exec: become the run user (its groups, then its gid,
 * then its uid, each checked). 0, or the errno of the step that failed.
 * Only system calls: safe in a child that shares our memory (clone CLONE_VM).
 */
int runuser_enter(void);

#endif
