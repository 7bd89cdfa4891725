/*
 * tests/crashfs.c: a file system in memory that forgets, on a power cut,
 * every write not yet synced, for tests/crash.sh.
 *
 *   crashfs LOG CUT_AT MOUNTPOINT
 *
 * Each file has what readers see and what "the disk" holds: fsync or
 * fdatasync of the file copies the first to the second (data and size). Each
 * directory likewise has its entries as seen and as on disk: only fsync of
 * the directory makes a create, rename, exchange, unlink or mkdir in it
 * durable. That is the strictest reading of POSIX: real file systems often
 * keep more, never less.
 *
 * Every operation that changes something is a step, numbered from 1 and
 * written to LOG ("step N OP PATH"). When step CUT_AT arrives (0: never),
 * the power goes: the step is not done, "cut N" is written to LOG, and the
 * file system answers nothing more (every process using it waits) until it
 * gets SIGUSR1, the reboot: then every file and directory goes back to what
 * the disk holds, the waiting step fails with EIO, and it serves as usual,
 * cutting no more. On unmount LOG gets "steps N". Single-threaded, in the
 * foreground; memory is freed at exit only (a test's few files).
 */
#define FUSE_USE_VERSION 31
#include <errno.h>
#include <fuse.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct entry {
	char *name;
	struct node *node;
	struct entry *next;
};

/* A file or a directory: as seen, and as on disk. */
struct node {
	mode_t mode;
	ino_t ino;
	char *data;             /* files */
	size_t size;
	char *disk_data;
	size_t disk_size;
	struct entry *entries;  /* directories */
	struct entry *disk_entries;
	struct timespec mtime;
};

static struct node *root;
static FILE *log_file;
static long steps, cut_at;
static ino_t next_ino = 1;
static volatile sig_atomic_t rebooted;

static void
on_reboot(int sig)
{
	(void)sig;
	rebooted = 1;
}

static void *
must(void *p)
{
	if (!p) {
		perror("crashfs");
		exit(1);
	}
	return p;
}

static struct node *
new_node(mode_t mode)
{
	struct node *n = must(calloc(1, sizeof(*n)));

	n->mode = mode;
	n->ino = next_ino++;
	clock_gettime(CLOCK_REALTIME, &n->mtime);
	return n;
}

static struct entry *
copy_entries(const struct entry *e)
{
	struct entry *head = NULL, **tail = &head;

	for (; e; e = e->next) {
		*tail = must(calloc(1, sizeof(**tail)));
		(*tail)->name = must(strdup(e->name));
		(*tail)->node = e->node;
		tail = &(*tail)->next;
	}
	return head;
}

static char *
copy_bytes(const char *data, size_t size)
{
	char *copy = must(malloc(size ? size : 1));

	if (size)
		memcpy(copy, data, size);
	return copy;
}

/* After the reboot: everything as the disk holds it, from the root down. */
static void
revert(struct node *n)
{
	if (S_ISDIR(n->mode)) {
		n->entries = copy_entries(n->disk_entries);
		for (struct entry *e = n->entries; e; e = e->next)
			revert(e->node);
	} else {
		n->data = copy_bytes(n->disk_data, n->disk_size);
		n->size = n->disk_size;
	}
}

/* One more step: false when the power went on this one (then it is not done). */
static bool
step(const char *op, const char *path)
{
	sigset_t none;

	steps++;
	fprintf(log_file, "step %ld %s %s\n", steps, op, path);
	if (steps != cut_at)
		return fflush(log_file), true;
	fprintf(log_file, "cut %ld\n", steps);
	fflush(log_file);
	sigemptyset(&none);
	while (!rebooted)
		sigsuspend(&none);
	revert(root);
	cut_at = 0;
	return false;
}

static struct entry **
find_in(struct node *dir, const char *name, size_t len)
{
	struct entry **e;

	for (e = &dir->entries; *e; e = &(*e)->next)
		if (strlen((*e)->name) == len && memcmp((*e)->name, name, len) == 0)
			break;
	return e;
}

/* The node at path, or NULL. */
static struct node *
lookup(const char *path)
{
	struct node *n = root;

	while (n && *path) {
		size_t len;
		struct entry *e;

		while (*path == '/')
			path++;
		if (!*path)
			break;
		len = strcspn(path, "/");
		if (!S_ISDIR(n->mode))
			return NULL;
		e = *find_in(n, path, len);
		n = e ? e->node : NULL;
		path += len;
	}
	return n;
}

