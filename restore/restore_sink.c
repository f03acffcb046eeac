/* Archive members into psql (globals) and pg_restore (the dump). */
#include "restore_sink.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/interrupt.h"
#include "common/log.h"
#include "dump_offsets.h"
#include "members.h"

#define GLOBALS_MAX_BYTES (256u * 1024 * 1024)
/* pg_restore's standard input pipe, enlarged from Linux's 64 KiB default
 * so that fewer writes block. Measured with scripts/bench/run.sh (pgbench
 * scale 20 and 30, 200 MB real-estate dataset, 2 busy shared CPUs), it
 * lowered stowage's own CPU time by 1 to 11%; the wall times were within
 * the noise of the machine. */
#define RESTORE_PIPE_BYTES (1024 * 1024)

void restore_sink_init(struct restore_sink *sink)
{
    memset(sink, 0, sizeof *sink);
    stow_buf_init(&sink->globals, GLOBALS_MAX_BYTES);
}

/* Best effort: the pipe keeps its default size when the request exceeds
 * /proc/sys/fs/pipe-max-size (1 MiB by default) for an unprivileged user. */
static void enlarge_pipe(int fd)
{
    fcntl(fd, F_SETPIPE_SZ, RESTORE_PIPE_BYTES);
}

static int write_all(int fd, const void *data, size_t len, const char *program,
                     stow_error *err)
{
    const uint8_t *cursor = data;

    while (len > 0) {
        ssize_t written = write(fd, cursor, len);

        if (written < 0 && errno == EINTR) {
            if (stow_interrupted())
                return stow_fail_interrupted(err, "the restore");
            continue;
        }
        if (written < 0)
            return stow_fail(err, STOW_EXIT_FAILURE, "writing to %s failed: %s", program,
                             strerror(errno));
        cursor += written;
        len -= (size_t)written;
    }
    return 0;
}

/* Applies roles and tablespaces. Errors such as "role already exists" are
 * expected on a populated server, so psql continues past them; they are
 * logged at detail level. */
static int apply_globals(struct restore_sink *sink, stow_error *err)
{
    char dbname_option[512];
    char *argv[] = {sink->psql_path, "-X", "-q", "--no-password", "-v", "ON_ERROR_STOP=0",
                    dbname_option, "-f", "-", NULL};
    struct pg_child psql;

    sink->globals_applied = 1;
    if (!sink->with_globals || sink->globals.len == 0)
        return 0;
    if (pgtools_find_program(sink->major, "psql", sink->psql_path, sizeof sink->psql_path,
                             err) != 0)
        return -1;
    snprintf(dbname_option, sizeof dbname_option, "--dbname=%s", sink->dbname);
    if (pgtools_spawn(sink->psql_path, argv, sink->conninfo, PG_CHILD_STDIN_PIPE, &psql, err) != 0)
        return -1;
    if (write_all(psql.stdin_fd, sink->globals.data, sink->globals.len, "psql", err) != 0) {
        pgtools_kill(&psql);
        return -1;
    }
    if (pgtools_wait(&psql, err) != 0) {
        stow_error_prefix(err, "applying roles and tablespaces failed");
        return -1;
    }
    stow_log_info("applied roles and tablespaces (%zu bytes of SQL)", sink->globals.len);
    return 0;
}

/* Starts pg_restore: on standard input in one transaction, or with --jobs
 * on the spool file, restoring only section ("pre-data", "post-data") when
 * it is not NULL. */
