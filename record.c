/*
 * record.c: the state directory: a job's record (<id>.json), its spare
 * (<id>.next) and its lock file (<id>.lock); every record written is on disk
 * (file and directory entry) before record_write returns.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "config.h"
#include "file.h"
#include "job-internal.h"
#include "log.h"

/*
 * Now in UTC, RFC 3339 with milliseconds. The date is computed by hand (days
 * to civil date, after H. Hinnant): glibc's gmtime_r and strftime would read
 * /etc/localtime on every request.
 */
void
record_now(char buf[32])
{
	struct timespec ts;
	long long days, secs, era, doe, yoe, doy, mp, year;
	unsigned month, day;

	clock_gettime(CLOCK_REALTIME, &ts);
	days = ts.tv_sec / 86400;
	secs = ts.tv_sec % 86400;
	days += 719468;
	era = days / 146097;
	doe = days - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	day = (unsigned)(doy - (153 * mp + 2) / 5 + 1);
	month = (unsigned)(mp < 10 ? mp + 3 : mp - 9);
	year = yoe + era * 400 + (month <= 2);
	snprintf(buf, 32, "%04u-%02u-%02uT%02u:%02u:%02u.%03uZ", (unsigned)year % 10000,
	    month % 100, day % 100, (unsigned)(secs / 3600), (unsigned)(secs / 60 % 60),
	    (unsigned)(secs % 60), (unsigned)(ts.tv_nsec / 1000000) % 1000);
}

/* "$LSO_STATE_DIR/<sub>/<file><suffix>" into buf; false when it does not fit. */
bool
record_path(char buf[PATH_MAX], const char *sub, const char *file, const char *suffix)
{
	int n = snprintf(buf, PATH_MAX, "%s/%s%s%s%s", config.state_dir, sub,
	    file ? "/" : "", file ? file : "", suffix ? suffix : "");

	return n > 0 && n < PATH_MAX;
}

/*
 * fsync a directory: the entries created, renamed or exchanged in it are on
 * disk. One call covers every entry of the directory, so a first record and
 * its lock file cost one.
 */
