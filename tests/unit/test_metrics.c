/* Prometheus metrics: label escaping, the exposition text checked by a
 * small parser of the text format, the atomic textfile and the
 * Pushgateway URL. */
#include "unit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <dirent.h>
#include <unistd.h>

#include "common/metrics.h"

static char temp_dir[] = "/tmp/stowage-metrics-XXXXXX";

static struct metrics_run sample_run(void)
{
    struct metrics_run run;

    memset(&run, 0, sizeof run);
    strcpy(run.command, "backup");
    strcpy(run.name, "orders");
    run.finished_at = 1700000000;
    run.duration_seconds = 12.5;
    run.success = 1;
    run.verification = -1;
    run.last_success = 1700000000;
    run.retries = 3;
    run.has_backup = 1;
    run.archive_bytes = 4000;
    run.compressed_bytes = 1000;
    run.stored_bytes = 1100;
    run.parts = 2;
    return run;
}

/* --- a small parser of the text format ------------------------------------ */

#define MAX_FAMILIES 32

struct parsed {
    char typed[MAX_FAMILIES][128]; /* families with a TYPE line, in order */
    int family_count;
    int samples;
    int errors;
};

/* Returns 1 when name matches [a-zA-Z_:][a-zA-Z0-9_:]*. */
static int valid_metric_name(const char *name, size_t len)
{
    if (len == 0 || (name[0] >= '0' && name[0] <= '9'))
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == ':'))
            return 0;
    }
    return 1;
}

/* Checks {name="value",...} at text; returns the end, or NULL. */
static const char *parse_labels(const char *text)
{
    if (*text != '{')
        return text;
    text++;
    while (*text != '}') {
        const char *start = text;

        while ((*text >= 'a' && *text <= 'z') || (*text >= 'A' && *text <= 'Z') || *text == '_')
            text++;
        if (text == start || text[0] != '=' || text[1] != '"')
            return NULL;
        text += 2;
        while (*text != '"') {
            if (*text == '\0' || *text == '\n')
                return NULL;
            if (*text == '\\') {
                if (text[1] != '\\' && text[1] != '"' && text[1] != 'n')
                    return NULL;
                text++;
            }
            text++;
        }
        text++;
        if (*text == ',')
            text++;
        else if (*text != '}')
            return NULL;
    }
    return text + 1;
}

static int family_is_typed(const struct parsed *parsed, const char *name, size_t len)
{
    for (int i = 0; i < parsed->family_count; i++) {
        if (strlen(parsed->typed[i]) == len && strncmp(parsed->typed[i], name, len) == 0)
            return 1;
    }
    return 0;
}

static void parse_line(struct parsed *parsed, const char *line)
{
    const char *end;
    char *number_end = NULL;
    size_t name_len;

    if (strncmp(line, "# HELP ", 7) == 0)
        return;
    if (strncmp(line, "# TYPE ", 7) == 0) {
        char name[128];
        char type[32];

        if (sscanf(line + 7, "%127s %31s", name, type) != 2 ||
            (strcmp(type, "gauge") != 0 && strcmp(type, "counter") != 0) ||
            parsed->family_count == MAX_FAMILIES) {
            parsed->errors++;
            return;
        }
        strcpy(parsed->typed[parsed->family_count++], name);
        return;
    }
    name_len = strcspn(line, "{ ");
    end = parse_labels(line + name_len);
    if (!valid_metric_name(line, name_len) || !family_is_typed(parsed, line, name_len) ||
        end == NULL || *end != ' ') {
        parsed->errors++;
        return;
    }
    strtod(end + 1, &number_end);
    if (number_end == end + 1 || *number_end != '\0')
        parsed->errors++;
    parsed->samples++;
}

static struct parsed parse_exposition(const char *text)
{
    struct parsed parsed;
    char *copy = strdup(text);
    char *save = NULL;

    memset(&parsed, 0, sizeof parsed);
    if (text[0] != '\0' && text[strlen(text) - 1] != '\n')
        parsed.errors++;
    for (char *line = strtok_r(copy, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save))
        parse_line(&parsed, line);
    free(copy);
    return parsed;
}

/* --- tests ---------------------------------------------------------------- */

