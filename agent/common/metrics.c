/* Prometheus text format for the metrics of one run, the node_exporter
 * textfile writer, the Pushgateway client, and the run record of this
 * process. */
#include "common/metrics.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/file_lock.h"
#include "common/log.h"

#define METRICS_PATH_MAX 4096
#define METRICS_URL_MAX 4096
#define PUSH_MAX_ATTEMPTS 3
#define PUSH_TIMEOUT_MS 10000L
#define PUSH_BACKOFF_MS 500
#define METRICS_LOCK_TIMEOUT_MS 30000

/* --- exposition text ------------------------------------------------------ */

/* Returns the escape sequence of c in a label value, or NULL when c stands
 * for itself. */
static const char *label_escape(char c)
{
    if (c == '\\')
        return "\\\\";
    if (c == '"')
        return "\\\"";
    if (c == '\n')
        return "\\n";
    return NULL;
}

int metrics_escape_label(stow_buf *out, const char *value, stow_error *err)
{
    for (const char *c = value; *c != '\0'; c++) {
        const char *escaped = label_escape(*c);

        if (escaped != NULL ? stow_buf_append_str(out, escaped, err)
                            : stow_buf_append(out, c, 1, err))
            return -1;
    }
    return 0;
}

/* Appends the label set {name="...",command="..."[,kind="..."]}. */
static int append_labels(stow_buf *out, const struct metrics_run *run, const char *kind,
                         stow_error *err)
{
    if (stow_buf_append_str(out, "{name=\"", err) != 0 ||
        metrics_escape_label(out, run->name, err) != 0 ||
        stow_buf_append_str(out, "\",command=\"", err) != 0 ||
        metrics_escape_label(out, run->command, err) != 0 ||
        stow_buf_append_str(out, "\"", err) != 0)
        return -1;
    if (kind != NULL && (stow_buf_append_str(out, ",kind=\"", err) != 0 ||
                         metrics_escape_label(out, kind, err) != 0 ||
                         stow_buf_append_str(out, "\"", err) != 0))
        return -1;
    return stow_buf_append_str(out, "}", err);
}

static int append_family(stow_buf *out, const char *metric, const char *type, const char *help,
                         stow_error *err)
{
    return stow_buf_printf(out, err, "# HELP %s %s\n# TYPE %s %s\n", metric, help, metric, type);
}

/* Appends one sample; value is already formatted. */
static int append_sample(stow_buf *out, const char *metric, const struct metrics_run *run,
                         const char *kind, const char *value, stow_error *err)
{
    if (stow_buf_append_str(out, metric, err) != 0 || append_labels(out, run, kind, err) != 0)
        return -1;
    return stow_buf_printf(out, err, " %s\n", value);
}

/* Writes run's sample of one metric into value; returns 0 when run has none. */
typedef int (*sample_value_fn)(const struct metrics_run *run, char *value, size_t size);

/* The text being written, and the sample lines of an older textfile that
 * it keeps (none for a push). */
struct exposition {
    stow_buf *text;
    const stow_buf *kept;
};

/* Returns the length of the line at line, without its newline. */
static size_t line_length(const char *line, const char *end)
{
    const char *newline = memchr(line, '\n', (size_t)(end - line));

    return (size_t)((newline != NULL ? newline : end) - line);
}

/* Returns 1 when line is a sample of metric. */
static int is_sample_of(const char *line, size_t len, const char *metric)
{
    size_t metric_len = strlen(metric);

    return len > metric_len && memcmp(line, metric, metric_len) == 0 && line[metric_len] == '{';
}

/* Appends the kept sample lines of metric, after the family's HELP and
 * TYPE lines unless *header says that they are written. */
