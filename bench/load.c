/* load: a closed-loop HTTP load client, one new TCP connection per request.
 *
 *   load [-o LATFILE] [-t TIMEOUT_S] [-d SECONDS] HOST PORT REQFILE N CONC
 *
 * CONC threads share N requests; with -d, they stop starting new ones once SECONDS
 * have passed (N is then an upper bound, and count= says how many were sent). Each request: connect, send REQFILE's bytes, read
 * until EOF, check that the response starts with "HTTP/1.1 201" or "HTTP/1.1 200".
 * Latency is measured from just before connect() to EOF, in microseconds.
 * A request that cannot connect, send, read within TIMEOUT_S (default 10) or has
 * another status counts as a failure; percentiles are over successful requests.
 *
 * Prints one line (and, when some failed, their causes on stderr):
 *   count=N failures=F p50_ms=X p99_ms=Y rps=Z wall_s=W
 * (rps = successful requests / wall-clock time of the whole batch). With -o, appends
 * the latency of every successful request (µs, one per line) to LATFILE.
 *
 * libc + pthreads only.  cc -O2 -Wall -Wextra -pthread -o load load.c
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static struct sockaddr_in addr;
static char *reqbuf;
static size_t reqlen;
static long total;
static int timeout_s = 10;
static double stop_at_us; /* -d: no new request after this; 0: none */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

static long next_i;
static long *lat_us; /* per request; -1 = failed */

/* failure causes, for the summary on stderr */
enum { F_SOCKET, F_CONNECT, F_SEND, F_RECV, F_STATUS, F_N };
static const char *const fname[F_N] = {"socket", "connect", "send", "recv", "status"};
static long fcount[F_N];
static int ferrno[F_N];
static char fstatus[16];

static void failed(int kind, int err, const char *head, size_t hn)
{
	pthread_mutex_lock(&mu);
	fcount[kind]++;
	ferrno[kind] = err;
	if (kind == F_STATUS) {
		size_t k = hn < sizeof fstatus - 1 ? hn : sizeof fstatus - 1;
		memcpy(fstatus, head, k);
		fstatus[k] = 0;
		for (char *c = fstatus; *c; c++)
			if (*c == '\r' || *c == '\n')
				*c = 0;
	}
	pthread_mutex_unlock(&mu);
}

static double now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

/* One request; returns latency in µs, or -1 on failure. */
static long one(void)
{
	double t0 = now_us();
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		failed(F_SOCKET, errno, NULL, 0);
		return -1;
	}
	struct timeval tv = {.tv_sec = timeout_s};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	int one_ = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one_, sizeof one_);
	long res = -1;
	char head[16];
	size_t hn = 0;
	if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
		failed(F_CONNECT, errno, NULL, 0);
		goto out;
	}
	size_t off = 0;
	while (off < reqlen) {
		ssize_t w = send(fd, reqbuf + off, reqlen - off, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			failed(F_SEND, errno, NULL, 0);
			goto out;
		}
		off += (size_t)w;
	}
	char buf[16384];
	for (;;) {
		ssize_t r = recv(fd, buf, sizeof buf, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) { /* error or timeout */
			failed(F_RECV, errno, NULL, 0);
			goto out;
		}
		if (r == 0)
			break;
		for (ssize_t i = 0; i < r && hn < sizeof head; i++)
			head[hn++] = buf[i];
	}
	double t1 = now_us();
	if (hn >= 12 && (memcmp(head, "HTTP/1.1 201", 12) == 0 || memcmp(head, "HTTP/1.1 200", 12) == 0))
		res = (long)(t1 - t0 + 0.5);
	else
		failed(F_STATUS, 0, head, hn);
out:
	close(fd);
	return res;
}

static void *worker(void *arg)
{
	(void)arg;
	for (;;) {
		pthread_mutex_lock(&mu);
		long i = next_i < total && (!stop_at_us || now_us() < stop_at_us) ? next_i++ : -1;
		pthread_mutex_unlock(&mu);
		if (i < 0)
			return NULL;
		lat_us[i] = one();
	}
}

static int cmp_long(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;
	return (x > y) - (x < y);
}

