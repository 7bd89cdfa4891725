/*
 * playbook.c: Ansible: an inventory object checked as its yaml plugin would,
 * ansible-playbook run with private files, and its progress POSTed while it runs.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "config.h"
#include "files.h"
#include "http.h"
#include "job-internal.h"
#include "log.h"
#include "playbook.h"
#include "resolve.h"
#include "run.h"
#include "runuser.h"
#include "yaml.h"

/* --- the run: private files, ansible-playbook, progress --- */

/*
 * Where a playbook's private files are when it runs as LSO_RUN_USER, who
 * may not enter the state directory: /tmp (under systemd the unit's own,
 * which lives as long as the job), in a directory of that user's.
 */
#define PLAYBOOK_RUN_USER_TMP "/tmp"

static bool
run_user_dir(char dir[PATH_MAX], const char *id)
{
	return snprintf(dir, PATH_MAX, "%s/lso-playbook-%s", PLAYBOOK_RUN_USER_TMP, id) < PATH_MAX;
}

/* Remove a directory tree (the job's private files), whatever is in it. */
static int
remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st, (void)ftw;
	return type == FTW_DP ? rmdir(path) : unlink(path);
}

/*
 * A tree the run user owns is removed as that user: as root, a symlink it
 * put in place of a folder meanwhile would turn an unlink onto any file.
 */
