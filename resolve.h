/* resolve.h: finding a requested file inside its root, and nowhere else (resolve.c). */
#ifndef LSO_RESOLVE_H
#define LSO_RESOLVE_H

#include <limits.h>
#include <stdbool.h>
#include <sys/types.h>

#include "lso.h"

/*
 * A program that passed the checks: its resolved path (for argv[0] and the
 * record) and the file that was checked, open (O_PATH, close-on-exec): what
 * runs is that file (execveat), whatever the path leads to by then.
 */
struct program {
	char path[PATH_MAX];
	int fd;      /* -1: none */
	int dir_fd;  /* the folder it was found in, as checked (O_PATH); -1: none */
};

/*
 * Resolve name inside root: an executable (resolve_program), or any regular
 * file. OUTCOME_OK, or RESOLVE_OUTSIDE, RESOLVE_MISSING, RESOLVE_NOT_FILE,
 * RESOLVE_NOT_EXECUTABLE.
 */
enum outcome resolve_program(const char *root, const char *name, struct program *prog);
enum outcome resolve_file(const char *root, const char *name, bool need_exec,
    struct program *prog);

/* Does a relative name climb above its start with ".." (before any symlink is looked at)? */
bool resolve_climbs_out(const char *name);

/* Open the file at path (already resolved, not a client's) and check it, into prog. */
enum outcome resolve_check(const char *path, bool need_exec, struct program *prog);

/* Close prog's file and folder (a program never run, or run for the last time). */
void resolve_release(struct program *prog);

/*
 * name below the open folder dir, the kernel refusing any step out: openat2
 * with RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS, else a walk that follows no
 * symlink at all. flags as open's (O_CLOEXEC always added). The fd, or -1
 * with errno (EXDEV: the name leads out, or through a link where no openat2).
 * The name must not climb out with "..": resolve_climbs_out first.
 */
int resolve_open_beneath(int dir, const char *name, int flags);

/* For the unit tests: walk names with O_NOFOLLOW as on kernels without openat2. */
extern bool resolve_without_openat2;

#endif
