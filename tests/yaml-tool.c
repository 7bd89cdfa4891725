/*
 * tests/yaml-tool.c: lso's YAML for Ansible, for tests/yaml-roundtrip.py.
 * Reads NUL-terminated records on stdin, writes one NUL-terminated answer each:
 *   yaml-tool json   a JSON text -> cJSON's text of it, "\n", its YAML (yaml.c)
 *   yaml-tool ini    an ini inventory -> its YAML (inventory.c, yaml.c), or
 *                    "REFUSED: " and the message
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "../inventory.h"
#include "../yaml.h"

static void
answer_json(const char *text)
{
	cJSON *item = cJSON_Parse(text);
	char *json = item ? cJSON_PrintUnformatted(item) : NULL, *yaml = item ? yaml_text(item) : NULL;

	printf("%s\n%s", json ? json : "INVALID", yaml ? yaml : "");
	free(json);
	free(yaml);
	cJSON_Delete(item);
}

static void
answer_ini(const char *text)
{
	char why[512], *yaml;
	cJSON *groups = inventory_from_ini(text, why, sizeof(why));

	if (!groups) {
		printf("REFUSED: %s", why);
		return;
	}
	yaml = yaml_text(groups);
	fputs(yaml ? yaml : "", stdout);
	free(yaml);
	cJSON_Delete(groups);
}

int
main(int argc, char **argv)
{
	char *record = NULL;
	size_t size = 0;
	ssize_t len;

	if (argc != 2 || (strcmp(argv[1], "json") && strcmp(argv[1], "ini"))) {
		fprintf(stderr, "usage: yaml-tool json|ini < records\n");
		return 2;
	}
	while ((len = getdelim(&record, &size, '\0', stdin)) > 0) {
		if (record[len - 1] != '\0')
			record[len] = '\0';
		if (argv[1][0] == 'j')
			answer_json(record);
		else
			answer_ini(record);
		putchar('\0');
	}
	free(record);
	return 0;
}
