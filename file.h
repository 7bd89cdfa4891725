/* file.h: reading a file whole (file.c). */
#ifndef LSO_FILE_H
#define LSO_FILE_H

#include <stddef.h>

/* The text of an open file, or of the file at path (malloc'ed); NULL when unreadable or empty. */
char *file_read_fd(int fd, size_t *len);
char *file_read(const char *path, size_t *len);

#endif