/* The directory holding path, and where path's name starts. */
static struct node *
parent_of(const char *path, const char **name)
{
	const char *slash = strrchr(path, '/');
	char *dir = must(strndup(path, (size_t)(slash - path)));
	struct node *n = lookup(dir);

	free(dir);
	*name = slash + 1;
	return n && S_ISDIR(n->mode) ? n : NULL;
}

static int
add_entry(const char *path, struct node *n)
{
	const char *name;
	struct node *dir = parent_of(path, &name);
	struct entry **e;

	if (!dir)
		return -ENOENT;
	e = find_in(dir, name, strlen(name));
	if (*e)
		return -EEXIST;
	*e = must(calloc(1, sizeof(**e)));
	(*e)->name = must(strdup(name));
	(*e)->node = n;
	return 0;
}

static int
fs_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
	struct node *n = lookup(path);

	(void)fi;
	if (!n)
		return -ENOENT;
	memset(st, 0, sizeof(*st));
	st->st_mode = n->mode;
	st->st_ino = n->ino;
	st->st_nlink = S_ISDIR(n->mode) ? 2 : 1;
	st->st_size = (off_t)n->size;
	st->st_uid = getuid();
	st->st_gid = getgid();
	st->st_mtim = st->st_ctim = st->st_atim = n->mtime;
	return 0;
}

static int
fs_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t off,
    struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
	struct node *n = lookup(path);

	(void)off, (void)fi, (void)flags;
	if (!n || !S_ISDIR(n->mode))
		return -ENOENT;
	fill(buf, ".", NULL, 0, 0);
	fill(buf, "..", NULL, 0, 0);
	for (struct entry *e = n->entries; e; e = e->next)
		fill(buf, e->name, NULL, 0, 0);
	return 0;
}

static int
fs_mkdir(const char *path, mode_t mode)
{
	if (!step("mkdir", path))
		return -EIO;
	return add_entry(path, new_node(S_IFDIR | (mode & 07777)));
}

static int
fs_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	(void)fi;
	if (!step("create", path))
		return -EIO;
	return add_entry(path, new_node(S_IFREG | (mode & 07777)));
}

static int
resize(struct node *n, size_t size)
{
	char *data = realloc(n->data, size ? size : 1);

	if (!data)
		return -ENOSPC;
	if (size > n->size)
		memset(data + n->size, 0, size - n->size);
	n->data = data;
	n->size = size;
	clock_gettime(CLOCK_REALTIME, &n->mtime);
	return 0;
}

static int
fs_open(const char *path, struct fuse_file_info *fi)
{
	struct node *n = lookup(path);

	if (!n)
		return -ENOENT;
	if ((fi->flags & O_TRUNC) && n->size) {
		if (!step("truncate", path))
			return -EIO;
		return resize(n, 0);
	}
	return 0;
}

static int
fs_read(const char *path, char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
	struct node *n = lookup(path);

	(void)fi;
	if (!n || S_ISDIR(n->mode))
		return -ENOENT;
	if ((size_t)off >= n->size)
		return 0;
	if (size > n->size - (size_t)off)
		size = n->size - (size_t)off;
	memcpy(buf, n->data + off, size);
	return (int)size;
}

static int
fs_write(const char *path, const char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
	struct node *n = lookup(path);
	int r;

	(void)fi;
	if (!step("write", path))
		return -EIO;
	if (!n || S_ISDIR(n->mode))
		return -ENOENT;
	if ((size_t)off + size > n->size && (r = resize(n, (size_t)off + size)) < 0)
		return r;
	memcpy(n->data + off, buf, size);
	return (int)size;
}

static int
fs_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
	struct node *n = lookup(path);

	(void)fi;
	if (!step("truncate", path))
		return -EIO;
	return n ? resize(n, (size_t)size) : -ENOENT;
}

static int
fs_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
	struct node *n = lookup(path);

	(void)fi;
	if (!step(datasync ? "fdatasync" : "fsync", path))
		return -EIO;
	if (!n)
		return -ENOENT;
	free(n->disk_data);
	n->disk_data = copy_bytes(n->data, n->size);
	n->disk_size = n->size;
	return 0;
}