/* nearest-rank percentile of a sorted array */
static long pct(const long *v, long n, double p)
{
	long k = (long)(p / 100.0 * (double)n + 0.999999999);
	if (k < 1)
		k = 1;
	if (k > n)
		k = n;
	return v[k - 1];
}

static void usage(void)
{
	fprintf(stderr, "usage: load [-o LATFILE] [-t TIMEOUT_S] [-d SECONDS] HOST PORT REQFILE N CONC\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *latfile = NULL;
	double duration_s = 0;
	int opt;
	while ((opt = getopt(argc, argv, "o:t:d:")) != -1) {
		if (opt == 'o')
			latfile = optarg;
		else if (opt == 't')
			timeout_s = atoi(optarg);
		else if (opt == 'd')
			duration_s = atof(optarg);
		else
			usage();
	}
	if (argc - optind != 5)
		usage();
	const char *host = argv[optind];
	int port = atoi(argv[optind + 1]);
	const char *reqfile = argv[optind + 2];
	total = atol(argv[optind + 3]);
	long conc = atol(argv[optind + 4]);
	if (port <= 0 || port > 65535 || total <= 0 || conc <= 0 || timeout_s <= 0 || duration_s < 0)
		usage();
	if (conc > total)
		conc = total;

	memset(&addr, 0, sizeof addr);
	addr.sin_family = AF_INET;
	addr.sin_port = htons((unsigned short)port);
	if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
		fprintf(stderr, "load: HOST must be an IPv4 address: %s\n", host);
		return 2;
	}

	FILE *f = fopen(reqfile, "rb");
	if (!f) {
		perror(reqfile);
		return 2;
	}
	size_t cap = 4096;
	reqbuf = malloc(cap);
	for (size_t r; reqbuf && (r = fread(reqbuf + reqlen, 1, cap - reqlen, f)) > 0;) {
		reqlen += r;
		if (reqlen == cap)
			reqbuf = realloc(reqbuf, cap *= 2);
	}
	fclose(f);
	lat_us = calloc((size_t)total, sizeof *lat_us);
	pthread_t *th = calloc((size_t)conc, sizeof *th);
	if (!reqbuf || !lat_us || !th) {
		fprintf(stderr, "load: out of memory\n");
		return 2;
	}

	double t0 = now_us();
	if (duration_s > 0)
		stop_at_us = t0 + duration_s * 1e6;
	long started = 0;
	for (long i = 0; i < conc; i++) {
		if (pthread_create(&th[i], NULL, worker, NULL) != 0) {
			if (started == 0) {
				fprintf(stderr, "load: cannot create threads\n");
				return 2;
			}
			break;
		}
		started++;
	}
	for (long i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	double wall = (now_us() - t0) / 1e6;
	total = next_i; /* with -d, fewer than N may have been sent */

	long ok = 0;
	for (long i = 0; i < total; i++)
		if (lat_us[i] >= 0)
			lat_us[ok++] = lat_us[i];
	long failures = total - ok;
	if (failures > 0) {
		fprintf(stderr, "load: %ld of %ld failed:", failures, total);
		for (int k = 0; k < F_N; k++) {
			if (!fcount[k])
				continue;
			fprintf(stderr, " %s=%ld", fname[k], fcount[k]);
			if (k == F_STATUS)
				fprintf(stderr, " (last: \"%s\")", fstatus);
			else
				fprintf(stderr, " (last: %s)", strerror(ferrno[k]));
		}
		fprintf(stderr, "\n");
	}
	if (latfile && ok > 0) {
		FILE *o = fopen(latfile, "a");
		if (!o) {
			perror(latfile);
			return 2;
		}
		for (long i = 0; i < ok; i++)
			fprintf(o, "%ld\n", lat_us[i]);
		fclose(o);
	}
	qsort(lat_us, (size_t)ok, sizeof *lat_us, cmp_long);
	if (ok > 0)
		printf("count=%ld failures=%ld p50_ms=%.3f p99_ms=%.3f rps=%.1f wall_s=%.6f\n", total, failures,
		       pct(lat_us, ok, 50) / 1e3, pct(lat_us, ok, 99) / 1e3, ok / wall, wall);
	else
		printf("count=%ld failures=%ld p50_ms=nan p99_ms=nan rps=0.0 wall_s=%.6f\n", total, failures, wall);
	return 0;
}
