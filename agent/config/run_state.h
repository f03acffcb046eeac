/* The state that stowage run keeps between runs, per database, to decide
 * when a verification is due: a JSON file, replaced atomically.
 *
 *   {"databases": {"NAME": {"runs_since_verification": 3,
 *                           "last_verification": 1764806400,
 *                           "last_verification_passed": true}}}
 *
 * A missing file is an empty state, so a database's first run verifies.
 * Runs that share the file (one timer per database) each change only the
 * entries of their own databases, under a lock (run_state_save_changes). */
#ifndef STOWAGE_RUN_STATE_H
#define STOWAGE_RUN_STATE_H

#include <time.h>

#include <jansson.h>

#include "common/error.h"

#define RUN_STATE_DEFAULT_PATH "/var/lib/stowage/run-state.json"

struct run_state_entry {
    int known;                     /* 0: no run of this database recorded */
    long runs_since_verification;  /* runs that did not verify successfully */
    time_t last_verification;      /* 0: never */
    int last_verification_passed;
};

/* Reads the state file; a missing file gives an empty state. A file that
 * is not valid JSON fails. The caller frees *out with json_decref. */
int run_state_load(const char *path, json_t **out, stow_error *err);

void run_state_get(json_t *state, const char *name, struct run_state_entry *entry);
int run_state_set(json_t *state, const char *name, const struct run_state_entry *entry);

/* Writes the state to a temporary file beside path and renames it. */
int run_state_save(const char *path, json_t *state, stow_error *err);

/* Writes the database entries of state that differ from those in loaded
 * (the state as this run read it) into the file at path. Under the lock
 * of path (common/file_lock.h) it reads the file again, sets those
 * entries and replaces the file, so the entries that other runs wrote in
 * the meantime stay. A file that is not valid JSON is replaced. */
int run_state_save_changes(const char *path, const json_t *loaded, json_t *state,
                           stow_error *err);

/* Parses verify-on: day names (sunday or sun, ...) separated by commas,
 * into a mask with bit 0 for Sunday. */
int run_parse_days(const char *text, unsigned *mask, stow_error *err);

#endif
