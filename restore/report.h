/* Reports of verified restores: the steps with their times, what was
 * checked, what differed, and the outcome, as JSON and as text. */
#ifndef STOWAGE_REPORT_H
#define STOWAGE_REPORT_H

#include <jansson.h>
#include <time.h>

#include "common/error.h"
#include "manifest.h"
#include "storage/storage.h"

/* Kind of the report of `stowage verify` without a restore. */
#define REPORT_KIND_STORAGE_CHECK "storage check"

struct report {
    json_t *document;          /* owned */
    json_t *steps;             /* borrowed from document */
    struct timespec started;
    struct timespec step_started;
    char step[64];             /* the step running, "" between steps */
};

void report_begin(struct report *report, const char *kind, const struct manifest *manifest);

/* Starts a timed step; report_step_end records its time and outcome. */
void report_step_begin(struct report *report, const char *step);
void report_step_end(struct report *report, const stow_error *err);

/* Adds a step measured elsewhere (stages that overlap in a stream). */
void report_add_step(struct report *report, const char *step, double seconds,
                     const char *status);

/* Sets a top-level member; takes the reference. */
void report_set(struct report *report, const char *key, json_t *value);

/* Records the outcome and total time. A failure inside a step names it. */
void report_finish(struct report *report, const stow_error *outcome);

/* Writes the JSON report to path (atomically, mode 0644). */
int report_write_file(const struct report *report, const char *path, stow_error *err);

/* Writes text to path through a temporary file, fsync and a rename, so a
 * reader sees the old file or the whole new one. */
int report_write_text(const char *path, const char *text, stow_error *err);

/* Stores the report beside the manifest, under verifications/. */
int report_store(const struct report *report, storage *store, const struct manifest *manifest,
                 stow_error *err);

void report_print_text(const struct report *report);
void report_free(struct report *report);

#endif