static int append_kept(struct exposition *out, const char *metric, const char *type,
                       const char *help, int *header, stow_error *err)
{
    const char *line;
    const char *end;

    if (out->kept == NULL || out->kept->len == 0)
        return 0;
    line = (const char *)out->kept->data;
    end = line + out->kept->len;
    while (line < end) {
        size_t len = line_length(line, end);

        if (is_sample_of(line, len, metric)) {
            if (!*header && append_family(out->text, metric, type, help, err) != 0)
                return -1;
            *header = 1;
            if (stow_buf_append(out->text, line, len, err) != 0 ||
                stow_buf_append_str(out->text, "\n", err) != 0)
                return -1;
        }
        line += len + 1;
    }
    return 0;
}

/* Appends a family: its kept samples and one sample per run that has a
 * value; nothing when there are none. help NULL continues the family of
 * the call before (another kind), whose call wrote the kept samples. */
static int append_runs(struct exposition *out, const char *metric, const char *type,
                       const char *help, const struct metrics_run *runs, size_t count,
                       const char *kind, sample_value_fn sample_value, stow_error *err)
{
    int header = help == NULL;
    char value[64];

    if (help != NULL && append_kept(out, metric, type, help, &header, err) != 0)
        return -1;
    for (size_t i = 0; i < count; i++) {
        if (!sample_value(&runs[i], value, sizeof value))
            continue;
        if (!header && append_family(out->text, metric, type, help, err) != 0)
            return -1;
        header = 1;
        if (append_sample(out->text, metric, &runs[i], kind, value, err) != 0)
            return -1;
    }
    return 0;
}

static int finished_value(const struct metrics_run *run, char *value, size_t size)
{
    return snprintf(value, size, "%lld", (long long)run->finished_at) > 0;
}

static int last_success_value(const struct metrics_run *run, char *value, size_t size)
{
    return run->last_success != 0 &&
           snprintf(value, size, "%lld", (long long)run->last_success) > 0;
}

static int duration_value(const struct metrics_run *run, char *value, size_t size)
{
    return snprintf(value, size, "%.3f", run->duration_seconds) > 0;
}

static int success_value(const struct metrics_run *run, char *value, size_t size)
{
    return snprintf(value, size, "%d", run->success ? 1 : 0) > 0;
}

static int retries_value(const struct metrics_run *run, char *value, size_t size)
{
    return snprintf(value, size, "%llu", (unsigned long long)run->retries) > 0;
}

static int verification_value(const struct metrics_run *run, char *value, size_t size)
{
    return run->verification >= 0 && snprintf(value, size, "%d", run->verification) > 0;
}

static int archive_value(const struct metrics_run *run, char *value, size_t size)
{
    return run->has_backup &&
           snprintf(value, size, "%llu", (unsigned long long)run->archive_bytes) > 0;
}

static int compressed_value(const struct metrics_run *run, char *value, size_t size)
{
    return run->has_backup &&
           snprintf(value, size, "%llu", (unsigned long long)run->compressed_bytes) > 0;
}

static int stored_value(const struct metrics_run *run, char *value, size_t size)
{
    return run->has_backup &&
           snprintf(value, size, "%llu", (unsigned long long)run->stored_bytes) > 0;
}

static int ratio_value(const struct metrics_run *run, char *value, size_t size)
{
    double ratio = run->compressed_bytes > 0
                       ? (double)run->archive_bytes / (double)run->compressed_bytes
                       : 0.0;

    return run->has_backup && snprintf(value, size, "%.4f", ratio) > 0;
}

static int parts_value(const struct metrics_run *run, char *value, size_t size)
{
    return run->has_backup && snprintf(value, size, "%llu", (unsigned long long)run->parts) > 0;
}

static int rpo_value(const struct metrics_run *run, char *value, size_t size)
{
    return run->has_rpo && snprintf(value, size, "%lld", run->rpo_seconds) > 0;
}

static int rto_value(const struct metrics_run *run, char *value, size_t size)
{
    return run->has_rto && snprintf(value, size, "%.3f", run->rto_seconds) > 0;
}

static int replicated_copied_value(const struct metrics_run *run, char *value, size_t size)
{
    return run->has_replicate &&
           snprintf(value, size, "%llu", (unsigned long long)run->replicated_copied) > 0;
}

