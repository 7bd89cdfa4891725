/*
 * files.c: a job's files, JOB_FILES_ROOT_DIR/<job_id>/ (upstream 5.x): the
 * recursive list, one file opened for sending, the folder removed. Every
 * name is looked up below the job's folder by the kernel (openat2 with
 * RESOLVE_BENEATH; else a walk with O_NOFOLLOW), never by string checks on
 * a path that could change under us; nothing outside the folder is read or
 * removed, whatever symlinks the job left there.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "files.h"
#include "http.h"
#include "resolve.h"

char *
files_decode(const char *text, size_t len)
{
	char *out = malloc(len + 1), *o = out;
	int high, low;

	if (!out)
		return NULL;
	for (size_t i = 0; i < len; i++) {
		if (text[i] == '%' && i + 2 < len &&
		    (high = http_hex_value(text[i + 1])) >= 0 && (low = http_hex_value(text[i + 2])) >= 0 &&
		    (high | low) != 0) {
			*o++ = (char)(high * 16 + low);
			i += 2;
		} else {
			*o++ = text[i];
		}
	}
	*o = '\0';
	return out;
}

bool
files_parse_job_id(const char *text, job_id id)
{
	static const int dashes[] = { 8, 13, 18, 23 };
	char hex[33];
	size_t len = strlen(text), n = 0;

	if (strncasecmp(text, "urn:uuid:", 9) == 0)
		text += 9, len -= 9;
	else if (len == 38 && text[0] == '{' && text[37] == '}')
		text += 1, len -= 2;
	if (len != 32 && len != 36)
		return false;
	for (size_t i = 0; i < len; i++) {
		bool dash_here = len == 36 && (i == 8 || i == 13 || i == 18 || i == 23);

		if (dash_here ? text[i] != '-' : http_hex_value(text[i]) < 0)
			return false;
		if (!dash_here)
			hex[n++] = (char)(text[i] | 0x20);  /* lower case */
	}
	for (size_t i = 0, h = 0, d = 0; i < JOB_ID_LEN; i++)
		id[i] = d < 4 && (int)i == dashes[d] ? (d++, '-') : hex[h++];
	id[JOB_ID_LEN] = '\0';
	return true;
}