static int
fs_fsyncdir(const char *path, int datasync, struct fuse_file_info *fi)
{
	struct node *n = lookup(path);

	(void)datasync, (void)fi;
	if (!step("fsyncdir", path))
		return -EIO;
	if (!n || !S_ISDIR(n->mode))
		return -ENOENT;
	n->disk_entries = copy_entries(n->entries);
	return 0;
}

static int
fs_unlink(const char *path)
{
	const char *name;
	struct node *dir;
	struct entry **e, *gone;

	if (!step("unlink", path))
		return -EIO;
	if (!(dir = parent_of(path, &name)) || !*(e = find_in(dir, name, strlen(name))))
		return -ENOENT;
	gone = *e;
	*e = gone->next;
	free(gone->name);
	free(gone);
	return 0;
}

static int
fs_rename(const char *from, const char *to, unsigned int flags)
{
	const char *from_name, *to_name;
	struct node *from_dir, *to_dir;
	struct entry **src, **dst;

	if (!step(flags & RENAME_EXCHANGE ? "exchange" : "rename", to))
		return -EIO;
	if (!(from_dir = parent_of(from, &from_name)) || !(to_dir = parent_of(to, &to_name)) ||
	    !*(src = find_in(from_dir, from_name, strlen(from_name))))
		return -ENOENT;
	dst = find_in(to_dir, to_name, strlen(to_name));
	if (flags & RENAME_EXCHANGE) {
		struct node *swap;
		if (!*dst)
			return -ENOENT;
		swap = (*src)->node, (*src)->node = (*dst)->node, (*dst)->node = swap;
		return 0;
	}
	if (*dst && (flags & RENAME_NOREPLACE))
		return -EEXIST;
	if (!*dst) {
		*dst = must(calloc(1, sizeof(**dst)));
		(*dst)->name = must(strdup(to_name));
		src = find_in(from_dir, from_name, strlen(from_name));
	}
	(*dst)->node = (*src)->node;
	if (*src != *dst) {
		struct entry *gone = *src;
		*src = gone->next;
		free(gone->name);
		free(gone);
	}
	return 0;
}

static int
fs_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi)
{
	(void)tv, (void)fi;
	return lookup(path) ? 0 : -ENOENT;
}

static int
fs_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	struct node *n = lookup(path);

	(void)fi;
	if (!n)
		return -ENOENT;
	n->mode = (n->mode & S_IFMT) | (mode & 07777);
	return 0;
}

/* No kernel caches: after the reboot, readers must see what the disk holds. */
static void *
fs_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	(void)conn;
	cfg->direct_io = 1;
	cfg->entry_timeout = cfg->attr_timeout = cfg->negative_timeout = 0;
	cfg->use_ino = 1;
	return NULL;
}

static void
fs_destroy(void *private_data)
{
	(void)private_data;
	fprintf(log_file, "steps %ld\n", steps);
	fclose(log_file);
}

static const struct fuse_operations operations = {
	.getattr = fs_getattr,
	.readdir = fs_readdir,
	.mkdir = fs_mkdir,
	.create = fs_create,
	.open = fs_open,
	.read = fs_read,
	.write = fs_write,
	.truncate = fs_truncate,
	.fsync = fs_fsync,
	.fsyncdir = fs_fsyncdir,
	.unlink = fs_unlink,
	.rename = fs_rename,
	.utimens = fs_utimens,
	.chmod = fs_chmod,
	.init = fs_init,
	.destroy = fs_destroy,
};

int
main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_reboot };
	sigset_t usr1;
	char *fuse_argv[] = { argv[0], "-f", "-s", argc > 3 ? argv[3] : NULL, NULL };

	if (argc != 4) {
		fprintf(stderr, "usage: crashfs LOG CUT_AT MOUNTPOINT\n");
		return 2;
	}
	if (!(log_file = fopen(argv[1], "w"))) {
		perror(argv[1]);
		return 1;
	}
	cut_at = strtol(argv[2], NULL, 10);
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	sigprocmask(SIG_BLOCK, &usr1, NULL);  /* taken only while cut (sigsuspend) */
	root = new_node(S_IFDIR | 0755);
	return fuse_main(4, fuse_argv, &operations, NULL);
}