static int
sync_dir(const char *path)
{
	int fd, r;

	if (!config.sync_records)
		return 0;
	if ((fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return -1;
	r = fsync(fd);
	close(fd);
	return r;
}

/* The file's data (and size) on disk; not its entry, see sync_dir. */
static int
sync_data(int fd)
{
	return config.sync_records ? fdatasync(fd) : 0;
}

int
record_sync_data(int fd)
{
	return sync_data(fd);
}

/* Its entry is on disk with the final record's, written next in the same directory (sync_dir). */
int
record_callback_open(const char *id, bool to_write)
{
	char path[PATH_MAX];

	if (!record_path(path, "jobs", id, ".callback"))
		return errno = ENAMETOOLONG, -1;
	return to_write ? open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640) :
	    open(path, O_RDONLY | O_CLOEXEC);
}

/* mkdir path, whose entry is on disk (in parent) when it is new; 0 when it exists. */
static int
make_dir(const char *path, const char *parent)
{
	if (mkdir(path, 0750) < 0)
		return errno == EEXIST ? 0 : -1;
	return sync_dir(parent);
}

int
record_make_dirs(void)
{
	char path[PATH_MAX], parent[PATH_MAX];

	snprintf(parent, sizeof(parent), "%s", config.state_dir);
	if (make_dir(config.state_dir, dirname(parent)) < 0)
		return -1;
	if (!record_path(path, "jobs", NULL, NULL) || make_dir(path, config.state_dir) < 0)
		return -1;
	if (!record_path(path, "slots", NULL, NULL) || make_dir(path, config.state_dir) < 0)
		return -1;
	return 0;
}

static void
json_string_or_null(struct jbuf *b, const char *s)
{
	json_string(b, s && *s ? s : NULL);
}

/* A record up to its result, whose text comes next (record_stream). */
static void
record_head(const struct job *j, struct jbuf *b)
{
	jbuf_printf(b, "{\"job_id\":\"%s\",\"kind\":", j->id);
	json_string(b, job_kind_names[j->kind]);
	jbuf_printf(b, ",\"status\":\"%s\",\"name\":", job_status_names[j->status]);
	json_string(b, j->name);
	jbuf_puts(b, ",\"args\":[");
	for (size_t i = 0; i < j->nargs; i++) {
		jbuf_puts(b, i ? "," : "");
		json_string(b, j->args[i]);
	}
	jbuf_puts(b, "],\"created_at\":");
	json_string_or_null(b, j->created_at);
	jbuf_puts(b, ",\"started_at\":");
	json_string_or_null(b, j->started_at);
	jbuf_puts(b, ",\"finished_at\":");
	json_string_or_null(b, j->finished_at);
	jbuf_puts(b, ",\"result\":");
}

/* A record after its result: the callback, its last member. */
static void
record_tail(const struct job *j, struct jbuf *b)
{
	jbuf_puts(b, ",\"callback\":");
	if (j->callback_url) {
		jbuf_puts(b, "{\"url\":");
		json_string(b, j->callback_url);
		jbuf_printf(b, ",\"attempts\":%ld,\"delivered\":%s,\"last_error\":",
		    j->attempts, j->delivered ? "true" : "false");
		json_string_or_null(b, j->last_error);
		jbuf_puts(b, "}");
	} else {
		jbuf_puts(b, "null");
	}
	jbuf_puts(b, "}\n");
}

/*
 * Where a record's result lies: {"output":"...","return_code":N,"status":"..."}
 * from start to end, the output's escaped text from output_start to
 * output_end. Found by scanning: client strings are escaped, so the first
 * ,"result":{"output":" can only be ours, and the output ends at its first
 * unescaped quote, the result at the first brace after it.
 */
struct result_span {
	off_t start, output_start, output_end, end;
};

static int
find_result(int fd, off_t size, struct result_span *span)
{
	static const char key[] = ",\"result\":{\"output\":\"";
	char buf[SPOOL_CHUNK_BYTES];
	size_t matched = 0, key_len = strlen(key);
	bool in_output = false, escaped = false, after_output = false;
	off_t at = 0;
	ssize_t n;

	while (at < size) {
		if ((n = pread(fd, buf, sizeof(buf), at)) <= 0)
			return n == 0 ? (errno = EINVAL, -1) : -1;
		for (ssize_t i = 0; i < n; i++) {
			char c = buf[i];
			off_t here = at + i;

			if (after_output && c == '}') {
				span->end = here + 1;
				return 0;
			} else if (after_output) {
				continue;
			} else if (in_output && escaped) {
				escaped = false;
			} else if (in_output && c == '\\') {
				escaped = true;
			} else if (in_output && c == '"') {
				span->output_end = here;
				in_output = false, after_output = true;
			} else if (!in_output) {
				matched = c == key[matched] ? matched + 1 : c == key[0];
				if (matched == key_len) {
					span->start = here + 1 - (off_t)key_len + (off_t)strlen(",\"result\":");
					span->output_start = here + 1;
					in_output = true;
				}
			}
		}
		at += n;
	}
	return errno = EINVAL, -1;
}

/* The recorded result's text, as it is, into s: a job's result is written once, then kept. */
static int
copy_recorded_result(struct spool_sink *s, int fd, off_t size)
{
	struct result_span span;

	if (find_result(fd, size, &span) < 0)
		return -1;
	return spool_copy(s, fd, span.start, span.end);
}

/*
 * j's record into s; the output streamed from the run's spool, or, once
 * recorded (a resumed delivery), copied from the record at recorded_fd.
 */
static void
record_stream(const struct job *j, struct spool_sink *s, int recorded_fd, off_t recorded_size)
{
	struct jbuf b = { 0 };

	record_head(j, &b);
	spool_put(s, b.data ? b.data : "", b.len);
	if (!j->has_result)
		spool_puts(s, "null");
	else if (j->result_recorded && copy_recorded_result(s, recorded_fd, recorded_size) < 0)
		s->failed = true;
	else if (!j->result_recorded)
		run_result_stream(s, &j->result);
	b.len = 0;
	record_tail(j, &b);
	spool_put(s, b.data ? b.data : "", b.len);
	if (b.failed)
		s->failed = true;
	jbuf_free(&b);
}

/*
 * A record's file, opened and flock'ed (how), and still the one at path once
 * the lock is held: records trade places with their spare (record_write), so
 * the file one opened may have moved while one waited.
 */
static int
open_locked(const char *path, int flags, int how, struct stat *held)
{
	struct stat named;

	for (int tries = 0; tries < RECORD_OPEN_TRIES; tries++) {
		int fd = open(path, flags | O_CLOEXEC, 0640);

		if (fd < 0)
			return -1;
		if (flock(fd, how) == 0 && fstat(fd, held) == 0 && stat(path, &named) == 0 &&
		    held->st_ino == named.st_ino && held->st_dev == named.st_dev)
			return fd;
		close(fd);
	}
	return errno = EAGAIN, -1;
}

int
record_result_text(const char *id, struct spool_sink *s)
{
	char path[PATH_MAX];
	struct stat held;
	int fd, r, saved;

	if (!record_path(path, "jobs", id, ".json"))
		return errno = ENAMETOOLONG, -1;
	if ((fd = open_locked(path, O_RDONLY, LOCK_SH, &held)) < 0)
		return -1;
	r = copy_recorded_result(s, fd, held.st_size);
	saved = errno;
	close(fd);
	errno = saved;
	return r;
}

/* A job's record as stored, read under a shared lock so no writer reuses it meanwhile. */
char *
record_text(const char *id, size_t *len)
{
	char path[PATH_MAX], *text;
	struct stat held;
	int fd;

	if (!record_path(path, "jobs", id, ".json"))
		return errno = ENAMETOOLONG, NULL;
	if ((fd = open_locked(path, O_RDONLY, LOCK_SH, &held)) < 0)
		return NULL;
	if (held.st_size == 0) {  /* killed while written first: as none */
		close(fd);
		return errno = ENOENT, NULL;
	}
	text = file_read_fd(fd, len);
	close(fd);
	return text;
}

/*
 * j's record at the start of fd, which held old_size bytes before; the
 * record being replaced, when j's result is as recorded, read at path.
 */
static int
write_whole(int fd, const struct job *j, const char *path, off_t old_size)
{
	static struct spool_sink sink;
	struct stat recorded = { 0 };
	int from = -1, r;

	if (j->has_result && j->result_recorded &&
	    ((from = open(path, O_RDONLY | O_CLOEXEC)) < 0 || fstat(from, &recorded) < 0)) {
		if (from >= 0)
			close(from);
		return -1;
	}
	spool_sink_fd(&sink, fd, true, 0);
	errno = 0;
	record_stream(j, &sink, from, recorded.st_size);
	r = spool_flush(&sink);
	if (from >= 0)
		close(from);
	if (r < 0)
		return errno ? -1 : (errno = EIO, -1);
	return old_size > sink.at ? ftruncate(fd, sink.at) : 0;
}

/* The spare, holding the new text, becomes the record; the old record becomes the spare. */
static int
swap_in(const char *spare, const char *path)
{
	if (renameat2(AT_FDCWD, spare, AT_FDCWD, path, RENAME_EXCHANGE) == 0)
		return 0;
	/* The first record has nothing to trade with; some file systems cannot trade. */
	if (errno == ENOENT || errno == EINVAL || errno == ENOSYS)
		return rename(spare, path);
	return -1;
}

/*
 * Write the record so that a reader sees the old one or the new one, whole,
 * and so that after a power cut the disk holds one of them, whole.
 * The new text goes into the job's spare file (<id>.next), which then trades
 * places with <id>.json; the old record is the next spare. An update thus
 * creates and deletes no file: on ext4 without a journal, creating a file
 * skips, one by one, every inode deleted in the last minute (see
 * bench/README.md). The spare is overwritten under an exclusive flock, and
 * readers hold a shared one (record_text), so nobody reads a spare while it
 * is rewritten. The writers of a job take turns: they hold its lock
 * (j->lock_fd).
 *
 * Durable before it returns (LSO_SYNC_RECORDS): the spare's data is synced
 * before the trade, so the entry never names a half-written file, and the
 * directory after it, so what the caller then tells a client (a 201, a
 * callback) is on disk.
 *
 * The first record is created where it stays, without a spare: nobody knows
 * the job's id before the 201, so nobody reads it half written. Its directory
 * sync also covers the lock file's entry, created just before. A first
 * record that cannot be written is removed: a refused submission leaves
 * nothing behind.
 */
int
record_write(const struct job *j, bool first)
{
	char path[PATH_MAX], spare[PATH_MAX], dir[PATH_MAX];
	struct stat held = { 0 };
	int fd = -1, r = -1, saved;
	const char *step;

	if (!record_path(path, "jobs", j->id, ".json") || !record_path(spare, "jobs", j->id, ".next") ||
	    !record_path(dir, "jobs", NULL, NULL))
		return errno = ENAMETOOLONG, -1;
	step = first ? "create" : "open the spare";
	fd = first ? open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640) :
	    open_locked(spare, O_RDWR | O_CREAT, LOCK_EX, &held);
	if (fd >= 0 && (step = "write", write_whole(fd, j, path, held.st_size) == 0) &&
	    (step = "sync", sync_data(fd) == 0) &&
	    (first || (step = "swap in", swap_in(spare, path) == 0)) &&
	    (step = "sync the directory", sync_dir(dir) == 0))
		r = 0;
	saved = errno;
	if (r < 0)
		log_line(j->id, "lso: job %s: cannot record %s (%s: %s)", j->id,
		    job_status_names[j->status], step, strerror(saved));
	if (r < 0 && first && fd >= 0)
		unlink(path);
	if (fd >= 0)
		close(fd);
	errno = saved;
	return r;
}

