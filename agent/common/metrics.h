/* Prometheus metrics of one run, in the text exposition format (0.0.4),
 * written as a node_exporter textfile or pushed to a Pushgateway.
 *
 * Metrics (labels name and command on every series):
 *   stowage_last_run_timestamp_seconds      gauge, when the run finished
 *   stowage_last_success_timestamp_seconds  gauge, when the last successful
 *                                           run finished (omitted until one has)
 *   stowage_run_duration_seconds            gauge
 *   stowage_run_success                     gauge, 1 or 0
 *   stowage_retries_total                   counter, HTTP retries in this run
 *   stowage_verification_success            gauge, 1 or 0; only when the run
 *                                           verified (verify, restore --verify,
 *                                           a drill whose verification finished)
 *   stowage_drill_rpo_seconds               gauge, age of the drilled backup or
 *                                           snapshot when the drill started
 *   stowage_drill_rto_seconds               gauge, restore time of a drill whose
 *                                           restore passed
 *   stowage_replicate_backups{kind=...}     gauge, kind "copied" (complete on
 *                                           the replica after this run's copy)
 *                                           or "failed"
 *   stowage_backup_bytes{kind=...}          gauge, kind "archive" (before
 *                                           compression), "compressed", "stored"
 *   stowage_backup_compression_ratio        gauge, archive / compressed bytes
 *   stowage_backup_parts                    gauge, upload parts
 * The stowage_backup_* metrics appear only after a successful backup.
 *
 * The textfile is replaced atomically: written to a temporary file in the
 * same directory, flushed, made mode 0644 and renamed over the old one, so
 * node_exporter never reads half a file. Several commands and runs can
 * share one textfile: a write replaces only the series of its own names
 * and commands and keeps the other samples of the old file, under the
 * lock of the file (common/file_lock.h, PATH.lock). Samples of families
 * that this version does not write are dropped. A failed run copies
 * stowage_last_success_timestamp_seconds of the same name and command from
 * the file it replaces.
 *
 * A push goes to URL/metrics/job/stowage/name/NAME/command/COMMAND, so that
 * backup and verify runs of one name keep separate groups. A successful
 * run replaces its group with PUT. A failed run sends POST, which updates
 * only the metrics it sends, and it sends no
 * stowage_last_success_timestamp_seconds. So the Pushgateway keeps the last
 * success and the backup sizes of the last successful run. Label values that are not plain URL path segments are
 * sent base64url-encoded ("name@base64/...").
 *
 * The process-wide record below serves the CLI: cli_main starts it, option
 * parsing sets the outputs, commands add what they know, and the end of
 * the run writes it. It is used from the main thread only. */
#ifndef STOWAGE_METRICS_H
#define STOWAGE_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "common/buf.h"
#include "common/error.h"

#define METRICS_NAME_MAX 128
#define METRICS_COMMAND_MAX 32
#define METRICS_TEXT_MAX (64u * 1024)
/* A textfile contains the series of every name and command that share it.
 * stowage run --all of two databases (backup, expire and verify) wrote
 * 3.5 KB, so a database with every step takes about 2 KiB (an estimate)
 * and 256 databases take under 1 MiB. */
#define METRICS_TEXTFILE_MAX (8u * 1024 * 1024)

struct metrics_run {
    char command[METRICS_COMMAND_MAX];  /* "backup", "drill", "replicate", ... */
    char name[METRICS_NAME_MAX];        /* catalog name; "" when unknown */
    time_t finished_at;
    double duration_seconds;
    int success;
    int verification;                   /* -1: none ran; else 0 or 1 */
    time_t last_success;                /* 0: none known */
    uint64_t retries;
    int has_backup;                     /* 1: the backup_* fields are set */
    uint64_t archive_bytes;
    uint64_t compressed_bytes;
    uint64_t stored_bytes;
    uint64_t parts;
    int has_rpo;                        /* 1: rpo_seconds is set */
    long long rpo_seconds;
    int has_rto;                        /* 1: rto_seconds is set */
    double rto_seconds;
    int has_replicate;                  /* 1: the replicated_* counts are set */
    uint64_t replicated_copied;
    uint64_t replicated_failed;
};