static int start_pg_restore(struct restore_sink *sink, const char *section, stow_error *err)
{
    char dbname_option[512];
    char jobs_option[32] = "";
    char section_option[32] = "";
    char *argv[15];
    int argc = 0;
    int rc;

    if (pgtools_find_program(sink->major, "pg_restore", sink->restore_path,
                             sizeof sink->restore_path, err) != 0)
        return -1;
    snprintf(dbname_option, sizeof dbname_option, "--dbname=%s", sink->dbname);
    argv[argc++] = sink->restore_path;
    argv[argc++] = dbname_option;
    argv[argc++] = "--exit-on-error";
    argv[argc++] = "--no-password";
    if (sink->spool == NULL || (section != NULL && strcmp(section, "pre-data") == 0)) {
        /* pg_restore runs pre-data on one connection anyway, and in one
         * transaction a failure there leaves the target as it was. */
        argv[argc++] = "--single-transaction";
    } else {
        /* pg_restore rejects --single-transaction together with --jobs. */
        snprintf(jobs_option, sizeof jobs_option, "--jobs=%d", sink->jobs);
        argv[argc++] = jobs_option;
    }
    if (sink->clean) {
        argv[argc++] = "--clean";
        argv[argc++] = "--if-exists";
    }
    if (sink->no_owner) {
        argv[argc++] = "--no-owner";
        argv[argc++] = "--no-privileges";
    }
    if (section != NULL) {
        snprintf(section_option, sizeof section_option, "--section=%s", section);
        argv[argc++] = section_option;
    }
    if (sink->spool != NULL)
        argv[argc++] = sink->spool->path;
    argv[argc] = NULL;

    if (sink->spool != NULL && restore_spool_set_inherited(sink->spool, 1, err) != 0)
        return -1;
    rc = pgtools_spawn(sink->restore_path, argv, sink->conninfo,
                       sink->spool == NULL ? PG_CHILD_STDIN_PIPE : 0, &sink->restore, err);
    if (sink->spool != NULL)
        restore_spool_set_inherited(sink->spool, 0, NULL);
    if (rc != 0)
        return -1;
    sink->restore_started = 1;
    sink->restore_began = 1;
    if (sink->spool == NULL)
        enlarge_pipe(sink->restore.stdin_fd);
    stow_log_info("restoring into database %s with %s%s%s%s%s", sink->dbname,
                  sink->restore_path, jobs_option[0] != '\0' ? " " : "", jobs_option,
                  section_option[0] != '\0' ? " " : "", section_option);
    return 0;
}

/* Runs pg_restore --jobs on the spool file to its end, for one section
 * unless section is NULL. */
static int run_parallel_restore(struct restore_sink *sink, const char *section,
                                stow_error *err)
{
    struct timespec started;
    struct timespec ended;
    int rc;

    if (stow_interrupted())
        return stow_fail_interrupted(err, "the restore");
    clock_gettime(CLOCK_MONOTONIC, &started);
    if (start_pg_restore(sink, section, err) != 0)
        return -1;
    sink->restore_started = 0;
    rc = pgtools_wait(&sink->restore, err);
    clock_gettime(CLOCK_MONOTONIC, &ended);
    sink->parallel_restore_seconds += (double)(ended.tv_sec - started.tv_sec) +
                                      (double)(ended.tv_nsec - started.tv_nsec) / 1e9;
    if (rc != 0 && section != NULL)
        stow_error_prefix(err, "pg_restore --section=%s failed", section);
    return rc;
}

/* Returns why the dump must be spooled whole, or NULL when its data can be
 * loaded over COPY as it streams. */
static const char *spool_reason(const struct dumpscan_toc_summary *summary)
{
    if (summary->large_object_count > 0)
        return "it contains large objects, which pg_restore restores";
    if (summary->other_data_count > 0)
        return "its TOC lists data that is neither table rows nor large objects";
    return NULL;
}

/* Names the connections a parallel restore needs when one was refused. */
static void hint_connection_limit(const struct restore_sink *sink, stow_error *err)
{
    stow_error_hint(err, "restore --jobs %d opens %d connections to the target at once, "
                         "besides its own and pg_restore's (%d in all): lower --jobs, or raise "
                         "the connection limit of the role, the database or the server",
                    sink->jobs, sink->jobs, sink->jobs + 2);
}

/* After the TOC: creates the schema and starts the COPY connections, or
 * falls back to spooling the whole dump. The target is untouched until
 * then. */
static int on_toc_end(void *context, const struct dumpscan_toc_summary *summary,
                      const struct dumpscan_contents *contents, stow_error *err)
{
    struct restore_sink *sink = context;
    const char *reason = spool_reason(summary);

    if (reason != NULL) {
        stow_log_info("restore --jobs spools the whole dump, because %s", reason);
        sink->load_tables = 0;
        return restore_spool_reserve(sink->spool, err);
    }
    if (contents->encoding == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE,
                         "invalid pg_dump archive: the TOC has no ENCODING entry");

    sink->toc_passed = 1;
    if (restore_spool_truncate(sink->spool, summary->toc_end_offset, err) != 0)
        return -1;

    /* The COPY connections open before anything is created, so a server or
     * role connection limit fails the restore while the target is as it was. */
    if (copy_loader_start(sink->conninfo, sink->jobs, contents->encoding, &sink->loader,
                          err) != 0) {
        hint_connection_limit(sink, err);
        return -1;
    }
    if (apply_globals(sink, err) != 0)
        return -1;
    if (run_parallel_restore(sink, "pre-data", err) != 0) {
        /* pre-data ran in one transaction, so none of the schema is left. */
        sink->restore_began = 0;
        if (strstr(err->message, "too many connections") != NULL ||
            strstr(err->message, "connection limit") != NULL)
            hint_connection_limit(sink, err);
        return -1;
    }
    return 0;
}

