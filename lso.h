/* lso.h: what the parts report to lso.c (outcomes), and the one entry point serving a request. */
#ifndef LSO_H
#define LSO_H

#ifndef LSO_VERSION
#define LSO_VERSION "0.0.0"
#endif
#define LSO_API_VERSION "2.0"

/* Exit codes: configuration errors apart from system errors. */
#define EXIT_CONFIG 78   /* EX_CONFIG */
#define EXIT_SYSTEM 71   /* EX_OSERR */

/*
 * What a part of lso reports about a request. Only lso.c turns an outcome
 * into an HTTP status and its wording (its answers table); the parts never
 * speak HTTP. Each name starts with the part that reports it.
 */
enum outcome {
	OUTCOME_OK,
	/* resolve.c: a requested file inside its root */
	RESOLVE_OUTSIDE,         /* escapes the root */
	RESOLVE_MISSING,
	RESOLVE_NOT_FILE,
	RESOLVE_NOT_EXECUTABLE,
	/* job.c: async jobs */
	JOB_SHOWN,               /* the record is in the body */
	JOB_CANCELING,           /* its runner was told; the record is in the body */
	JOB_MISSING,
	JOB_FINISHED,            /* too late to cancel */
	JOB_UNRECORDED,          /* the state directory cannot hold it */
	JOB_UNREADABLE,          /* the state directory cannot give its record (errno) */
	JOB_NO_ID,               /* no randomness for an id */
	JOB_QUEUE_FULL,          /* LSO_MAX_QUEUED jobs wait for a slot already */
	/* files.c: a job's files */
	FILES_LISTED,            /* the list is in the body */
	FILES_FOUND,             /* opened, to be sent */
	FILES_DELETED,
	FILES_OUTSIDE,           /* escapes the job's folder */
	FILES_MISSING,
	FILES_FAILED,            /* the file system refused (errno) */
	/* validate.c */
	VALIDATE_PROBLEMS,       /* the body is not what the route takes: 422 items */
	/* lso.c itself */
	LSO_NO_ROUTE,
	LSO_WRONG_METHOD,
	LSO_UNAUTHENTICATED,
	LSO_OUT_OF_MEMORY,
	LSO_CONFIG_ERROR,
	LSO_OUTPUT_UNREADABLE,   /* a sync run's output cannot be read back from its spool (errno) */
};

/*
 * Serve one request on the connection (in_fd, out_fd) with the loaded
 * configuration: read, route, answer, close, log. The same code serves every
 * launcher and the fuzz harnesses.
 */
void lso_serve(int in_fd, int out_fd);

#endif