/* The job's folder, opened without following a symlink in its place; -1: there is none. */
static int
open_job_dir(const char *id)
{
	int root, dir;

	if (!config.job_files_root)
		return errno = ENOENT, -1;
	if ((root = open(config.job_files_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return -1;
	dir = openat(root, id, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	close(root);
	return dir;
}

/* "No such folder" in every form: then the job simply has no files. */
static bool
is_absent(int error)
{
	return error == ENOENT || error == ENOTDIR || error == ELOOP;
}

bool
files_job_dir(const char *id, char *dir, size_t size)
{
	char root[PATH_MAX];

	if (!config.job_files_root || !realpath(config.job_files_root, root))
		return false;
	return snprintf(dir, size, "%s/%s", strcmp(root, "/") == 0 ? "" : root, id) < (int)size;
}

/* --- the list --- */

struct names {
	char **names;
	size_t count, cap;
};

static bool
names_add(struct names *list, const char *prefix, const char *name)
{
	char **grown, *path;

	if (list->count == list->cap) {
		list->cap = list->cap ? list->cap * 2 : 16;
		if (!(grown = realloc(list->names, list->cap * sizeof(*grown))))
			return false;
		list->names = grown;
	}
	if (asprintf(&path, "%s%s", prefix, name) < 0)
		return false;
	list->names[list->count++] = path;
	return true;
}

/* Every regular file below the open folder dir (which this closes), named from prefix. */
static bool
collect(int dir, const char *prefix, int depth, struct names *list)
{
	DIR *d = fdopendir(dir);
	struct dirent *e;
	struct stat st;
	char *sub;
	int fd;
	bool ok = true;

	if (!d) {
		close(dir);
		return false;
	}
	while (ok && (e = readdir(d))) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 ||
		    fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (S_ISREG(st.st_mode)) {
			ok = names_add(list, prefix, e->d_name);
		} else if (S_ISDIR(st.st_mode) && depth < FILES_DEPTH_MAX) {
			fd = openat(dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (fd < 0)
				continue;  /* replaced meanwhile: not a folder of the job any more */
			if (asprintf(&sub, "%s%s/", prefix, e->d_name) < 0) {
				close(fd);
				ok = false;
				break;
			}
			ok = collect(fd, sub, depth + 1, list);
			free(sub);
		}
	}
	closedir(d);
	return ok;
}

static int
compare_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

enum outcome
files_list(const char *id, struct jbuf *body)
{
	struct names list = { 0 };
	int dir = open_job_dir(id);
	bool ok = true;

	if (dir < 0 && !is_absent(errno))
		return FILES_FAILED;
	if (dir >= 0)
		ok = collect(dir, "", 0, &list);
	if (list.count)
		qsort(list.names, list.count, sizeof(*list.names), compare_names);
	jbuf_printf(body, "{\"job_id\":\"%s\",\"files\":[", id);
	for (size_t i = 0; i < list.count; i++) {
		if (i)
			jbuf_puts(body, ",");
		json_string(body, list.names[i]);
		free(list.names[i]);
	}
	jbuf_puts(body, "]}");
	free(list.names);
	if (!ok)
		errno = ENOMEM;
	return ok ? FILES_LISTED : FILES_FAILED;
}

/* --- one file --- */

enum outcome
files_open(const char *id, const char *name, int *fd, off_t *size)
{
	struct stat st;
	int dir, error;

	/* Outside is outside whether or not it exists, and whether or not the job has a folder. */
	if (name[0] == '/' || resolve_climbs_out(name))
		return FILES_OUTSIDE;
	if ((dir = open_job_dir(id)) < 0)
		return is_absent(errno) ? FILES_MISSING : FILES_FAILED;
	*fd = resolve_open_beneath(dir, name, O_RDONLY | O_NOCTTY | O_NONBLOCK);
	error = errno;
	close(dir);
	if (*fd < 0) {
		if (error == EXDEV)
			return FILES_OUTSIDE;
		errno = error;
		return is_absent(error) || error == ENAMETOOLONG ? FILES_MISSING : FILES_FAILED;
	}
	if (fstat(*fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(*fd);
		return FILES_MISSING;  /* a folder, a device, a FIFO: not a file to send */
	}
	*size = st.st_size;
	return FILES_FOUND;
}

/* --- deletion --- */

/* Empty the open folder dir (which this closes): links are removed, never followed. */
static bool
empty_dir(int dir, int depth)
{
	DIR *d = fdopendir(dir);
	struct dirent *e;
	int fd;
	bool ok = true;

	if (!d) {
		close(dir);
		return false;
	}
	while ((e = readdir(d))) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (unlinkat(dirfd(d), e->d_name, 0) == 0 || errno == ENOENT)
			continue;
		/* EISDIR (or EPERM on some systems): a folder; opened without following a link. */
		fd = openat(dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0 || depth >= FILES_DEPTH_MAX) {
			if (fd >= 0)
				close(fd);
			ok = false;
			continue;
		}
		if (!empty_dir(fd, depth + 1) || unlinkat(dirfd(d), e->d_name, AT_REMOVEDIR) < 0)
			ok = false;
	}
	closedir(d);
	return ok;
}

enum outcome
files_delete(const char *id)
{
	int root, dir;
	bool ok;

	if (!config.job_files_root)
		return FILES_DELETED;
	if ((root = open(config.job_files_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return is_absent(errno) ? FILES_DELETED : FILES_FAILED;
	dir = openat(root, id, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dir < 0) {
		/* Not a folder: a link (or a file) in its place goes, whatever it points to. */
		ok = is_absent(errno) && (unlinkat(root, id, 0) == 0 || errno == ENOENT);
	} else {
		ok = empty_dir(dir, 0) && (unlinkat(root, id, AT_REMOVEDIR) == 0 || errno == ENOENT);
	}
	close(root);
	return ok ? FILES_DELETED : FILES_FAILED;
}
