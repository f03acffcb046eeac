/* Minimal unit-test support: named cases, one check per condition, a
 * summary line, and a non-zero exit when any check failed. */
#ifndef STOWAGE_UNIT_H
#define STOWAGE_UNIT_H

#include <stdint.h>
#include <string.h>

extern int unit_failures;
extern int unit_checks;

void unit_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void unit_run(const char *name, void (*fn)(void));
int unit_finish(void);

/* Removes the directory tree path (rm -rf), reporting a failure on stderr. */
void unit_remove_tree(const char *path);

/* Reads a whole file into a new buffer (free it) with a NUL after its len
 * bytes. Returns NULL when the file cannot be read. */
char *unit_read_file(const char *path, size_t *len);

#define CHECK(cond)                                                              \
    do {                                                                         \
        unit_checks++;                                                           \
        if (!(cond))                                                             \
            unit_fail(__FILE__, __LINE__, "check failed: %s", #cond);            \
    } while (0)

#define CHECK_INT_EQ(expected, actual)                                           \
    do {                                                                         \
        long long unit_e_ = (long long)(expected), unit_a_ = (long long)(actual); \
        unit_checks++;                                                           \
        if (unit_e_ != unit_a_)                                                  \
            unit_fail(__FILE__, __LINE__, "%s: expected %lld, got %lld", #actual, \
                      unit_e_, unit_a_);                                         \
    } while (0)

#define CHECK_STR_EQ(expected, actual)                                           \
    do {                                                                         \
        const char *unit_e_ = (expected), *unit_a_ = (actual);                   \
        unit_checks++;                                                           \
        if (unit_a_ == NULL || strcmp(unit_e_, unit_a_) != 0)                    \
            unit_fail(__FILE__, __LINE__, "%s:\n  expected: %s\n  actual:   %s",   \
                      #actual, unit_e_, unit_a_ ? unit_a_ : "(null)");           \
    } while (0)

#define CHECK_CONTAINS(haystack, needle)                                         \
    do {                                                                         \
        const char *unit_h_ = (haystack), *unit_n_ = (needle);                   \
        unit_checks++;                                                           \
        if (unit_h_ == NULL || strstr(unit_h_, unit_n_) == NULL)                 \
            unit_fail(__FILE__, __LINE__, "%s does not contain \"%s\": %s",      \
                      #haystack, unit_n_, unit_h_ ? unit_h_ : "(null)");         \
    } while (0)

#endif