/*
 * The job's last record is written: empty its spare, which holds the one
 * before (up to LSO_MAX_OUTPUT_BYTES of output twice otherwise). Emptied, not
 * deleted, for the reason above; the tmpfiles rule ages it with the record.
 */
void
record_done(const struct job *j)
{
	char spare[PATH_MAX];
	struct stat held;
	int fd;

	if (record_path(spare, "jobs", j->id, ".callback"))
		unlink(spare);  /* the callback is delivered, or never will be */
	if (!record_path(spare, "jobs", j->id, ".next"))
		return;
	fd = open_locked(spare, O_WRONLY, LOCK_EX, &held);
	if (fd >= 0) {
		(void)!ftruncate(fd, 0);
		close(fd);
	}
}

static char *
dup_string(const cJSON *item)
{
	return cJSON_IsString(item) ? strdup(item->valuestring) : NULL;
}

static void
copy_time(char dst[32], const cJSON *item)
{
	snprintf(dst, 32, "%s", cJSON_IsString(item) ? item->valuestring : "");
}

static void
result_from_json(struct job *j, const cJSON *result)
{
	const cJSON *output = cJSON_GetObjectItemCaseSensitive(result, "output");
	const cJSON *rc = cJSON_GetObjectItemCaseSensitive(result, "return_code");

	if (!cJSON_IsObject(result))
		return;
	j->has_result = true;
	if (cJSON_IsString(output))
		jbuf_puts(&j->result.output, output->valuestring);
	j->result.return_code = cJSON_IsNumber(rc) ? rc->valueint : -1;
}

