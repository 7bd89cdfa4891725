/* playbook.h: Ansible: inventory checks, and a playbook job's run (playbook.c). */
#ifndef LSO_PLAYBOOK_H
#define LSO_PLAYBOOK_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

struct job;
struct run_control;

/*
 * Check an inventory object the way Ansible's yaml plugin would read it, with
 * its wording (ini text is converted by inventory.c). NULL when Ansible would
 * take it, else why (in why[why_size]).
 */
const char *playbook_inventory_object_problem(const cJSON *inventory, char *why, size_t why_size);

/*
 * The extra vars file of job id (YAML, malloc'ed; NULL when out of memory):
 * the client's object, every string !unsafe, with job_id and job_files_dir
 * (when JOB_FILES_ROOT_DIR is set) set by lso over any the client sent.
 */
char *playbook_extra_vars(const cJSON *client_vars, const char *id);

/*
 * At submission, before the job's first record: its inventory (YAML text,
 * validate.c's) and its extra vars (playbook_extra_vars, written from the
 * client's tree as it is walked) in a directory only lso can read; removed
 * again on failure (false, errno).
 */
bool playbook_write_files(const char *id, const char *inventory, const cJSON *client_vars);

/* Run the job's playbook in the runner: ansible-playbook with private files, progress. */
void playbook_run(struct job *j, struct run_control *control);

/* Remove the job's private files (a lost job's too). */
void playbook_remove_files(const char *id);

#endif
