/* resolve.h: finding a requested file inside its root, and nowhere else (resolve.c). */
#ifndef LSO_RESOLVE_H
#define LSO_RESOLVE_H

#include <limits.h>
#include <stdbool.h>
#include <sys/types.h>

#include "lso.h"

/* A program that passed the checks: its resolved path and the inode checked. */
struct program {
	char path[PATH_MAX];
	dev_t dev;
	ino_t ino;
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

/* Check the file at path (already resolved) and note its inode in prog. */
enum outcome resolve_check(const char *path, bool need_exec, struct program *prog);

#endif