static void
callback_from_json(struct job *j, const cJSON *callback)
{
	const cJSON *attempts = cJSON_GetObjectItemCaseSensitive(callback, "attempts");

	if (!cJSON_IsObject(callback))
		return;
	j->callback_url = dup_string(cJSON_GetObjectItemCaseSensitive(callback, "url"));
	j->attempts = cJSON_IsNumber(attempts) ? attempts->valueint : 0;
	j->delivered = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(callback, "delivered"));
	j->last_error = dup_string(cJSON_GetObjectItemCaseSensitive(callback, "last_error"));
}

/* A status as recorded; what no record of ours holds reads as lost. */
static enum job_status
known_status(const char *status)
{
	for (int i = 0; i < JOB_STATUS_COUNT; i++)
		if (status && strcmp(status, job_status_names[i]) == 0)
			return (enum job_status)i;
	return JOB_LOST;
}

static enum job_kind
known_kind(const char *kind)
{
	return kind && strcmp(kind, job_kind_names[JOB_KIND_PLAYBOOK]) == 0 ?
	    JOB_KIND_PLAYBOOK : JOB_KIND_EXECUTE;
}

/* [from, to) of fd appended to b. */
static int
add_range(struct jbuf *b, int fd, off_t from, off_t to)
{
	ssize_t n;

	if (to < from || !jbuf_reserve(b, (size_t)(to - from)))
		return errno = ENOMEM, -1;
	for (; from < to; from += n) {
		if ((n = pread(fd, b->data + b->len, (size_t)(to - from), from)) <= 0)
			return n == 0 ? (errno = EIO, -1) : -1;
		b->len += (size_t)n;
	}
	b->data[b->len] = '\0';
	return 0;
}

