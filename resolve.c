/*
 * resolve.c: confinement, the security boundary: a requested name resolves
 * to a file inside its root, or it is refused. The name is judged as a path
 * (upstream's rules: symlinks followed, the destination must lie inside),
 * then the file is opened by the kernel beneath the root and checked through
 * that descriptor, which is what runs: a folder swapped on the path after
 * the check changes nothing.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#ifdef SYS_openat2
#include <linux/openat2.h>
#endif

#include "resolve.h"

bool resolve_without_openat2;

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

/* name below dir by openat2; -1 with errno, or -2: the kernel has no openat2. */
static int
open_openat2(int dir, const char *name, int flags)
{
#ifdef SYS_openat2
	struct open_how how = { .flags = (unsigned)(flags | O_CLOEXEC),
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS };
	long fd;

	if (!resolve_without_openat2) {
		fd = syscall(SYS_openat2, dir, name, &how, sizeof(how));
		if (fd >= 0 || errno != ENOSYS)
			return (int)fd;
	}
#else
	(void)dir, (void)name, (void)flags;
#endif
	return -2;
}

static bool
is_link(int dir, const char *name)
{
	struct stat st;
	int error = errno;
	bool link = fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode);

	errno = error;
	return link;
}

/*
 * Without openat2: one component at a time, never following a symlink (a
 * symlink anywhere in the name is refused as possibly outside). ".." cannot
 * climb out: the name was checked for that first.
 */
static int
open_walking(int dir, const char *name, int flags)
{
	char *copy = strdup(name), *part, *rest = NULL;
	int at = dup(dir), next;
	struct stat st;

	if (!copy || at < 0) {
		free(copy);
		if (at >= 0)
			close(at);
		return errno = ENOMEM, -1;
	}
	for (part = strtok_r(copy, "/", &rest); part && at >= 0; part = strtok_r(NULL, "/", &rest)) {
		/* A folder on the way is opened as the end is: O_PATH needs no read permission. */
		next = openat(at, part, O_CLOEXEC | O_NOFOLLOW | O_NOCTTY |
		    (rest && *rest ? (flags & O_PATH) | O_RDONLY | O_DIRECTORY : flags));
		if (next < 0 && (errno == ELOOP || errno == ENOTDIR) && is_link(at, part))
			errno = EXDEV;
		/* O_PATH | O_NOFOLLOW opens a link itself: a link is refused here too. */
		if (next >= 0 && (flags & O_PATH) && fstat(next, &st) == 0 && S_ISLNK(st.st_mode)) {
			close(next);
			next = -1;
			errno = EXDEV;
		}
		close(at);
		at = next;
	}
	free(copy);
	return at;
}

int
resolve_open_beneath(int dir, const char *name, int flags)
{
	int fd = open_openat2(dir, name, flags);

	return fd == -2 ? open_walking(dir, name, flags) : fd;
}

/* The checks on an open file, into prog (which then owns fd); fd is closed on a refusal. */
static enum outcome
check_open(int fd, bool need_exec, struct program *prog)
{
	struct stat st;
	enum outcome found = OUTCOME_OK;

	if (fstat(fd, &st) < 0)
		found = RESOLVE_MISSING;
	else if (!S_ISREG(st.st_mode))
		found = RESOLVE_NOT_FILE;
	else if (need_exec && !(st.st_mode & (S_IXUSR | S_IXGRP | S_IXOTH)))
		found = RESOLVE_NOT_EXECUTABLE;
	if (found != OUTCOME_OK) {
		close(fd);
		return found;
	}
	prog->fd = fd;
	return OUTCOME_OK;
}

enum outcome
resolve_check(const char *path, bool need_exec, struct program *prog)
{
	int fd = open(path, O_PATH | O_CLOEXEC);

	prog->fd = prog->dir_fd = -1;
	return fd < 0 ? RESOLVE_MISSING : check_open(fd, need_exec, prog);
}

void
resolve_release(struct program *prog)
{
	if (prog->fd >= 0)
		close(prog->fd);
	if (prog->dir_fd >= 0)
		close(prog->dir_fd);
	prog->fd = prog->dir_fd = -1;
}

/* The folder of rest (a name below root without symlinks) opened beneath root; its last part in leaf. */
static int
open_folder_of(int root, const char *rest, char leaf[PATH_MAX])
{
	char folder[PATH_MAX];
	const char *slash = strrchr(rest, '/');

	if (!slash) {
		snprintf(leaf, PATH_MAX, "%s", *rest ? rest : ".");
		return resolve_open_beneath(root, ".", O_PATH | O_DIRECTORY);
	}
	snprintf(folder, sizeof(folder), "%.*s", (int)(slash - rest), rest);
	snprintf(leaf, PATH_MAX, "%s", slash + 1);
	return resolve_open_beneath(root, folder, O_PATH | O_DIRECTORY);
}

/*
 * prog->path (resolved, inside real_root) opened beneath the root: its
 * folder, then the file in it (no symlink: the path was resolved), checked.
 */
static enum outcome
open_checked(const char *real_root, bool need_exec, struct program *prog)
{
	const char *rest = prog->path + (strcmp(real_root, "/") == 0 ? 0 : strlen(real_root));
	char leaf[PATH_MAX];
	int root, dir, fd, error;
	enum outcome found;
	struct stat st;

	rest += strspn(rest, "/");
	if ((root = open(real_root, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0)
		return RESOLVE_MISSING;
	dir = open_folder_of(root, rest, leaf);
	error = errno;
	close(root);
	if (dir < 0)
		return error == EXDEV ? RESOLVE_OUTSIDE : RESOLVE_MISSING;
	fd = openat(dir, leaf, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || (fstat(fd, &st) == 0 && S_ISLNK(st.st_mode))) {
		/* A link in its place now: it was swapped since it was resolved. */
		found = fd < 0 ? RESOLVE_MISSING : RESOLVE_OUTSIDE;
		if (fd >= 0)
			close(fd);
		close(dir);
		return found;
	}
	if ((found = check_open(fd, need_exec, prog)) != OUTCOME_OK)
		close(dir);
	else
		prog->dir_fd = dir;
	return found;
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

	prog->fd = prog->dir_fd = -1;
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
	return open_checked(real_root, need_exec, prog);
}