static void test_escape_label(void)
{
    stow_buf out;
    stow_error err = {0};

    stow_buf_init(&out, 1024);
    CHECK_INT_EQ(0, metrics_escape_label(&out, "a\\b\"c\nd", &err));
    CHECK_STR_EQ("a\\\\b\\\"c\\nd", (const char *)out.data);
    stow_buf_free(&out);
}

static void test_format_backup_run(void)
{
    struct metrics_run run = sample_run();
    struct parsed parsed;
    stow_buf out;
    stow_error err = {0};
    const char *text;

    stow_buf_init(&out, METRICS_TEXT_MAX);
    CHECK_INT_EQ(0, metrics_format(&run, 1, &out, &err));
    text = (const char *)out.data;
    CHECK_CONTAINS(text, "# TYPE stowage_last_run_timestamp_seconds gauge\n"
                         "stowage_last_run_timestamp_seconds{name=\"orders\",command=\"backup\"} "
                         "1700000000\n");
    CHECK_CONTAINS(text, "stowage_last_success_timestamp_seconds{name=\"orders\","
                         "command=\"backup\"} 1700000000\n");
    CHECK_CONTAINS(text, "stowage_run_duration_seconds{name=\"orders\",command=\"backup\"} "
                         "12.500\n");
    CHECK_CONTAINS(text, "stowage_run_success{name=\"orders\",command=\"backup\"} 1\n");
    CHECK_CONTAINS(text, "# TYPE stowage_retries_total counter\n"
                         "stowage_retries_total{name=\"orders\",command=\"backup\"} 3\n");
    CHECK_CONTAINS(text, "stowage_backup_bytes{name=\"orders\",command=\"backup\","
                         "kind=\"archive\"} 4000\n");
    CHECK_CONTAINS(text, "kind=\"compressed\"} 1000\n");
    CHECK_CONTAINS(text, "kind=\"stored\"} 1100\n");
    CHECK_CONTAINS(text, "stowage_backup_compression_ratio{name=\"orders\",command=\"backup\"} "
                         "4.0000\n");
    CHECK_CONTAINS(text, "stowage_backup_parts{name=\"orders\",command=\"backup\"} 2\n");
    CHECK(strstr(text, "stowage_verification_success") == NULL);

    parsed = parse_exposition(text);
    CHECK_INT_EQ(0, parsed.errors);
    CHECK_INT_EQ(8, parsed.family_count);
    CHECK_INT_EQ(10, parsed.samples);
    stow_buf_free(&out);
}

static void test_format_failed_verify_run(void)
{
    struct metrics_run run = sample_run();
    struct parsed parsed;
    stow_buf out;
    stow_error err = {0};
    const char *text;

    strcpy(run.command, "verify");
    strcpy(run.name, "we\"ird\\name\nx");
    run.success = 0;
    run.verification = 0;
    run.has_backup = 0;
    run.last_success = 0;
    stow_buf_init(&out, METRICS_TEXT_MAX);
    CHECK_INT_EQ(0, metrics_format(&run, 1, &out, &err));
    text = (const char *)out.data;
    CHECK_CONTAINS(text, "stowage_run_success{name=\"we\\\"ird\\\\name\\nx\",command=\"verify\"} 0\n");
    CHECK_CONTAINS(text, "stowage_verification_success{name=\"we\\\"ird\\\\name\\nx\","
                         "command=\"verify\"} 0\n");
    CHECK(strstr(text, "stowage_last_success_timestamp_seconds") == NULL);
    CHECK(strstr(text, "stowage_backup_bytes") == NULL);

    parsed = parse_exposition(text);
    CHECK_INT_EQ(0, parsed.errors);
    CHECK_INT_EQ(5, parsed.samples);
    stow_buf_free(&out);
}

static void test_parser_rejects_bad_text(void)
{
    CHECK(parse_exposition("metric_without_type 1\n").errors > 0);
    CHECK(parse_exposition("# TYPE m gauge\nm{a=\"unterminated} 1\n").errors > 0);
    CHECK(parse_exposition("# TYPE m gauge\nm{a=\"x\"} one\n").errors > 0);
    CHECK(parse_exposition("# TYPE m gauge\nm 1").errors > 0);
    CHECK_INT_EQ(0, parse_exposition("# TYPE m gauge\nm{a=\"x\\\"y\"} 1.5\n").errors);
}