/*
 * A job's record as stored, but its output an empty string: what is read to
 * resume a job needs none of it (the output is copied from the record
 * itself, record_stream), and it may be 16 MiB. Under a shared lock.
 */
static int
record_text_without_output(const char *id, struct jbuf *b, bool *has_output)
{
	char path[PATH_MAX];
	struct result_span span;
	struct stat held;
	int fd, r;

	if (!record_path(path, "jobs", id, ".json"))
		return errno = ENAMETOOLONG, -1;
	if ((fd = open_locked(path, O_RDONLY, LOCK_SH, &held)) < 0)
		return -1;
	if (held.st_size == 0) {  /* killed while written first: as none */
		close(fd);
		return errno = ENOENT, -1;
	}
	*has_output = find_result(fd, held.st_size, &span) == 0;
	if (!*has_output)
		r = add_range(b, fd, 0, held.st_size);
	else
		r = add_range(b, fd, 0, span.output_start) < 0 ? -1 :
		    add_range(b, fd, span.output_end, held.st_size);
	close(fd);
	return r;
}

/* Is the record a playbook's whose callback is still to be sent? */
static bool
callback_from_output(const cJSON *root)
{
	const cJSON *callback = cJSON_GetObjectItemCaseSensitive(root, "callback");

	return known_kind(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(root, "kind"))) ==
	    JOB_KIND_PLAYBOOK && cJSON_IsObject(callback) &&
	    !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(callback, "delivered"));
}

/* Has the job a saved callback body (callback_save_body)? */
static bool
has_saved_callback(const char *id)
{
	char path[PATH_MAX];

	return record_path(path, "jobs", id, ".callback") && access(path, F_OK) == 0;
}

/*
 * The record parsed: without its output (record_text_without_output); a
 * playbook's whole when no saved callback body holds its lines (a record
 * written before there was one): its callback is rebuilt from the output.
 */