static void
remove_run_user_tree(const char *dir)
{
	const char *why;
	uid_t uid;
	gid_t gid;
	pid_t pid;

	if (!runuser_ready(&why) || !runuser_ids(&uid, &gid) || access(dir, F_OK) < 0)
		return;
	if ((pid = fork()) == 0) {
		if (runuser_enter() == 0)
			nftw(dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
		_exit(0);
	}
	if (pid > 0)
		waitpid(pid, NULL, 0);
}

void
playbook_remove_files(const char *id)
{
	char dir[PATH_MAX];

	if (record_path(dir, "tmp", id, NULL))
		nftw(dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
	if (config.run_user && run_user_dir(dir, id))
		remove_run_user_tree(dir);
}

/*
 * A file only we (and the run user, if any: it is handed over, as it reads
 * it) can read, made new: -1 with errno.
 */
static int
private_file(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600), saved;
	uid_t uid;
	gid_t gid;

	if (fd >= 0 && runuser_ids(&uid, &gid) && fchown(fd, uid, gid) < 0) {
		saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

static bool
write_private_file(const char *path, const char *text)
{
	int fd = private_file(path), saved;
	size_t len = strlen(text);
	bool ok = fd >= 0 && write(fd, text, len) == (ssize_t)len;

	saved = errno;
	if (fd >= 0)
		close(fd);
	errno = saved;
	return ok;
}

/*
 * The job's private directory: under the state directory, only we can read
 * it; with a run user, its own under /tmp (the run user cannot enter the
 * state directory), made here: mkdir fails on anything already there, a
 * symlink too; handed over once filled.
 */
static bool
private_dir_path(const char *id, char dir[PATH_MAX])
{
	if (runuser_switches())
		return run_user_dir(dir, id);
	return record_path(dir, "tmp", id, NULL);
}

static bool
make_private_dir(const char *dir)
{
	char top[PATH_MAX];

	if (runuser_switches())
		return mkdir(dir, 0700) == 0;
	return record_path(top, "tmp", NULL, NULL) && (mkdir(top, 0700) == 0 || errno == EEXIST) &&
	    mkdir(dir, 0700) == 0;
}

static bool
hand_over_dir(const char *dir)
{
	uid_t uid;
	gid_t gid;

	return !runuser_ids(&uid, &gid) || lchown(dir, uid, gid) == 0;
}

/* The job's private directory and the paths of its inventory and extra vars in it; false: too long. */
static bool
playbook_paths(const char *id, char dir[PATH_MAX], char inventory[PATH_MAX], char vars[PATH_MAX])
{
	if (!private_dir_path(id, dir) ||
	    snprintf(inventory, PATH_MAX, "%s/inventory.yml", dir) >= PATH_MAX ||
	    snprintf(vars, PATH_MAX, "%s/extra_vars.yml", dir) >= PATH_MAX)
		return errno = ENAMETOOLONG, false;
	return true;
}

/*
 * lso's own values are tagged !unsafe like the client's (yaml.c tags every
 * string): a playbook's "{{ job_files_dir }}/out" works the same, and a root
 * directory whose name holds "{{" can never be templated. The client's
 * members by reference, not copied (a 1 MiB body's tree is some 5 MiB), but
 * for every copy of ours: Python's json keeps the last of duplicate keys,
 * lso's must win. NULL when out of memory.
 */
static cJSON *
extra_vars_object(const cJSON *client_vars, const char *id)
{
	cJSON *vars = cJSON_CreateObject();
	const cJSON *member;
	char dir[PATH_MAX];

	cJSON_ArrayForEach(member, client_vars) {
		if (!vars || strcmp(member->string, "job_id") == 0 ||
		    strcmp(member->string, "job_files_dir") == 0)
			continue;
		if (!cJSON_AddItemReferenceToObject(vars, member->string, (cJSON *)member)) {
			cJSON_Delete(vars);
			return NULL;
		}
	}
	if (vars && (!cJSON_AddStringToObject(vars, "job_id", id) ||
	    (files_job_dir(id, dir, sizeof(dir)) && !cJSON_AddStringToObject(vars, "job_files_dir", dir)))) {
		cJSON_Delete(vars);
		return NULL;
	}
	return vars;
}

char *
playbook_extra_vars(const cJSON *client_vars, const char *id)
{
	cJSON *vars = extra_vars_object(client_vars, id);
	char *yaml = vars ? yaml_text(vars) : NULL;

	cJSON_Delete(vars);
	return yaml;
}

/* The extra vars file, written from the tree as it is walked (yaml_write): no text of it in memory. */
static bool
write_extra_vars(const char *path, const cJSON *client_vars, const char *id)
{
	cJSON *vars = extra_vars_object(client_vars, id);
	int fd = vars ? private_file(path) : (errno = ENOMEM, -1), saved;
	bool ok = fd >= 0 && yaml_write(fd, vars);

	saved = ok ? 0 : errno ? errno : ENOMEM;
	if (fd >= 0)
		close(fd);
	cJSON_Delete(vars);
	errno = saved;
	return ok;
}

bool
playbook_write_files(const char *id, const char *inventory, const cJSON *client_vars)
{
	char dir[PATH_MAX], inventory_path[PATH_MAX], vars[PATH_MAX];
	int saved;

	if (!playbook_paths(id, dir, inventory_path, vars))
		return false;
	if (!make_private_dir(dir))
		return false;
	if (write_private_file(inventory_path, inventory ? inventory : "") &&
	    write_extra_vars(vars, client_vars, id) && hand_over_dir(dir))
		return true;
	saved = errno;
	playbook_remove_files(id);
	errno = saved;
	return false;
}

/* The files playbook_write_files wrote at submission: there still (a reboot empties no state dir, but a hand may). */
static bool
find_playbook_files(const struct job *j, char dir[PATH_MAX], char inventory[PATH_MAX],
    char vars[PATH_MAX])
{
	return playbook_paths(j->id, dir, inventory, vars) && access(inventory, R_OK) == 0 &&
	    access(vars, R_OK) == 0;
}

/* ansible-playbook: $ANSIBLE_PLAYBOOK, else the first on PATH. */
static bool
find_ansible(struct program *prog)
{
	const char *path = getenv("PATH"), *dir, *end;

	if (config.ansible_playbook) {
		snprintf(prog->path, sizeof(prog->path), "%s", config.ansible_playbook);
		return config.ansible_playbook[0] == '/' &&
		    resolve_check(prog->path, true, prog) == OUTCOME_OK;
	}
	for (dir = path ? path : "/usr/local/bin:/usr/bin:/bin"; *dir; dir = *end ? end + 1 : end) {
		end = dir + strcspn(dir, ":");
		if (end > dir && snprintf(prog->path, sizeof(prog->path), "%.*s/ansible-playbook",
		    (int)(end - dir), dir) < (int)sizeof(prog->path) &&
		    resolve_check(prog->path, true, prog) == OUTCOME_OK)
			return true;
	}
	return false;
}

/* What the runner keeps while reading a playbook's stdout. */
struct playbook_output {
	struct job *job;
	struct jbuf line;       /* the line being assembled */
	struct jbuf pending;    /* finished task blocks not yet taken by the progress process */
	int progress_fd;        /* -1: no progress */
	size_t dropped_lines;
};

/* Hand what is pending to the progress process without ever waiting for it. */
static void
push_progress(struct playbook_output *o)
{
	ssize_t n;

	if (o->progress_fd < 0 || o->pending.len == 0)
		return;
	n = write(o->progress_fd, o->pending.data, o->pending.len);
	if (n > 0) {
		memmove(o->pending.data, o->pending.data + n, o->pending.len - (size_t)n);
		o->pending.len -= (size_t)n;
	}
}

/* A blank line ends a task's block: the progress process posts whole blocks. */
static void
end_block(struct playbook_output *o)
{
	if (o->progress_fd < 0 || o->pending.len == 0 || o->pending.data[o->pending.len - 1] != '\n' ||
	    (o->pending.len > 1 && o->pending.data[o->pending.len - 2] == '\n'))
		return;
	jbuf_add(&o->pending, "\n", 1);
	push_progress(o);
}

static void
take_line(struct playbook_output *o)
{
	size_t len = o->line.len;

	if (len && o->line.data[len - 1] == '\r')
		len--;
	o->line.len = 0;
	if (len == 0) {
		end_block(o);
		return;
	}
	callback_add_line(o->job, o->line.data, len);
	if (o->progress_fd < 0)
		return;
	if (o->pending.len + len >= PROGRESS_PENDING_MAX_BYTES) {
		o->dropped_lines++;
		return;
	}
	jbuf_add(&o->pending, o->line.data, len);
	jbuf_add(&o->pending, "\n", 1);
}

static void
on_playbook_stdout(const char *data, size_t len, void *ctx)
{
	struct playbook_output *o = ctx;

	for (const char *end = data + len, *nl; data < end; data = nl + 1) {
		nl = memchr(data, '\n', (size_t)(end - data));
		if (o->line.len < PLAYBOOK_LINE_MAX_BYTES)
			jbuf_add(&o->line, data, ((nl ? nl : end) - data) <
			    (ptrdiff_t)(PLAYBOOK_LINE_MAX_BYTES - o->line.len) ? (size_t)((nl ? nl : end) - data) :
			    PLAYBOOK_LINE_MAX_BYTES - o->line.len);
		if (!nl)
			break;
		take_line(o);
	}
}

/* {"progress": [lines]} for the lines of text, at most PROGRESS_BODY_MAX_BYTES of the newest. */
static void
progress_body(struct jbuf *b, const char *text, size_t len)
{
	bool first = true;

	if (len > PROGRESS_BODY_MAX_BYTES) {
		const char *from = memchr(text + len - PROGRESS_BODY_MAX_BYTES, '\n', PROGRESS_BODY_MAX_BYTES);
		len -= from ? (size_t)(from + 1 - text) : len;
		text = from ? from + 1 : text;
	}
	jbuf_puts(b, "{\"progress\":[");
	callback_json_lines(b, text, len, &first);
	jbuf_puts(b, "]}");
}

/* End of the last whole block ("\n\n") in the buffer, 0 when there is none. */
static size_t
whole_blocks(const struct jbuf *in)
{
	for (size_t i = in->len; i >= 2; i--)
		if (in->data[i - 1] == '\n' && in->data[i - 2] == '\n')
			return i;
	return 0;
}

/* Wait until fd is readable or ms pass: true when readable. */
static bool
wait_readable(int fd, int64_t ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };

	return poll(&pfd, 1, ms > 0 ? (int)ms : 0) > 0;
}

/*
 * The progress process: reads task blocks from the runner and POSTs them, at
 * most one POST per interval, so a slow receiver delays only itself.
 */
static void
post_progress(int fd, const struct job *j)
{
	struct jbuf in = { 0 }, all = { 0 }, body = { 0 };
	struct callback_curl *curl;
	char buf[65536], why[CURL_ERROR_SIZE + 64];
	int64_t next_post_ms = 0;
	size_t ready;
	bool eof = false;
	ssize_t n;

	if (!(curl = callback_load_curl(why, sizeof(why)))) {
		log_line(j->id, "progress job=%s: %s", j->id, why);
		_exit(0);
	}
	while (!eof) {
		n = read(fd, buf, sizeof(buf));
		if (n > 0)
			jbuf_add(&in, buf, (size_t)n);
		eof = n == 0 || (n < 0 && errno != EINTR);
		ready = eof ? in.len : whole_blocks(&in);
		if (ready == 0 || (!eof && http_now_ms() < next_post_ms &&
		    wait_readable(fd, next_post_ms - http_now_ms())))
			continue; /* more is coming: post it together */
		if (!j->incremental)
			jbuf_add(&all, in.data, ready);
		body.len = 0;
		progress_body(&body, j->incremental ? in.data : all.data, j->incremental ? ready : all.len);
		next_post_ms = http_now_ms() + PROGRESS_INTERVAL_MS;
		*why = '\0';
		if (!callback_post(curl, j->progress_url, &body, why, sizeof(why)) || *why)
			log_line(j->id, "progress job=%s: %s", j->id, *why ? why : "no answer");
		memmove(in.data, in.data + ready, in.len - ready);
		in.len -= ready;
	}
	_exit(0);
}

/* Start the progress process; its pipe's write end in *fd (non-blocking), or -1. */
static pid_t
start_progress(const struct job *j, int *fd)
{
	int p[2];
	pid_t pid;

	*fd = -1;
	if (!j->progress_url || pipe2(p, O_CLOEXEC) < 0)
		return -1;
	fcntl(p[1], F_SETPIPE_SZ, PROGRESS_PENDING_MAX_BYTES);
	pid = fork();
	if (pid == 0) {
		/* Holds nothing of the job (its lock above all), and dies with the runner. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		signal(SIGTERM, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		dup2(p[0], 3);
		close_range(4, ~0U, 0);
		post_progress(3, j);
	}
	close(p[0]);
	if (pid < 0) {
		close(p[1]);
		return -1;
	}
	fcntl(p[1], F_SETFL, O_NONBLOCK);
	*fd = p[1];
	return pid;
}

/* Let the progress process post the last blocks, within one callback timeout. */
static void
stop_progress(pid_t pid, struct playbook_output *o)
{
	int64_t end = http_now_ms() + (config.callback_timeout_sec + 1) * 1000;

	if (o->progress_fd >= 0) {
		fcntl(o->progress_fd, F_SETFL, 0);
		for (struct pollfd pfd = { o->progress_fd, POLLOUT, 0 };
		    o->pending.len && poll(&pfd, 1, (int)(end - http_now_ms())) > 0;)
			push_progress(o);
		close(o->progress_fd);
	}
	if (o->dropped_lines)
		log_line(o->job->id, "progress job=%s: %zu lines dropped, receiver too slow",
		    o->job->id, o->dropped_lines);
	while (pid > 0 && waitpid(pid, NULL, WNOHANG) == 0) {
		if (http_now_ms() >= end) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			break;
		}
		poll(NULL, 0, PROGRESS_EXIT_POLL_MS);
	}
}

static void
playbook_failed(struct job *j, const char *reason)
{
	j->failure = strdup(reason);
	j->result.start_failed = true;
	j->result.return_code = -1;
	jbuf_puts(&j->result.output, reason);
}

/*
 * The checked playbook as ansible-playbook gets it: the folder it was found
 * in (the one checked, passed as RUN_PASSED_FD) and its name there, so that
 * its roles/ and relative includes are that folder's. False when the name
 * no longer holds the file that was checked.
 */
static bool
checked_playbook_path(const struct program *prog, char *path, size_t size)
{
	const char *leaf = strrchr(prog->path, '/');
	struct stat in_folder, checked;

	if (!leaf || prog->dir_fd < 0 || prog->fd < 0 ||
	    fstatat(prog->dir_fd, leaf + 1, &in_folder, AT_SYMLINK_NOFOLLOW) < 0 ||
	    fstat(prog->fd, &checked) < 0 ||
	    in_folder.st_dev != checked.st_dev || in_folder.st_ino != checked.st_ino)
		return false;
	return snprintf(path, size, "/proc/self/fd/%d/%s", RUN_PASSED_FD, leaf + 1) < (int)size;
}

/*
 * Under a run user, whose home is usually none (/nonexistent): HOME is the
 * private directory, where ansible-playbook keeps ~/.ansible (its local
 * temporary files). And a task on a local connection puts its files in
 * "~USER/.ansible/tmp", the passwd entry's home: when that is no folder,
 * ANSIBLE_REMOTE_TEMP (unless lso's environment sets it) is one in the
 * private directory. at: two free slots of the environment.
 */
struct run_user_vars {
	char home[PATH_MAX + 8], remote_tmp[PATH_MAX + 32];
};

static void
run_user_ansible_env(const char **at, const char *dir, struct run_user_vars *vars)
{
	const char *user_home = runuser_home();
	struct stat st;

	if (!runuser_switches())
		return;
	snprintf(vars->home, sizeof(vars->home), "HOME=%s", dir);
	*at++ = vars->home;
	if (getenv("ANSIBLE_REMOTE_TEMP") || getenv("ANSIBLE_REMOTE_TMP") ||
	    (user_home && stat(user_home, &st) == 0 && S_ISDIR(st.st_mode)))
		return;
	snprintf(vars->remote_tmp, sizeof(vars->remote_tmp), "ANSIBLE_REMOTE_TEMP=%s/remote-tmp", dir);
	*at = vars->remote_tmp;
}

/* Run the playbook: ansible-playbook -i INVENTORY -e @VARS PLAYBOOK, no shell. */
void
playbook_run(struct job *j, struct run_control *control)
{
	/*
	 * Only the yaml plugin reads the inventory: "auto" would take a key
	 * "plugin" as its config. Two free slots before the last NULL: see
	 * run_user_ansible_env.
	 */
	const char *ansible_env[] = { "ANSIBLE_NOCOLOR=1", "ANSIBLE_FORCE_COLOR=0",
		"ANSIBLE_RETRY_FILES_ENABLED=0", "ANSIBLE_INVENTORY_UNPARSED_FAILED=1",
		"ANSIBLE_INVENTORY_ENABLED=yaml", "PYTHONUNBUFFERED=1", NULL, NULL, NULL };
	char dir[PATH_MAX], inventory[PATH_MAX], vars[PATH_MAX], vars_arg[PATH_MAX + 1], why[PATH_MAX + 64];
	struct run_user_vars user_vars;
	char playbook[PATH_MAX];
	struct playbook_output out = { .job = j, .progress_fd = -1 };
	struct program ansible = { .fd = -1, .dir_fd = -1 };
	pid_t progress;

	if (!find_playbook_files(j, dir, inventory, vars)) {
		snprintf(why, sizeof(why), "cannot read the inventory: %s", strerror(errno));
		playbook_failed(j, why);
	} else if (!find_ansible(&ansible)) {
		playbook_failed(j, "ansible-playbook not found (ANSIBLE_PLAYBOOK, PATH)");
	} else if (!checked_playbook_path(&j->prog, playbook, sizeof(playbook))) {
		playbook_failed(j, "the playbook was replaced after it was checked");
	} else {
		const char *args[] = { "-i", inventory, "-e", vars_arg, playbook };

		snprintf(vars_arg, sizeof(vars_arg), "@%s", vars);
		run_user_ansible_env(ansible_env + 6, dir, &user_vars);
		progress = start_progress(j, &out.progress_fd);
		control->keep_pid = progress;
		control->timeout_sec = config.playbook_max_sec;
		control->idle_timeout_sec = config.playbook_idle_sec;
		control->on_stdout = on_playbook_stdout;
		control->ctx = &out;
		control->extra_env = ansible_env;
		control->pass_fd = j->prog.dir_fd;
		run_program(&ansible, args, 5, j->id, control, &j->result);
		if (out.line.len)
			take_line(&out);
		end_block(&out);
		stop_progress(progress, &out);
		if (j->result.start_failed)
			playbook_failed(j, j->result.output.data ? j->result.output.data : "");
	}
	resolve_release(&ansible);
	jbuf_free(&out.line);
	jbuf_free(&out.pending);
	playbook_remove_files(j->id);
}

/* --- inventory checks: what Ansible's plugins would refuse, refused at once --- */

/* Python's name of a JSON value's type, as Ansible's messages print it. */
static const char *
python_type(const cJSON *item)
{
	if (cJSON_IsArray(item))
		return "<class 'list'>";
	if (cJSON_IsBool(item))
		return "<class 'bool'>";
	if (cJSON_IsNumber(item))
		return item->valuedouble == (double)(long long)item->valuedouble ?
		    "<class 'int'>" : "<class 'float'>";
	return "<class 'object'>";
}

/*
 * Check an inventory object the way Ansible's yaml inventory plugin does,
 * with its wording; NULL when Ansible would take it. Fast: no Ansible run.
 */
static const char *
inventory_group_problem(const char *group, const cJSON *data, char *why, size_t why_size,
    int depth)
{
	static const char *const sections[] = { "vars", "children", "hosts" };
	const cJSON *section, *entry;

	if (depth > REQUEST_INVENTORY_DEPTH_MAX)
		return snprintf(why, why_size, "Inventory groups nest too deep."), why;
	if (!cJSON_IsObject(data))
		return NULL; /* Ansible skips it with a warning */
	for (size_t i = 0; i < 3; i++) {
		section = cJSON_GetObjectItemCaseSensitive(data, sections[i]);
		if (section && !cJSON_IsObject(section) && !cJSON_IsNull(section) &&
		    !cJSON_IsString(section)) {
			snprintf(why, why_size, "Invalid \"%s\" entry for \"%s\" group, requires "
			    "a dictionary, found \"%s\" instead.", sections[i], group, python_type(section));
			return why;
		}
	}
	cJSON_ArrayForEach(entry, cJSON_GetObjectItemCaseSensitive(data, "hosts"))
		if (entry->string && !cJSON_IsObject(entry) && !cJSON_IsNull(entry)) {
			snprintf(why, why_size, "Invalid variables for host \"%s\" in group \"%s\", "
			    "requires a dictionary, found \"%s\" instead.", entry->string, group,
			    cJSON_IsString(entry) ? "<class 'str'>" : python_type(entry));
			return why;
		}
	cJSON_ArrayForEach(entry, cJSON_GetObjectItemCaseSensitive(data, "children"))
		if (entry->string &&
		    inventory_group_problem(entry->string, entry, why, why_size, depth + 1))
			return why;
	return NULL;
}

const char *
playbook_inventory_object_problem(const cJSON *inventory, char *why, size_t why_size)
{
	const cJSON *group;

	if (!inventory->child)
		return snprintf(why, why_size, "Parsed empty YAML file"), why;
	if (cJSON_GetObjectItemCaseSensitive(inventory, "plugin"))
		return snprintf(why, why_size, "Plugin configuration YAML file, not YAML inventory"), why;
	cJSON_ArrayForEach(group, inventory)
		if (inventory_group_problem(group->string, group, why, why_size, 0))
			return why;
	return NULL;
}
