/* Runner for the unit tests: prints one line per case and a closing count. */
#include "unit.h"

#include <stdarg.h>
#include <stdio.h>

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

int unit_finish(void)
{
    printf("%d passed, %d failed\n", cases_passed, cases_failed);
    return cases_failed == 0 ? 0 : 1;
}