static int replicated_failed_value(const struct metrics_run *run, char *value, size_t size)
{
    return run->has_replicate &&
           snprintf(value, size, "%llu", (unsigned long long)run->replicated_failed) > 0;
}

static int append_drill_replicate_metrics(struct exposition *out, const struct metrics_run *runs,
                                          size_t count, stow_error *err)
{
    static const char replicated_metric[] = "stowage_replicate_backups";

    if (append_runs(out, "stowage_drill_rpo_seconds", "gauge",
                    "Age in seconds of the backup or snapshot the last drill restored.", runs,
                    count, NULL, rpo_value, err) != 0 ||
        append_runs(out, "stowage_drill_rto_seconds", "gauge",
                    "Seconds the last drill took to restore and verify.", runs, count, NULL,
                    rto_value, err) != 0)
        return -1;
    if (append_runs(out, replicated_metric, "gauge",
                    "Backups the last replication copied to the replica, and that failed.",
                    runs, count, "copied", replicated_copied_value, err) != 0)
        return -1;
    return append_runs(out, replicated_metric, "gauge", NULL, runs, count, "failed",
                       replicated_failed_value, err);
}

static int append_backup_metrics(struct exposition *out, const struct metrics_run *runs,
                                 size_t count, stow_error *err)
{
    static const char bytes_metric[] = "stowage_backup_bytes";

    /* The three kinds share one family, so only the first has the header. */
    if (append_runs(out, bytes_metric, "gauge",
                    "Size of the last backup in bytes: the archive before compression, "
                    "after compression, and as stored (encrypted).",
                    runs, count, "archive", archive_value, err) != 0 ||
        append_runs(out, bytes_metric, "gauge", NULL, runs, count, "compressed",
                    compressed_value, err) != 0 ||
        append_runs(out, bytes_metric, "gauge", NULL, runs, count, "stored", stored_value,
                    err) != 0)
        return -1;
    if (append_runs(out, "stowage_backup_compression_ratio", "gauge",
                    "Archive bytes divided by compressed bytes of the last backup.", runs,
                    count, NULL, ratio_value, err) != 0)
        return -1;
    return append_runs(out, "stowage_backup_parts", "gauge", "Upload parts of the last backup.",
                       runs, count, NULL, parts_value, err);
}

/* Writes the families in a fixed order, each with the kept samples of out
 * and the samples of runs. */
static int format_exposition(struct exposition *out, const struct metrics_run *runs,
                             size_t count, int with_last_success, stow_error *err)
{
    stow_buf_reset(out->text);
    if (append_runs(out, "stowage_last_run_timestamp_seconds", "gauge",
                    "Unix time at which the last run finished.", runs, count, NULL,
                    finished_value, err) != 0)
        return -1;
    if (with_last_success &&
        append_runs(out, "stowage_last_success_timestamp_seconds", "gauge",
                    "Unix time at which the last successful run finished.", runs, count, NULL,
                    last_success_value, err) != 0)
        return -1;
    if (append_runs(out, "stowage_run_duration_seconds", "gauge",
                    "Duration of the last run in seconds.", runs, count, NULL, duration_value,
                    err) != 0 ||
        append_runs(out, "stowage_run_success", "gauge",
                    "1 when the last run succeeded, else 0.", runs, count, NULL, success_value,
                    err) != 0 ||
        append_runs(out, "stowage_retries_total", "counter",
                    "HTTP requests retried during the last run.", runs, count, NULL,
                    retries_value, err) != 0 ||
        append_runs(out, "stowage_verification_success", "gauge",
                    "1 when the last run's verification passed, else 0.", runs, count, NULL,
                    verification_value, err) != 0)
        return -1;
    if (append_drill_replicate_metrics(out, runs, count, err) != 0)
        return -1;
    return append_backup_metrics(out, runs, count, err);
}

int metrics_format_runs(const struct metrics_run *runs, size_t count, int with_last_success,
                        stow_buf *out, stow_error *err)
{
    struct exposition exposition = {out, NULL};

    return format_exposition(&exposition, runs, count, with_last_success, err);
}

