/*
 * resolve.c: confinement, the security boundary: a requested name resolves
 * to a file inside its root, or it is refused.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "resolve.h"

/* Symlinks followed in one name before it counts as a loop (the kernel's limit). */
#define RESOLVE_LINKS_MAX 40

/* Does path lie in root (both resolved, no trailing slash but for "/")? */
static bool
is_inside(const char *root, const char *path)
{
	size_t n = strlen(root);

	if (strcmp(root, "/") == 0)
		return true;
	return strncmp(path, root, n) == 0 && (path[n] == '/' || path[n] == '\0');
}

bool
resolve_climbs_out(const char *name)
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

/* Follow the symlink at resolved (the path so far): its target goes before the rest. */
static bool
follow_link(char *resolved, char *todo, const char *rest)
{
	char target[PATH_MAX], joined[PATH_MAX];
	ssize_t n = readlink(resolved, target, sizeof(target) - 1);

	if (n < 0)
		return false;
	target[n] = '\0';
	if (snprintf(joined, sizeof(joined), "%s/%s", target, rest) >= (int)sizeof(joined))
		return false;
	strcpy(todo, joined);
	if (target[0] == '/')
		resolved[0] = '\0';
	else
		*strrchr(resolved, '/') = '\0';
	return true;
}

/*
 * Where an absolute path leads, as realpath would say if all of it existed:
 * symlinks followed as far as they exist, the rest taken as written (Python's
 * Path.resolve). So a dangling link pointing outside is seen to point
 * outside. False on a loop or a path too long.
 */
static bool
leads_to(const char *path, char resolved[PATH_MAX])
{
	char todo[PATH_MAX];
	const char *at;
	struct stat st;
	size_t len, have;
	int links = 0;

	if (snprintf(todo, sizeof(todo), "%s", path) >= (int)sizeof(todo))
		return false;
	resolved[0] = '\0';  /* "" is "/" */
	at = todo;
	while (*(at += strspn(at, "/"))) {
		len = strcspn(at, "/");
		have = strlen(resolved);
		if (len == 2 && at[0] == '.' && at[1] == '.') {
			if (have)
				*strrchr(resolved, '/') = '\0';
		} else if (!(len == 1 && at[0] == '.')) {
			if (have + 1 + len >= PATH_MAX)
				return false;
			resolved[have] = '/';
			memcpy(resolved + have + 1, at, len);
			resolved[have + 1 + len] = '\0';
			if (lstat(resolved, &st) == 0 && S_ISLNK(st.st_mode)) {
				if (++links > RESOLVE_LINKS_MAX || !follow_link(resolved, todo, at + len))
					return false;
				at = todo;
				continue;
			}
		}
		at += len;
	}
	if (!resolved[0])
		strcpy(resolved, "/");
	return true;
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
	char real_root[PATH_MAX], candidate[PATH_MAX], destination[PATH_MAX];
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
	if (name[0] != '/' && resolve_climbs_out(name))
		return RESOLVE_OUTSIDE;
	/* Outside is decided before existence: a dangling link out is outside too. */
	if (!leads_to(candidate, destination))
		return RESOLVE_MISSING;
	if (!is_inside(real_root, destination))
		return RESOLVE_OUTSIDE;
	if (!realpath(candidate, prog->path))
		return RESOLVE_MISSING;
	if (!is_inside(real_root, prog->path))
		return RESOLVE_OUTSIDE;
	return resolve_check(prog->path, need_exec, prog);
}
