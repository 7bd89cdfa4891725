/* files.h: a job's files under JOB_FILES_ROOT_DIR/<job_id>/, listed, sent and deleted (files.c). */
#ifndef LSO_FILES_H
#define LSO_FILES_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "job.h"
#include "json.h"
#include "lso.h"

/* Folders nested deeper than this below a job's folder are neither listed nor walked. */
#define FILES_DEPTH_MAX 64

/*
 * A path segment percent-decoded, as Starlette decodes a path (a malformed
 * escape and %00 stay as they are); malloc'ed, NULL when memory ran out.
 */
char *files_decode(const char *text, size_t len);

/* A UUID as pydantic reads one (hyphens or not, any case, {...}, urn:uuid:): id in lso's form. */
bool files_parse_job_id(const char *text, job_id id);

/* FILES_LISTED with {"job_id": ..., "files": [...]} in body, or FILES_FAILED (errno). */
enum outcome files_list(const char *id, struct jbuf *body);

/*
 * The job's file name (a safe name) opened for reading: FILES_FOUND with fd
 * and size, FILES_OUTSIDE (escapes the job's folder: "..", an absolute path,
 * a symlink out; decided before existence), FILES_MISSING, or FILES_FAILED.
 */
enum outcome files_open(const char *id, const char *name, int *fd, off_t *size);

/* Remove the job's folder, never following a symlink: FILES_DELETED, or FILES_FAILED. */
enum outcome files_delete(const char *id);

/* The job's folder as a playbook gets it (job_files_dir): false when there is no root. */
bool files_job_dir(const char *id, char *dir, size_t size);

#endif