static int count_directory_entries(const char *path)
{
    DIR *dir = opendir(path);
    struct dirent *entry;
    int count = 0;

    while (dir != NULL && (entry = readdir(dir)) != NULL) {
        if (strcmp(entry->d_name, ".") != 0 && strcmp(entry->d_name, "..") != 0)
            count++;
    }
    if (dir != NULL)
        closedir(dir);
    return count;
}

/* Removes a textfile and its lock file. */
static void remove_textfile(const char *path)
{
    char lock[300];

    snprintf(lock, sizeof lock, "%s.lock", path);
    unlink(path);
    unlink(lock);
}

static char *read_text(const char *path)
{
    FILE *file = fopen(path, "r");
    char *text = calloc(1, METRICS_TEXT_MAX + 1);

    if (file != NULL) {
        size_t got = fread(text, 1, METRICS_TEXT_MAX, file);

        text[got] = '\0';
        fclose(file);
    }
    return text;
}

static void test_textfile_atomic_and_readable(void)
{
    struct metrics_run run = sample_run();
    char path[256];
    struct stat info;
    stow_error err = {0};
    mode_t old_mask = umask(077);
    char *text;

    snprintf(path, sizeof path, "%s/stowage.prom", temp_dir);
    CHECK_INT_EQ(0, metrics_write_textfile(path, &run, &err));
    umask(old_mask);
    CHECK_INT_EQ(0, stat(path, &info));
    CHECK_INT_EQ(0644, info.st_mode & 0777);
    CHECK_INT_EQ(2, count_directory_entries(temp_dir)); /* the file and its lock file */
    text = read_text(path);
    CHECK_CONTAINS(text, "stowage_run_success{name=\"orders\",command=\"backup\"} 1\n");
    CHECK_INT_EQ(0, parse_exposition(text).errors);
    free(text);

    /* A failed run keeps the last success of the file it replaces. */
    run.success = 0;
    run.last_success = 0;
    run.finished_at = 1700000600;
    run.has_backup = 0;
    CHECK_INT_EQ(0, metrics_write_textfile(path, &run, &err));
    text = read_text(path);
    CHECK_CONTAINS(text, "stowage_run_success{name=\"orders\",command=\"backup\"} 0\n");
    CHECK_CONTAINS(text, "stowage_last_success_timestamp_seconds{name=\"orders\","
                         "command=\"backup\"} 1700000000\n");
    CHECK_CONTAINS(text, "stowage_last_run_timestamp_seconds{name=\"orders\","
                         "command=\"backup\"} 1700000600\n");
    free(text);

    /* Another name does not inherit it. */
    strcpy(run.name, "other");
    CHECK_INT_EQ(0, metrics_write_textfile(path, &run, &err));
    text = read_text(path);
    CHECK(strstr(text, "stowage_last_success_timestamp_seconds{name=\"other\"") == NULL);
    free(text);
    remove_textfile(path);
}

static void test_textfile_keeps_other_series(void)
{
    struct metrics_run run = sample_run();
    struct metrics_run list = sample_run();
    char path[256];
    stow_error err = {0};
    char *text;

    snprintf(path, sizeof path, "%s/shared.prom", temp_dir);
    CHECK_INT_EQ(0, metrics_write_textfile(path, &run, &err));
    strcpy(list.command, "list");
    list.name[0] = '\0';
    list.has_backup = 0;
    list.finished_at = 1700000900;
    list.last_success = 1700000900;
    CHECK_INT_EQ(0, metrics_write_textfile(path, &list, &err));

    text = read_text(path);
    CHECK_CONTAINS(text, "stowage_run_success{name=\"\",command=\"list\"} 1\n");
    CHECK_CONTAINS(text, "stowage_last_success_timestamp_seconds{name=\"orders\","
                         "command=\"backup\"} 1700000000\n");
    CHECK_CONTAINS(text, "stowage_backup_parts{name=\"orders\",command=\"backup\"} 2\n");
    CHECK_INT_EQ(0, parse_exposition(text).errors);
    free(text);

    /* The same name and command replace their series, backup sizes too. */
    run.has_backup = 0;
    run.finished_at = 1700001000;
    run.last_success = 1700001000;
    CHECK_INT_EQ(0, metrics_write_textfile(path, &run, &err));
    text = read_text(path);
    CHECK_CONTAINS(text, "stowage_last_run_timestamp_seconds{name=\"orders\","
                         "command=\"backup\"} 1700001000\n");
    CHECK(strstr(text, "1700000000") == NULL);
    CHECK(strstr(text, "stowage_backup_parts") == NULL);
    CHECK_CONTAINS(text, "stowage_run_success{name=\"\",command=\"list\"} 1\n");
    CHECK_INT_EQ(0, parse_exposition(text).errors);
    free(text);
    remove_textfile(path);
}