int metrics_format(const struct metrics_run *run, int with_last_success, stow_buf *out,
                   stow_error *err)
{
    return metrics_format_runs(run, 1, with_last_success, out, err);
}

/* --- textfile ------------------------------------------------------------- */

int metrics_read_last_success(const char *path, const struct metrics_run *run, time_t *out)
{
    stow_buf prefix;
    char line[1024];
    FILE *file;
    int rc = 1;

    stow_buf_init(&prefix, sizeof line);
    if (stow_buf_append_str(&prefix, "stowage_last_success_timestamp_seconds", NULL) != 0 ||
        append_labels(&prefix, run, NULL, NULL) != 0 ||
        stow_buf_append_str(&prefix, " ", NULL) != 0) {
        stow_buf_free(&prefix);
        return 1;
    }
    file = fopen(path, "r");
    while (file != NULL && rc == 1 && fgets(line, sizeof line, file) != NULL) {
        char *end = NULL;
        long long value;

        if (strncmp(line, (const char *)prefix.data, prefix.len) != 0)
            continue;
        value = strtoll(line + prefix.len, &end, 10);
        if (end != line + prefix.len && value > 0) {
            *out = (time_t)value;
            rc = 0;
        }
    }
    if (file != NULL)
        fclose(file);
    stow_buf_free(&prefix);
    return rc;
}

static int write_all(int fd, const uint8_t *data, size_t len)
{
    while (len > 0) {
        ssize_t written = write(fd, data, len);

        if (written < 0 && errno == EINTR)
            continue;
        if (written < 0)
            return -1;
        data += written;
        len -= (size_t)written;
    }
    return 0;
}

/* Writes text to a new temporary file beside path, then renames it. */
static int replace_file(const char *path, const stow_buf *text, stow_error *err)
{
    char temporary[METRICS_PATH_MAX];
    int written = snprintf(temporary, sizeof temporary, "%s.tmp.%ld", path, (long)getpid());
    int fd;

    if (written < 0 || (size_t)written >= sizeof temporary)
        return stow_fail(err, STOW_EXIT_USAGE, "--metrics-file path is too long");
    fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return stow_fail_errno(err, STOW_EXIT_FAILURE, errno, "creating metrics file", temporary);
    /* The umask must not make the file unreadable for node_exporter. */
    if (fchmod(fd, 0644) != 0 || write_all(fd, text->data, text->len) != 0 || fsync(fd) != 0) {
        int saved = errno;

        close(fd);
        unlink(temporary);
        return stow_fail_errno(err, STOW_EXIT_FAILURE, saved, "writing metrics file", temporary);
    }
    if (close(fd) != 0 || rename(temporary, path) != 0) {
        int saved = errno;

        unlink(temporary);
        return stow_fail_errno(err, STOW_EXIT_FAILURE, saved, "replacing metrics file", path);
    }
    return 0;
}

/* Reads the textfile at path into text; a missing file is empty. */
static int read_textfile(const char *path, stow_buf *text, stow_error *err)
{
    char chunk[8192];
    size_t got;
    FILE *file = fopen(path, "r");

    if (file == NULL && errno == ENOENT)
        return 0;
    if (file == NULL)
        return stow_fail_errno(err, STOW_EXIT_FAILURE, errno, "reading metrics file", path);
    while ((got = fread(chunk, 1, sizeof chunk, file)) > 0) {
        if (stow_buf_append(text, chunk, got, err) != 0) {
            fclose(file);
            stow_error_prefix(err, "metrics file %s is larger than %zu bytes", path, text->max);
            stow_error_hint(err, "remove it; the next runs write their series again");
            return -1;
        }
    }
    fclose(file);
    return 0;
}

