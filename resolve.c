/*
 * resolve.c: confinement, the security boundary: a requested name resolves
 * to a file inside its root, or it is refused.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "resolve.h"

/* Does path lie in root (both resolved, no trailing slash but for "/")? */
static bool
is_inside(const char *root, const char *path)
{
	size_t n = strlen(root);

	if (strcmp(root, "/") == 0)
		return true;
	return strncmp(path, root, n) == 0 && (path[n] == '/' || path[n] == '\0');
}

/* Does a relative name climb above its start with ".." (before any symlink is looked at)? */
static bool
climbs_out(const char *name)
{
	long depth = 0;
	const char *c = name;
	size_t len;

	while (*c) {
		len = strcspn(c, "/");
		if (len == 2 && c[0] == '.' && c[1] == '.') {
			if (--depth < 0)
				return true;
		} else if (len > 0 && !(len == 1 && c[0] == '.')) {
			depth++;
		}
		c += len;
		c += strspn(c, "/");
	}
	return false;
}

enum outcome
resolve_check(const char *path, bool need_exec, struct program *prog)
{
	struct stat st;

	if (stat(path, &st) < 0)
		return RESOLVE_MISSING;
	if (!S_ISREG(st.st_mode))
		return RESOLVE_NOT_FILE;
	if (need_exec && !(st.st_mode & (S_IXUSR | S_IXGRP | S_IXOTH)))
		return RESOLVE_NOT_EXECUTABLE;
	prog->dev = st.st_dev;
	prog->ino = st.st_ino;
	return OUTCOME_OK;
}

enum outcome
resolve_program(const char *root, const char *name, struct program *prog)
{
	return resolve_file(root, name, true, prog);
}

enum outcome
resolve_file(const char *root, const char *name, bool need_exec, struct program *prog)
{
	char real_root[PATH_MAX], candidate[PATH_MAX];
	int n;

	if (!root || !realpath(root, real_root))
		return RESOLVE_MISSING;
	if (name[0] == '/')
		n = snprintf(candidate, sizeof(candidate), "%s", name);
	else
		n = snprintf(candidate, sizeof(candidate), "%s/%s", real_root, name);
	if (n < 0 || (size_t)n >= sizeof(candidate))
		return RESOLVE_MISSING;
	/* Refuse a climb out even when its target does not exist. */
	if (name[0] != '/' && climbs_out(name))
		return RESOLVE_OUTSIDE;
	if (!realpath(candidate, prog->path)) {
		if (name[0] == '/' && !is_inside(real_root, candidate))
			return RESOLVE_OUTSIDE;
		return RESOLVE_MISSING;
	}
	if (!is_inside(real_root, prog->path))
		return RESOLVE_OUTSIDE;
	return resolve_check(prog->path, need_exec, prog);
}