static void test_textfile_replaces_listed_commands(void)
{
    static const char *const commands[] = {"backup", "verify", "run", NULL};
    struct metrics_run runs[2] = {sample_run(), sample_run()};
    struct metrics_run verify = sample_run();
    char path[256];
    stow_error err = {0};
    char *text;

    /* An earlier run verified a"b and backed up billing. */
    snprintf(path, sizeof path, "%s/run.prom", temp_dir);
    strcpy(verify.name, "a\"b");
    strcpy(verify.command, "verify");
    verify.has_backup = 0;
    verify.verification = 1;
    CHECK_INT_EQ(0, metrics_write_textfile(path, &verify, &err));
    strcpy(runs[0].name, "billing");
    CHECK_INT_EQ(0, metrics_write_textfile(path, &runs[0], &err));

    /* This run of a"b skipped its verify step: the old verify series go. */
    strcpy(runs[0].name, "a\"b");
    strcpy(runs[1].name, "a\"b");
    strcpy(runs[1].command, "run");
    CHECK_INT_EQ(0, metrics_write_runs(path, runs, 2, commands, &err));
    text = read_text(path);
    CHECK(strstr(text, "command=\"verify\"") == NULL);
    CHECK_CONTAINS(text, "stowage_run_success{name=\"a\\\"b\",command=\"run\"} 1\n");
    CHECK_CONTAINS(text, "stowage_run_success{name=\"billing\",command=\"backup\"} 1\n");
    CHECK_INT_EQ(0, parse_exposition(text).errors);
    free(text);
    remove_textfile(path);
}

static void test_textfile_error_names_path(void)
{
    struct metrics_run run = sample_run();
    stow_error err = {0};

    CHECK_INT_EQ(-1, metrics_write_textfile("/nonexistent/dir/stowage.prom", &run, &err));
    CHECK_CONTAINS(err.message, "/nonexistent/dir/stowage.prom.lock");
}

static void test_push_url(void)
{
    struct metrics_run run = sample_run();
    stow_buf url;
    stow_error err = {0};

    stow_buf_init(&url, 4096);
    CHECK_INT_EQ(0, metrics_push_url("http://127.0.0.1:9091/", &run, &url, &err));
    CHECK_STR_EQ("http://127.0.0.1:9091/metrics/job/stowage/name/orders/command/backup",
                 (const char *)url.data);

    strcpy(run.name, "a/b c");
    CHECK_INT_EQ(0, metrics_push_url("http://127.0.0.1:9091", &run, &url, &err));
    CHECK_STR_EQ("http://127.0.0.1:9091/metrics/job/stowage/name@base64/YS9iIGM=/command/backup",
                 (const char *)url.data);

    run.name[0] = '\0';
    CHECK_INT_EQ(0, metrics_push_url("http://127.0.0.1:9091", &run, &url, &err));
    CHECK_STR_EQ("http://127.0.0.1:9091/metrics/job/stowage/name@base64/=/command/backup",
                 (const char *)url.data);
    stow_buf_free(&url);
}

int main(void)
{
    if (mkdtemp(temp_dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    unit_run("escape label", test_escape_label);
    unit_run("format backup run", test_format_backup_run);
    unit_run("format failed verify run", test_format_failed_verify_run);
    unit_run("parser rejects bad text", test_parser_rejects_bad_text);
    unit_run("textfile atomic and readable", test_textfile_atomic_and_readable);
    unit_run("textfile keeps other series", test_textfile_keeps_other_series);
    unit_run("textfile replaces listed commands", test_textfile_replaces_listed_commands);
    unit_run("textfile error names path", test_textfile_error_names_path);
    unit_run("push url", test_push_url);
    rmdir(temp_dir);
    return unit_finish();
}