/* Appends value escaped for a label: backslash, double quote and newline
 * become \\, \" and \n. */
int metrics_escape_label(stow_buf *out, const char *value, stow_error *err);

/* Writes the exposition text of run into out (reset first). with_last_success
 * 0 leaves out stowage_last_success_timestamp_seconds. */
int metrics_format(const struct metrics_run *run, int with_last_success, stow_buf *out,
                   stow_error *err);

/* Writes the exposition text of several runs (stowage run's steps, one
 * per name and command), each family once. */
int metrics_format_runs(const struct metrics_run *runs, size_t count, int with_last_success,
                        stow_buf *out, stow_error *err);

/* Reads stowage_last_success_timestamp_seconds for run's name and command
 * from an earlier textfile. Returns 0 when found, 1 otherwise. */
int metrics_read_last_success(const char *path, const struct metrics_run *run, time_t *out);

/* Writes run into the textfile at path, replacing its series of run's name
 * and command and keeping the others. A failed run keeps the last success
 * time that the old file has for its name and command. */
int metrics_write_textfile(const char *path, const struct metrics_run *run, stow_error *err);

/* Writes runs into the textfile at path. It replaces the series whose name
 * is the name of one of runs and whose command is in the NULL-terminated
 * list commands (NULL: that run's own command). So stowage run, which
 * lists all its steps, also clears the series of steps that it skipped. */
int metrics_write_runs(const char *path, const struct metrics_run *runs, size_t count,
                       const char *const *commands, stow_error *err);

/* Checks a Pushgateway URL before any run: http:// or https:// with a
 * host. Fails with STOW_EXIT_USAGE naming the URL (password masked). */
int metrics_check_pushgateway_url(const char *url, stow_error *err);

/* Writes the push URL for run under the Pushgateway base URL into out
 * (reset first). */
int metrics_push_url(const char *gateway, const struct metrics_run *run, stow_buf *out,
                     stow_error *err);

/* Pushes run to the Pushgateway at gateway (PUT on success, POST on
 * failure), with up to three attempts. */
int metrics_push(const char *gateway, const struct metrics_run *run, stow_error *err);

/* --- the run of this process ---------------------------------------------- */

/* Starts the record: command, start time, and --name and --verify from
 * the command's arguments (the restore and verify commands report neither
 * to the CLI layer). */
void metrics_run_begin(const char *command, int argc, char **argv);

/* Set by --metrics-file and --pushgateway; the strings are borrowed. */
void metrics_set_textfile(const char *path);
void metrics_set_pushgateway(const char *url);

/* Sets the catalog name once the command has resolved it. */
void metrics_set_name(const char *name);

/* Records the sizes of a successful backup. */
void metrics_record_backup(uint64_t archive_bytes, uint64_t compressed_bytes,
                           uint64_t stored_bytes, uint64_t parts);

/* Records the outcome of a verification that finished (1 passed, 0 failed). */
void metrics_record_verification(int passed);

/* Records a drill's RPO (when it chose a backup or snapshot) and RTO (when
 * its restore passed). has_rpo and has_rto tell which are set. */
void metrics_record_drill(int has_rpo, long long rpo_seconds, int has_rto, double rto_seconds);

/* Records how many backups a replication copied and how many failed. */
void metrics_record_replicate(uint64_t copied, uint64_t failed);

/* Counts one retried HTTP request (called by the HTTP layer, from any
 * thread). */
void metrics_count_retry(void);

/* Returns the name label of the run ("" without --name). */
const char *metrics_run_name(void);

/* Makes metrics_run_end write nothing: for a run whose name label is a
 * name that the command rejected, whose series would stay in a merged
 * textfile for good. */
void metrics_discard_run(void);

/* Finishes the record with the command's exit code and writes it to the
 * configured outputs. Every command writes the run metrics, and the
 * metrics of its own kind when it recorded them. A failed write is logged
 * at warn and does not change the exit code. Returns exit_code. */
int metrics_run_end(int exit_code);

#endif