/* The table callbacks do nothing once the sink fell back to spooling. */
static int on_table_begin(void *context, const struct dumpscan_table *table, stow_error *err)
{
    struct restore_sink *sink = context;

    return sink->loader == NULL ? 0 : copy_loader_begin_table(sink->loader, table, err);
}

static int on_table_rows(void *context, const void *rows, size_t len, stow_error *err)
{
    struct restore_sink *sink = context;

    return sink->loader == NULL ? 0 : copy_loader_add_rows(sink->loader, rows, len, err);
}

static int on_table_end(void *context, stow_error *err)
{
    struct restore_sink *sink = context;

    return sink->loader == NULL ? 0 : copy_loader_end_table(sink->loader, err);
}

static int start_scanner(struct restore_sink *sink, stow_error *err)
{
    struct dumpscan_options options = {.skip_row_digests = 1};
    struct dumpscan_observer observer = {
        .context = sink,
        .toc_end = on_toc_end,
        .table_begin = on_table_begin,
        .table_rows = on_table_rows,
        .table_end = on_table_end,
    };

    if (dumpscan_new(&options, &sink->scanner, err) != 0)
        return -1;
    dumpscan_set_observer(sink->scanner, &observer);
    return 0;
}

/* Spools the bytes up to the end of the TOC, and passes all of them to the
 * scanner, whose observer loads the table data. */
static int stream_dump(struct restore_sink *sink, const void *data, size_t len,
                       stow_error *err)
{
    if (sink->scanner == NULL && start_scanner(sink, err) != 0)
        return -1;
    if (sink->dump_bytes > sink->spool->expected_bytes)
        return stow_fail(err, STOW_EXIT_VERIFY,
                         "the database dump is longer than the %llu bytes the manifest states",
                         (unsigned long long)sink->spool->expected_bytes);
    if (!sink->toc_passed && restore_spool_write(sink->spool, data, len, err) != 0)
        return -1;
    return dumpscan_write(sink->scanner, data, len, err);
}

/* Ends the streamed restore: the last table data and the sequences, then
 * the indexes, constraints and the rest of post-data. */
static int finish_loading(struct restore_sink *sink, stow_error *err)
{
    if (sink->scanner == NULL)
        return stow_fail(err, STOW_EXIT_VERIFY, "the backup's archive holds no database dump");
    if (dumpscan_finish(sink->scanner, err) != 0)
        return -1;
    if (sink->dump_bytes != sink->spool->expected_bytes)
        return stow_fail(err, STOW_EXIT_VERIFY,
                         "the database dump has %llu bytes, the manifest states %llu",
                         (unsigned long long)sink->dump_bytes,
                         (unsigned long long)sink->spool->expected_bytes);
    if (copy_loader_finish(sink->loader, dumpscan_contents(sink->scanner), err) != 0)
        return -1;
    copy_loader_free(sink->loader);
    sink->loader = NULL;

    if (run_parallel_restore(sink, "post-data", err) != 0)
        return -1;
    restore_spool_close(sink->spool);
    stow_log_info("pg_restore --jobs=%d finished the post-data section (%llu bytes of dump)",
                  sink->jobs, (unsigned long long)sink->dump_bytes);
    return 0;
}

/* dumpscan_output.write: into pg_restore's standard input. */
static int write_to_pg_restore(void *context, const void *data, size_t len, stow_error *err)
{
    struct restore_sink *sink = context;
    stow_error exit_status = {0};

    if (write_all(sink->restore.stdin_fd, data, len, "pg_restore", err) == 0)
        return 0;

    /* pg_restore usually stopped on an error, and its message explains it. */
    pgtools_wait(&sink->restore, &exit_status);
    sink->restore_started = 0;
    if (stow_error_is_set(&exit_status)) {
        stow_error_clear(err);
        *err = exit_status;
    }
    stow_error_prefix(err, "the restore failed and was rolled back");
    return -1;
}

/* The dump reaches pg_restore through a scanner that joins its one-row
 * data chunks (DUMPSCAN_OUTPUT_CHUNK). */