static cJSON *
parse_record(const char *id, bool *result_recorded)
{
	struct jbuf lean = { 0 };
	char *text;
	size_t len;
	cJSON *root;

	*result_recorded = false;
	if (record_text_without_output(id, &lean, result_recorded) < 0) {
		jbuf_free(&lean);
		return NULL;
	}
	errno = EINVAL;  /* when it does not parse */
	root = cJSON_ParseWithLength(lean.data, lean.len);
	jbuf_free(&lean);
	if (!*result_recorded || !callback_from_output(root) || has_saved_callback(id))
		return root;
	cJSON_Delete(root);
	*result_recorded = false;
	if (!(text = record_text(id, &len)))
		return NULL;
	errno = EINVAL;
	root = cJSON_ParseWithLength(text, len);
	free(text);
	return root;
}

/* Load a record into j; -1 with errno ENOENT when there is none. */
int
record_read(const char *id, struct job *j)
{
	const cJSON *args, *arg;
	bool result_recorded;
	cJSON *root;

	*j = (struct job){ .lock_fd = -1 };
	if (!(root = parse_record(id, &result_recorded)))
		return -1;
	if (!cJSON_IsObject(root)) {
		cJSON_Delete(root);
		return errno = EINVAL, -1;
	}
	snprintf(j->id, sizeof(j->id), "%s", id);
	j->kind = known_kind(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(root, "kind")));
	j->name = dup_string(cJSON_GetObjectItemCaseSensitive(root, "name"));
	j->status = known_status(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(root, "status")));
	args = cJSON_GetObjectItemCaseSensitive(root, "args");
	j->args = calloc((size_t)cJSON_GetArraySize(args) + 1, sizeof(*j->args));
	cJSON_ArrayForEach(arg, args)
		if (j->args && cJSON_IsString(arg))
			j->args[j->nargs++] = strdup(arg->valuestring);
	copy_time(j->created_at, cJSON_GetObjectItemCaseSensitive(root, "created_at"));
	copy_time(j->started_at, cJSON_GetObjectItemCaseSensitive(root, "started_at"));
	copy_time(j->finished_at, cJSON_GetObjectItemCaseSensitive(root, "finished_at"));
	result_from_json(j, cJSON_GetObjectItemCaseSensitive(root, "result"));
	j->result_recorded = result_recorded && j->has_result;
	callback_from_json(j, cJSON_GetObjectItemCaseSensitive(root, "callback"));
	cJSON_Delete(root);
	return 0;
}

/*
 * The status a record holds, read from its first bytes only: the whole
 * record may hold LSO_MAX_OUTPUT_BYTES of output, which a GET of a finished
 * job has no need to parse. record_json writes the job's id and kind (our
 * own words, never the client's) before the status, so it lies within them.
 */
int
record_status(const char *id, enum job_status *status)
{
	static const char key[] = "\"status\":\"";
	char path[PATH_MAX], head[RECORD_HEAD_BYTES + 1], *at, *end;
	struct stat held;
	ssize_t n;
	int fd, saved;

	if (!record_path(path, "jobs", id, ".json"))
		return errno = ENAMETOOLONG, -1;
	if ((fd = open_locked(path, O_RDONLY, LOCK_SH, &held)) < 0)
		return -1;
	n = pread(fd, head, RECORD_HEAD_BYTES, 0);
	saved = n < 0 ? errno : ENOENT;  /* empty: killed while written first, as none */
	close(fd);
	if (n <= 0)
		return errno = saved, -1;
	head[n] = '\0';
	if (!(at = strstr(head, key)) || !(end = strchr(at += strlen(key), '"')))
		return errno = EINVAL, -1;
	*end = '\0';
	*status = known_status(at);
	return 0;
}