/* Returns 1 when the escaped label value text[0, len) is value. */
static int label_value_is(const char *text, size_t len, const char *value)
{
    size_t at = 0;

    for (const char *c = value; *c != '\0'; c++) {
        const char *escaped = label_escape(*c);
        size_t n = escaped != NULL ? 2 : 1;

        if (at + n > len || memcmp(text + at, escaped != NULL ? escaped : c, n) != 0)
            return 0;
        at += n;
    }
    return at == len;
}

/* Finds the escaped value of the label at *cursor, which must read
 * LABEL="; moves *cursor past its closing quote. Returns 0 when found. */
static int next_label_value(const char **cursor, const char *end, const char *label,
                            const char **value, size_t *len)
{
    size_t label_len = strlen(label);
    const char *c = *cursor;

    if ((size_t)(end - c) < label_len + 2 || memcmp(c, label, label_len) != 0 ||
        c[label_len] != '=' || c[label_len + 1] != '"')
        return -1;
    c += label_len + 2;
    *value = c;
    while (c < end && *c != '"')
        c += *c == '\\' ? 2 : 1;
    if (c >= end)
        return -1;
    *len = (size_t)(c - *value);
    *cursor = c + 1;
    return 0;
}

/* Returns 1 when the escaped command label value is in commands, or with
 * commands NULL is the command of run. */
static int command_is_listed(const char *command, size_t len, const struct metrics_run *run,
                             const char *const *commands)
{
    if (commands == NULL)
        return label_value_is(command, len, run->command);
    for (size_t i = 0; commands[i] != NULL; i++) {
        if (label_value_is(command, len, commands[i]))
            return 1;
    }
    return 0;
}

/* Returns 1 when a write of runs replaces the sample line: its name label
 * is the name of one of runs, and its command label is in commands, or
 * with commands NULL is that run's command. */
static int is_replaced(const char *line, size_t len, const struct metrics_run *runs, size_t count,
                       const char *const *commands)
{
    const char *end = line + len;
    const char *cursor = memchr(line, '{', len);
    const char *name;
    const char *command;
    size_t name_len;
    size_t command_len;

    if (cursor == NULL)
        return 0;
    cursor++;
    if (next_label_value(&cursor, end, "name", &name, &name_len) != 0 || cursor >= end ||
        *cursor++ != ',' ||
        next_label_value(&cursor, end, "command", &command, &command_len) != 0)
        return 0;
    for (size_t i = 0; i < count; i++) {
        if (label_value_is(name, name_len, runs[i].name) &&
            command_is_listed(command, command_len, &runs[i], commands))
            return 1;
    }
    return 0;
}

/* Copies into kept the sample lines of old that a write of runs does not
 * replace. HELP and TYPE lines are left out: the formatter writes them. */
static int keep_other_series(const stow_buf *old, const struct metrics_run *runs, size_t count,
                             const char *const *commands, stow_buf *kept, stow_error *err)
{
    const char *line = (const char *)old->data;
    const char *end;

    if (old->len == 0)
        return 0;
    end = line + old->len;
    while (line < end) {
        size_t len = line_length(line, end);

        if (len > 0 && line[0] != '#' && !is_replaced(line, len, runs, count, commands) &&
            (stow_buf_append(kept, line, len, err) != 0 ||
             stow_buf_append_str(kept, "\n", err) != 0))
            return -1;
        line += len + 1;
    }
    return 0;
}

/* Writes the merged textfile; the caller holds the lock of path. */
static int merge_textfile(const char *path, struct metrics_run *runs, size_t count,
                          const char *const *commands, stow_error *err)
{
    stow_buf old;
    stow_buf kept;
    stow_buf text;
    struct exposition exposition = {&text, &kept};
    int rc = -1;

    stow_buf_init(&old, METRICS_TEXTFILE_MAX);
    stow_buf_init(&kept, METRICS_TEXTFILE_MAX);
    stow_buf_init(&text, METRICS_TEXTFILE_MAX);

    /* A failed run keeps the last success that the file has for it. */
    for (size_t i = 0; i < count; i++) {
        if (!runs[i].success && runs[i].last_success == 0)
            metrics_read_last_success(path, &runs[i], &runs[i].last_success);
    }

    if (read_textfile(path, &old, err) == 0 &&
        keep_other_series(&old, runs, count, commands, &kept, err) == 0 &&
        format_exposition(&exposition, runs, count, 1, err) == 0)
        rc = replace_file(path, &text, err);
    stow_buf_free(&old);
    stow_buf_free(&kept);
    stow_buf_free(&text);
    return rc;
}

