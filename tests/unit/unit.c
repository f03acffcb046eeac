/* Runner for the unit tests: prints one line per case and a closing count. */
#include "unit.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

int unit_failures;
int unit_checks;

static int cases_passed;
static int cases_failed;

void unit_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;

    unit_failures++;
    fprintf(stderr, "%s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

void unit_run(const char *name, void (*fn)(void))
{
    int before = unit_failures;

    fn();
    if (unit_failures == before) {
        cases_passed++;
        printf("ok   %s\n", name);
    } else {
        cases_failed++;
        printf("FAIL %s\n", name);
    }
}

void unit_remove_tree(const char *path)
{
    char command[4200];

    snprintf(command, sizeof command, "rm -rf '%s'", path);
    if (system(command) != 0)
        fprintf(stderr, "could not remove %s\n", path);
}

int unit_finish(void)
{
    printf("%d passed, %d failed\n", cases_passed, cases_failed);
    return cases_failed == 0 ? 0 : 1;
}

char *unit_read_file(const char *path, size_t *len)
{
    FILE *stream = fopen(path, "rb");
    char *data = NULL;
    long size;

    if (stream == NULL)
        return NULL;
    if (fseek(stream, 0, SEEK_END) == 0 && (size = ftell(stream)) >= 0 &&
        fseek(stream, 0, SEEK_SET) == 0) {
        data = malloc((size_t)size + 1);
        if (data != NULL && fread(data, 1, (size_t)size, stream) != (size_t)size) {
            free(data);
            data = NULL;
        }
        if (data != NULL) {
            data[size] = '\0';
            *len = (size_t)size;
        }
    }
    fclose(stream);
    return data;
}