/* Copy size bytes of from to the start of to, in the kernel where it can. */
static int
copy_whole(int from, int to, off_t size)
{
	char buf[RECORD_COPY_BYTES];
	off_t done = 0;
	ssize_t n;

	while (done < size) {
		n = copy_file_range(from, NULL, to, NULL, (size_t)(size - done), 0);
		if (n < 0 && (errno == EXDEV || errno == EINVAL || errno == ENOSYS ||
		    errno == EOPNOTSUPP)) {
			if ((n = read(from, buf, sizeof(buf))) > 0 && write(to, buf, (size_t)n) != n)
				return -1;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n == 0 ? (errno = EIO, -1) : -1;
		done += n;
	}
	return lseek(to, 0, SEEK_SET) < 0 ? -1 : 0;
}

/*
 * A private file for a copy of size bytes: in memory when small (no inode:
 * on ext4 without a journal each one deleted slows the next creations, see
 * record_write), else an unnamed file in jobs/, gone at close.
 */
static int
private_copy(off_t size)
{
	char dir[PATH_MAX];

	if (size <= RECORD_COPY_IN_MEMORY_MAX_BYTES)
		return memfd_create("lso-record", MFD_CLOEXEC);
	if (!record_path(dir, "jobs", NULL, NULL))
		return errno = ENAMETOOLONG, -1;
	return open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
}

/*
 * A callback URL's password (http://user:password@host/) is the client's
 * secret: a record shown (GET, DELETE) says "***" in its place. The record's callback is
 * written by record.c in one shape, and in a JSON text the quotes of this
 * pattern can only be the record's own.
 */
void
record_mask_password(struct jbuf *out, const char *text, size_t len)
{
	static const char key[] = "\"callback\":{\"url\":\"";
	const char *url = memmem(text, len, key, strlen(key)), *end = text + len, *host = NULL, *at = NULL, *colon;

	/* After the scheme's colon, any number of slashes (http:h, http:///h: the URL parser's forms). */
	if (url)
		host = memchr(url + strlen(key), ':', (size_t)(end - url - strlen(key)));
	if (!host) {
		jbuf_add(out, text, len);
		return;
	}
	for (host++; host < end && *host == '/'; host++)
		;
	for (const char *p = host; p < end && !strchr("/?#\"", *p); p++)
		if (*p == '@')
			at = p;
	colon = at ? memchr(host, ':', (size_t)(at - host)) : NULL;
	if (!colon) {
		jbuf_add(out, text, len);
		return;
	}
	jbuf_add(out, text, (size_t)(colon + 1 - text));
	jbuf_puts(out, "***");
	jbuf_add(out, at, (size_t)(end - at));
}

/*
 * The record's tail with the callback URL's password masked, in *masked, from
 * *start; true when that changed it. The callback is the record's last
 * member, within its last RECORD_TAIL_BYTES (a URL has at most
 * REQUEST_URL_MAX_CHARS), so only that tail is read. -1: unreadable.
 */
static int
masked_tail(int fd, off_t size, struct jbuf *masked, off_t *start)
{
	static char tail[RECORD_TAIL_BYTES];
	ssize_t n;

	*start = size > RECORD_TAIL_BYTES ? size - RECORD_TAIL_BYTES : 0;
	if ((n = pread(fd, tail, (size_t)(size - *start), *start)) != size - *start)
		return -1;
	record_mask_password(masked, tail, (size_t)n);
	if (masked->failed)
		return -1;
	return masked->len != (size_t)n || memcmp(masked->data, tail, (size_t)n) != 0;
}

/* In a record's private copy, the password masked; its new size in *size. */
static int
mask_copy(int copy, off_t *size)
{
	struct jbuf masked = { 0 };
	off_t start;
	int changed = masked_tail(copy, *size, &masked, &start), r = changed < 0 ? -1 : 0;

	if (changed > 0 && (pwrite(copy, masked.data, masked.len, start) != (ssize_t)masked.len ||
	    ftruncate(copy, start + (off_t)masked.len) < 0))
		r = -1;
	if (changed > 0 && r == 0)
		*size = start + (off_t)masked.len;
	jbuf_free(&masked);
	return r;
}

/* Does the record hold a callback password (then it is never sent as it is)? */
static bool
holds_password(int fd, off_t size)
{
	struct jbuf masked = { 0 };
	off_t start;
	int changed = masked_tail(fd, size, &masked, &start);

	jbuf_free(&masked);
	return changed != 0;  /* unreadable counts as holding one: never sent unmasked */
}

/*
 * A job's record to send, its size in *size: a private copy taken under the
 * shared lock, so that a slow client holds neither lso's memory (the record
 * may be 16 MiB) nor the runner, whose next write waits for the readers of
 * the file it reuses. Where no copy can be made (a full disk), the record
 * itself, its shared lock held until the caller closes it. A callback URL's
 * password is masked in the copy (record_mask_password); a record holding
 * one is never sent as it is.
 */
int
record_snapshot(const char *id, off_t *size)
{
	char path[PATH_MAX];
	struct stat held;
	int fd, copy, saved;

	if (!record_path(path, "jobs", id, ".json"))
		return errno = ENAMETOOLONG, -1;
	if ((fd = open_locked(path, O_RDONLY, LOCK_SH, &held)) < 0)
		return -1;
	if (held.st_size == 0) {
		close(fd);
		return errno = ENOENT, -1;
	}
	*size = held.st_size;
	copy = private_copy(held.st_size);
	if (copy < 0 || copy_whole(fd, copy, held.st_size) < 0) {
		if (copy >= 0)
			close(copy);
		/* The failed copy moved fd's offset (copy_file_range, read): back to the start. */
		if (lseek(fd, 0, SEEK_SET) < 0) {
			saved = errno;
			close(fd);
			return errno = saved, -1;
		}
		if (!holds_password(fd, held.st_size))
			return fd;
		/* A password to mask needs a copy: in memory, then, whatever its size. */
		copy = memfd_create("lso-record", MFD_CLOEXEC);
		if (copy < 0 || copy_whole(fd, copy, held.st_size) < 0) {
			saved = errno;
			if (copy >= 0)
				close(copy);
			close(fd);
			return errno = saved, -1;
		}
	}
	close(fd);
	if (mask_copy(copy, size) < 0) {
		saved = errno;
		close(copy);
		return errno = saved, -1;
	}
	return copy;
}

/* --- the lock file: its runner holds an exclusive flock on it for its whole life --- */

int
record_lock_open(const char *id)
{
	char path[PATH_MAX];

	if (!record_path(path, "jobs", id, ".lock"))
		return errno = ENAMETOOLONG, -1;
	return open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
}

/* A refused submission's lock file, removed (its record is gone already). */
void
record_lock_remove(const char *id)
{
	char path[PATH_MAX];

	if (record_path(path, "jobs", id, ".lock"))
		unlink(path);
}

/* Take the job's lock if nobody holds it: its runner is gone. -1 while it lives. */
int
record_lock_if_dead(const char *id)
{
	int fd = record_lock_open(id);

	if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/*
 * A job's runner names itself, and later its program, in the job's lock file:
 * cancellation signals the runner, and a lost job's leftovers are found by the program's group.
 */
void
record_lock_note_pids(int lock_fd, pid_t runner, pid_t program)
{
	char buf[48];
	int n = snprintf(buf, sizeof(buf), "%ld %ld\n", (long)runner, (long)program);

	if (ftruncate(lock_fd, 0) == 0)
		(void)!pwrite(lock_fd, buf, (size_t)n, 0);
}

/* The pids in a job's lock file (see record_lock_note_pids); false when it names no runner. */
bool
record_lock_pids(const char *id, pid_t *runner, pid_t *program)
{
	char path[PATH_MAX], *text;
	long r = 0, p = 0;
	size_t len;

	if (!record_path(path, "jobs", id, ".lock") || !(text = file_read(path, &len)))
		return false;
	sscanf(text, "%ld %ld", &r, &p);
	free(text);
	*runner = (pid_t)r, *program = (pid_t)p;
	return r > 0;
}