int metrics_write_runs(const char *path, const struct metrics_run *runs, size_t count,
                       const char *const *commands, stow_error *err)
{
    struct metrics_run *copies = calloc(count > 0 ? count : 1, sizeof *copies);
    int lock_fd = -1;
    int rc = -1;

    if (copies == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory");
    memcpy(copies, runs, count * sizeof *copies);
    if (stow_file_lock(path, METRICS_LOCK_TIMEOUT_MS, &lock_fd, err) == 0)
        rc = merge_textfile(path, copies, count, commands, err);
    stow_file_unlock(lock_fd);
    free(copies);
    return rc;
}

int metrics_write_textfile(const char *path, const struct metrics_run *run, stow_error *err)
{
    return metrics_write_runs(path, run, 1, NULL, err);
}

/* --- Pushgateway ---------------------------------------------------------- */

/* Returns 1 when value can stand as a URL path segment unencoded. */
static int is_plain_segment(const char *value)
{
    if (value[0] == '\0')
        return 0;
    for (const char *c = value; *c != '\0'; c++) {
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '-' || *c == '_' || *c == '.'))
            return 0;
    }
    return 1;
}

/* Appends "/LABEL/VALUE", or "/LABEL@base64/BASE64URL" for other values. */
static int append_grouping_label(stow_buf *out, const char *label, const char *value,
                                 stow_error *err)
{
    size_t len = strlen(value);
    size_t encoded_size = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_URLSAFE);
    char *encoded;
    int rc;

    if (is_plain_segment(value))
        return stow_buf_printf(out, err, "/%s/%s", label, value);
    encoded = malloc(encoded_size);
    if (encoded == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory encoding a metrics label");
    sodium_bin2base64(encoded, encoded_size, (const unsigned char *)value, len,
                      sodium_base64_VARIANT_URLSAFE);
    /* An empty value is written as "=", which the Pushgateway reads as "". */
    rc = stow_buf_printf(out, err, "/%s@base64/%s", label, encoded[0] != '\0' ? encoded : "=");
    free(encoded);
    return rc;
}