static int start_rechunking(struct restore_sink *sink, stow_error *err)
{
    struct dumpscan_options options = {.skip_row_digests = 1, .skip_rows = 1};
    struct dumpscan_output output = {.context = sink, .write = write_to_pg_restore};

    if (dumpscan_new(&options, &sink->scanner, err) != 0)
        return -1;
    dumpscan_set_output(sink->scanner, &output);
    return 0;
}

int restore_sink_data(void *context, const char *name, uint64_t offset, const void *data,
                      size_t len, stow_error *err)
{
    struct restore_sink *sink = context;

    if (stow_interrupted())
        return stow_fail_interrupted(err, "the restore");
    if (strcmp(name, MEMBERS_GLOBALS_NAME) == 0)
        return stow_buf_append(&sink->globals, data, len, err);
    if (strcmp(name, MEMBERS_INFO_NAME) == 0)
        return 0;
    if (strncmp(name, MEMBERS_DUMP_PREFIX, strlen(MEMBERS_DUMP_PREFIX)) != 0) {
        stow_log_warn("ignoring unknown archive member %s", name);
        return 0;
    }

    if (sink->spool != NULL) {
        sink->dump_bytes += len;
        if (sink->load_tables)
            return stream_dump(sink, data, len, err);
        return restore_spool_write(sink->spool, data, len, err);
    }
    if (!sink->globals_applied && apply_globals(sink, err) != 0)
        return -1;
    if (!sink->restore_started && start_pg_restore(sink, NULL, err) != 0)
        return -1;
    if (sink->scanner == NULL && start_rechunking(sink, err) != 0)
        return -1;
    sink->dump_bytes += len;
    return dumpscan_write(sink->scanner, data, len, err);
}

/* Writes the data offsets into the spooled dump's TOC (dump_offsets.h). A
 * dump that cannot be indexed is restored all the same, only slower. */
static int index_spooled_dump(struct restore_sink *sink, stow_error *err)
{
    size_t filled = 0;
    int rc = dump_offsets_fill(sink->spool->fd, sink->spool->written_bytes, &filled, err);

    if (rc < 0)
        return -1;
    if (rc == 1)
        stow_log_info("the dump's table of contents could not be indexed; pg_restore --jobs "
                      "will search it for each table's data");
    else
        stow_log_detail("wrote the data offsets of %zu TOC entries into the spooled dump",
                        filled);
    return 0;
}

/* Applies the globals and runs pg_restore --jobs on the complete spool file. */
static int restore_from_spool(struct restore_sink *sink, stow_error *err)
{
    int rc;

    if (sink->dump_bytes == 0)
        return stow_fail(err, STOW_EXIT_VERIFY, "the backup's archive holds no database dump");
    if (restore_spool_finish(sink->spool, err) != 0 || index_spooled_dump(sink, err) != 0 ||
        apply_globals(sink, err) != 0)
        return -1;
    rc = run_parallel_restore(sink, NULL, err);
    restore_spool_close(sink->spool);
    if (rc != 0) {
        stow_error_prefix(err, "the parallel restore failed");
        return -1;
    }
    stow_log_info("pg_restore --jobs=%d finished (%llu bytes of dump)", sink->jobs,
                  (unsigned long long)sink->dump_bytes);
    return 0;
}

int restore_sink_finish(struct restore_sink *sink, stow_error *err)
{
    if (sink->spool != NULL && sink->load_tables)
        return finish_loading(sink, err);
    if (sink->spool != NULL)
        return restore_from_spool(sink, err);
    if (!sink->restore_started)
        return stow_fail(err, STOW_EXIT_VERIFY, "the backup's archive holds no database dump");
    if (dumpscan_finish(sink->scanner, err) != 0)
        return -1;
    sink->restore_started = 0;
    if (pgtools_wait(&sink->restore, err) != 0) {
        stow_error_prefix(err, "the restore failed and was rolled back");
        return -1;
    }
    stow_log_info("pg_restore finished (%llu bytes of dump)", (unsigned long long)sink->dump_bytes);
    return 0;
}

void restore_sink_free(struct restore_sink *sink)
{
    if (sink->restore_started)
        pgtools_kill(&sink->restore);
    sink->restore_started = 0;
    copy_loader_free(sink->loader);
    sink->loader = NULL;
    dumpscan_free(sink->scanner);
    sink->scanner = NULL;
    if (sink->spool != NULL)
        restore_spool_close(sink->spool);
    stow_buf_free(&sink->globals);
}