int metrics_check_pushgateway_url(const char *url, stow_error *err)
{
    CURLU *parsed = curl_url();
    char *scheme = NULL;
    char *host = NULL;
    int valid;

    valid = parsed != NULL && curl_url_set(parsed, CURLUPART_URL, url, 0) == CURLUE_OK &&
            curl_url_get(parsed, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
            curl_url_get(parsed, CURLUPART_HOST, &host, 0) == CURLUE_OK && host[0] != '\0' &&
            (strcmp(scheme, "http") == 0 || strcmp(scheme, "https") == 0);
    curl_free(scheme);
    curl_free(host);
    curl_url_cleanup(parsed);
    if (valid)
        return 0;
    stow_fail(err, STOW_EXIT_USAGE, "invalid Pushgateway URL \"%s\"", url);
    stow_error_hint(err, "give http://HOST:PORT or https://HOST:PORT (Pushgateway listens on "
                         "9091 by default)");
    return -1;
}

int metrics_push_url(const char *gateway, const struct metrics_run *run, stow_buf *out,
                     stow_error *err)
{
    size_t len = strlen(gateway);

    while (len > 0 && gateway[len - 1] == '/')
        len--;
    stow_buf_reset(out);
    if (stow_buf_append(out, gateway, len, err) != 0 ||
        stow_buf_append_str(out, "/metrics/job/stowage", err) != 0 ||
        append_grouping_label(out, "name", run->name, err) != 0 ||
        append_grouping_label(out, "command", run->command, err) != 0)
        return -1;
    return 0;
}

struct push_body {
    const stow_buf *text;
    size_t offset;
};

static size_t read_push_body(char *buffer, size_t size, size_t count, void *context)
{
    struct push_body *body = context;
    size_t left = body->text->len - body->offset;
    size_t chunk = left < size * count ? left : size * count;

    memcpy(buffer, body->text->data + body->offset, chunk);
    body->offset += chunk;
    return chunk;
}

static size_t keep_reply(char *data, size_t size, size_t count, void *context)
{
    stow_buf_append(context, data, size * count, NULL);
    return size * count; /* a reply past the buffer's maximum is cut, not an error */
}

/* Sends one attempt. Returns 0 on 2xx, 1 when a retry may help, -1 otherwise. */
static int push_attempt(CURL *easy, const char *method, const stow_buf *text, const char *url,
                        stow_error *err)
{
    struct push_body body = {text, 0};
    char reply_text[256];
    stow_buf reply;
    long status = 0;
    CURLcode code;

    stow_buf_init(&reply, 4096);
    curl_easy_setopt(easy, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(easy, CURLOPT_READFUNCTION, read_push_body);
    curl_easy_setopt(easy, CURLOPT_READDATA, &body);
    curl_easy_setopt(easy, CURLOPT_INFILESIZE_LARGE, (curl_off_t)text->len);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, keep_reply);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, &reply);
    code = curl_easy_perform(easy);
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);

    snprintf(reply_text, sizeof reply_text, "%.*s", (int)reply.len,
             reply.len > 0 ? (const char *)reply.data : "");
    reply_text[strcspn(reply_text, "\r\n")] = '\0';
    stow_buf_free(&reply);

    if (code == CURLE_OK && status >= 200 && status < 300)
        return 0;
    stow_error_clear(err);
    if (code != CURLE_OK)
        stow_fail(err, STOW_EXIT_FAILURE, "pushing metrics to %s failed: %s", url,
                  curl_easy_strerror(code));
    else
        stow_fail(err, STOW_EXIT_FAILURE, "pushing metrics to %s failed: HTTP %ld %s", url,
                  status, reply_text);
    return code != CURLE_OK || status >= 500 || status == 429 ? 1 : -1;
}

int metrics_push(const char *gateway, const struct metrics_run *run, stow_error *err)
{
    const char *method = run->success ? "PUT" : "POST";
    struct curl_slist *headers = NULL;
    stow_error attempt_err = {0};
    stow_buf url, text;
    CURL *easy = NULL;
    int rc = -1;

    stow_buf_init(&url, METRICS_URL_MAX);
    stow_buf_init(&text, METRICS_TEXT_MAX);
    if (metrics_push_url(gateway, run, &url, err) != 0 ||
        metrics_format(run, run->success, &text, err) != 0)
        goto done;
    easy = curl_easy_init();
    headers = curl_slist_append(NULL, "Content-Type: text/plain; version=0.0.4");
    if (easy == NULL || headers == NULL) {
        stow_fail(err, STOW_EXIT_FAILURE, "libcurl could not set up the metrics push");
        goto done;
    }

    /* One blocking request at the end of the run: the easy interface is
     * enough, and the retries are few and short. */
    curl_easy_setopt(easy, CURLOPT_URL, (const char *)url.data);
    curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, PUSH_TIMEOUT_MS);
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_USERAGENT, "stowage/" STOWAGE_VERSION);
    for (int attempt = 1; attempt <= PUSH_MAX_ATTEMPTS; attempt++) {
        rc = push_attempt(easy, method, &text, (const char *)url.data, &attempt_err);
        if (rc != 1 || attempt == PUSH_MAX_ATTEMPTS)
            break;
        stow_log_warn("%s (attempt %d of %d); retrying in %d ms", attempt_err.message, attempt,
                      PUSH_MAX_ATTEMPTS, PUSH_BACKOFF_MS * attempt);
        usleep((useconds_t)PUSH_BACKOFF_MS * 1000u * (useconds_t)attempt);
    }
    if (rc != 0) {
        if (err != NULL && !stow_error_is_set(err))
            memcpy(err, &attempt_err, sizeof attempt_err);
        rc = -1;
    }

done:
    curl_slist_free_all(headers);
    curl_easy_cleanup(easy);
    stow_buf_free(&url);
    stow_buf_free(&text);
    return rc;
}

/* --- the run of this process ---------------------------------------------- */

static struct {
    struct metrics_run run;
    struct timespec started;
    const char *textfile;
    const char *pushgateway;
    int restore_verifies;
    int discarded;              /* metrics_discard_run: write nothing */
} current = {.run = {.verification = -1}};

static atomic_ullong retry_count;

void metrics_count_retry(void)
{
    atomic_fetch_add(&retry_count, 1);
}

void metrics_set_textfile(const char *path)
{
    current.textfile = path;
}

void metrics_set_pushgateway(const char *url)
{
    current.pushgateway = url;
}

void metrics_set_name(const char *name)
{
    if (name != NULL && name[0] != '\0')
        snprintf(current.run.name, sizeof current.run.name, "%s", name);
}

void metrics_record_backup(uint64_t archive_bytes, uint64_t compressed_bytes,
                           uint64_t stored_bytes, uint64_t parts)
{
    current.run.has_backup = 1;
    current.run.archive_bytes = archive_bytes;
    current.run.compressed_bytes = compressed_bytes;
    current.run.stored_bytes = stored_bytes;
    current.run.parts = parts;
}

void metrics_record_verification(int passed)
{
    current.run.verification = passed ? 1 : 0;
}

void metrics_record_drill(int has_rpo, long long rpo_seconds, int has_rto, double rto_seconds)
{
    current.run.has_rpo = has_rpo;
    current.run.rpo_seconds = rpo_seconds;
    current.run.has_rto = has_rto;
    current.run.rto_seconds = rto_seconds;
}

void metrics_record_replicate(uint64_t copied, uint64_t failed)
{
    current.run.has_replicate = 1;
    current.run.replicated_copied = copied;
    current.run.replicated_failed = failed;
}

void metrics_run_begin(const char *command, int argc, char **argv)
{
    clock_gettime(CLOCK_MONOTONIC, &current.started);
    snprintf(current.run.command, sizeof current.run.command, "%s", command);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--name") == 0 && i + 1 < argc)
            metrics_set_name(argv[i + 1]);
        else if (strncmp(argv[i], "--name=", 7) == 0)
            metrics_set_name(argv[i] + 7);
        else if (strcmp(argv[i], "--verify") == 0)
            current.restore_verifies = 1;
    }
}

const char *metrics_run_name(void)
{
    return current.run.name;
}

void metrics_discard_run(void)
{
    current.discarded = 1;
}

int metrics_run_end(int exit_code)
{
    struct metrics_run *run = &current.run;
    struct timespec now;
    stow_error err = {0};

    if ((current.textfile == NULL && current.pushgateway == NULL) || current.discarded)
        return exit_code;

    clock_gettime(CLOCK_MONOTONIC, &now);
    run->duration_seconds = (double)(now.tv_sec - current.started.tv_sec) +
                            (double)(now.tv_nsec - current.started.tv_nsec) / 1e9;
    run->finished_at = time(NULL);
    run->success = exit_code == 0;
    run->last_success = run->success ? run->finished_at : 0;
    run->retries = atomic_load(&retry_count);
    if (strcmp(run->command, "verify") == 0 ||
        (strcmp(run->command, "restore") == 0 && current.restore_verifies))
        run->verification = exit_code == 0;

    if (current.textfile != NULL && metrics_write_textfile(current.textfile, run, &err) != 0) {
        stow_log_warn("metrics were not written: %s", err.message);
        stow_error_clear(&err);
    }
    if (current.pushgateway != NULL && metrics_push(current.pushgateway, run, &err) != 0)
        stow_log_warn("metrics were not pushed: %s", err.message);
    return exit_code;
}
