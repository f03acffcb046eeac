/* Restore, verify and extract flows.
 *
 * A restore reads the backup once, streaming: parts are fetched and
 * checked, decrypted, decompressed and fed to pg_restore as they arrive.
 * Verification then compares the restored database with the manifest.
 * The data key is opened before anything is written to the target, so a
 * wrong key never leaves a half-restored database.
 *
 * With --jobs N > 1 the restore runs in three sections (restore_sink.h).
 * pg_restore --section=pre-data creates the schema from the dump's header
 * and TOC, N COPY connections load the table data as the dump streams, and
 * pg_restore --section=post-data --jobs N builds the indexes and
 * constraints. pg_restore --jobs alone would load each table over a single
 * connection, so a dump whose rows are nearly all in one table gained
 * nothing from it. Each COPY commits on its own, so table data reaches the
 * target before the last part of the backup is checked. A tampered part
 * still stops the restore, as with --jobs 1, but --jobs N cannot roll back
 * what was loaded, so the target is left partly restored.
 *
 * Dumps with large objects and restores with --clean go the old way
 * instead: the whole dump is spooled to a temporary file, and pg_restore
 * --jobs N runs on it once the whole backup has been read and checked.
 *
 * With --create the restore goes into a new database under a temporary
 * name, renamed once the restore and its verification succeeded and
 * dropped otherwise (new_database.h), so --jobs N leaves nothing behind
 * there either. */
#include "restore.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backup_reader.h"
#include "common/interrupt.h"
#include "common/log.h"
#include "dbverify.h"
#include "new_database.h"
#include "pg/pgtools.h"
#include "report.h"
#include "restore_sink.h"
#include "scratch_local.h"
#include "spool.h"

struct restore_job {
    storage *store;
    const struct catalog_entry *entry;
    const struct manifest *manifest;
    const struct restore_options *options;
    uint8_t *data_key;
    backup_reader *reader;        /* started before the scratch cluster or the restore */
    struct scratch_local scratch;
    int scratch_created;
    char conninfo[1024];          /* scratch conninfo; else options->target_conninfo */
    const char *target;
    PGconn *conn;
    struct pg_server_info target_info;
    struct new_database new_db;   /* with options->create */
    struct restore_spool spool;   /* used when options->jobs > 1 */
    int load_tables;              /* jobs > 1 loads the table data over COPY */
    struct report report;
};

static int source_major(const struct manifest *manifest)
{
    json_t *source = json_object_get(manifest->document, "source");
    json_int_t number = json_integer_value(json_object_get(source, "server_version_num"));

    return (int)(number / 10000);
}

/* The tables, views and sequences of a database outside the system
 * schemas: what a restore creates. */
#define USER_RELATIONS_SQL                                                         \
    "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "               \
    "WHERE c.relkind IN ('r', 'p', 'm', 'v', 'S', 'f') "                           \
    "AND n.nspname NOT IN ('pg_catalog', 'information_schema') "                   \
    "AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'"

/* A restore must not mix with existing data unless asked to replace it. */
static int check_target_empty(struct restore_job *job, stow_error *err)
{
    static const char sql[] = "SELECT count(*) " USER_RELATIONS_SQL;
    PGresult *result = PQexec(job->conn, sql);
    long count;

    if (PQresultStatus(result) != PGRES_TUPLES_OK) {
        PQclear(result);
        return pgtools_fail(err, STOW_EXIT_DATABASE, job->conn, "inspecting the target failed");
    }
    count = atol(PQgetvalue(result, 0, 0));
    PQclear(result);
    if (count == 0 || job->options->clean)
        return 0;
    stow_fail(err, STOW_EXIT_USAGE,
              "the target database %s already holds %ld tables, views or sequences",
              job->target_info.database, count);
    stow_error_hint(err, "restore into an empty database, or pass --clean to drop and "
                         "replace the objects the backup contains");
    return -1;
}

/* Returns the database encoding in the manifest's contents, or NULL. */
static const char *backup_encoding(const struct manifest *manifest)
{
    json_t *contents = json_object_get(manifest->document, "contents");

    return json_string_value(json_object_get(contents, "encoding"));
}

static int prepare_scratch(struct restore_job *job, stow_error *err)
{
    const char *dbname = job->manifest->database;

    if (scratch_local_create(source_major(job->manifest), backup_encoding(job->manifest),
                             &job->scratch, err) != 0)
        return -1;
    job->scratch_created = 1;
    report_set(&job->report, "scratch_directory", json_string(job->scratch.directory));
    if (scratch_local_name_database(&job->scratch, dbname, err) != 0)
        return -1;
    scratch_local_conninfo(&job->scratch, dbname, job->conninfo, sizeof job->conninfo);
    job->target = job->conninfo;
    return 0;
}

/* Compares the backup's database encoding with the target's. PostgreSQL
 * converts the dump's text into the target's encoding, except to or from
 * SQL_ASCII, where the bytes go in unchecked. Bytes from a SQL_ASCII
 * backup can be invalid in the target's encoding, so reads of them fail
 * later. In a SQL_ASCII target the text loses its encoding. */
static void check_encodings(const struct restore_job *job)
{
    const char *backup = backup_encoding(job->manifest);
    const char *target = job->target_info.encoding;
    const char *database = job->target_info.database;
    const char *id = job->manifest->id;

    if (backup == NULL || backup[0] == '\0' || strcmp(backup, target) == 0)
        return;
    if (strcmp(backup, "SQL_ASCII") == 0) {
        stow_log_warn("backup %s is of a SQL_ASCII database and the target database %s is %s: "
                      "PostgreSQL neither converts nor checks the text, so bytes that are "
                      "invalid in %s can be restored and fail to read later; restore into a "
                      "database created with ENCODING 'SQL_ASCII' to keep the bytes as they "
                      "were", id, database, target, target);
        return;
    }
    if (strcmp(target, "SQL_ASCII") == 0) {
        stow_log_warn("backup %s is of a %s database and the target database %s is SQL_ASCII: "
                      "the text keeps its bytes but not its encoding, so functions such as "
                      "length() and upper() treat each byte as a character; restore into a "
                      "database created with ENCODING '%s' to keep it", id, backup, database,
                      backup);
        return;
    }
    stow_log_info("backup %s is of a %s database and the target database %s is %s: "
                  "PostgreSQL converts the text, and a character that %s cannot represent "
                  "fails the restore", id, backup, database, target, target);
}

/* Adds the --create hint when the --target database does not exist. */
static void hint_missing_database(const struct restore_job *job, stow_error *err)
{
    if (job->options->scratch_local || job->options->create ||
        strstr(err->message, "database \"") == NULL ||
        strstr(err->message, "\" does not exist") == NULL)
        return;
    stow_error_hint(err, "create the database first, or pass --create to have the restore "
                         "create it (under its name only when the restore is complete)");
}

static int connect_target(struct restore_job *job, stow_error *err)
{
    if (pgtools_connect(job->target, &job->conn, err) != 0) {
        hint_missing_database(job, err);
        return -1;
    }
    if (pgtools_server_info(job->conn, &job->target_info, err) != 0)
        return -1;
    check_encodings(job);
    report_set(&job->report, "target",
               json_pack("{s:s, s:s, s:s, s:s, s:b}", "database", job->target_info.database,
                         "host", job->target_info.host, "port", job->target_info.port,
                         "server_version", job->target_info.version, "scratch",
                         job->options->scratch_local));
    return check_target_empty(job, err);
}

/* After a failed parallel restore: names what the target now holds, since
 * without a single transaction nothing was rolled back. */
static void describe_partial_target(struct restore_job *job, stow_error *err)
{
    static const char sql[] =
        "SELECT count(*), string_agg(name, ', ') FILTER (WHERE rank <= 10) FROM ("
        "SELECT format('%I.%I', n.nspname, c.relname) AS name, "
        "row_number() OVER (ORDER BY n.nspname, c.relname) AS rank "
        USER_RELATIONS_SQL ") AS objects";
    const char *database = job->target_info.database;
    PGresult *result = PQexec(job->conn, sql);

    if (PQresultStatus(result) == PGRES_TUPLES_OK) {
        long count = atol(PQgetvalue(result, 0, 0));
        const char *more = count > 10 ? ", ..." : "";

        if (count == 0)
            stow_log_warn("the target database %s contains no tables, views or sequences yet",
                          database);
        else
            stow_log_warn("the target database %s now contains %ld tables, views or sequences "
                          "(%s%s)", database, count, PQgetvalue(result, 0, 1), more);
    }
    PQclear(result);
    stow_error_hint(err, "the target database %s is partly restored, because a restore with "
                         "--jobs cannot run in one transaction: drop and recreate it before "
                         "restoring again (or restore with --jobs 1, which rolls back on failure)",
                    database);
}

/* Returns 1 when a scratch cluster restore must skip ownership: the
 * cluster has only its own superuser, and a backup taken with --no-globals
 * brings no roles, so the first OWNER TO of its dump would fail. */
static int scratch_lacks_roles(const struct restore_job *job)
{
    json_t *archive = json_object_get(job->manifest->document, "archive");

    if (!job->options->scratch_local || job->options->no_owner ||
        !json_is_false(json_object_get(archive, "has_globals")))
        return 0;
    stow_log_info("backup %s contains no roles (taken with --no-globals): restoring into the "
                  "scratch cluster with --no-owner --no-privileges",
                  job->manifest->id);
    return 1;
}

static int restore_stream(struct restore_job *job, stow_error *err)
{
    struct restore_sink sink;
    struct backup_read_stats stats;
    int rc;

    restore_sink_init(&sink);
    sink.conninfo = job->target;
    sink.dbname = job->target_info.database;
    sink.major = job->target_info.major;
    sink.with_globals = job->options->with_globals || job->options->scratch_local;
    sink.clean = job->options->clean;
    sink.no_owner = job->options->no_owner || scratch_lacks_roles(job);
    sink.jobs = job->options->jobs;
    if (job->options->jobs > 1)
        sink.spool = &job->spool;
    sink.load_tables = job->load_tables;

    rc = backup_reader_consume(job->reader, restore_sink_data, &sink, &stats, err);
    if (rc == 0)
        rc = restore_sink_finish(&sink, err);
    if (rc != 0 && sink.spool != NULL && sink.restore_began && !job->options->scratch_local &&
        !job->options->create)
        describe_partial_target(job, err);
    restore_sink_free(&sink);

    /* The stages overlap in one stream; each is reported with the time it
     * spent working, and "restore" with the wall time of the stream. */
    report_add_step(&job->report, "download", stats.fetch_seconds, rc == 0 ? "ok" : "ended");
    report_add_step(&job->report, "decrypt+decompress", stats.decode_seconds,
                    rc == 0 ? "ok" : "ended");
    if (sink.spool != NULL && sink.restore_began)
        report_add_step(&job->report, "pg_restore --jobs", sink.parallel_restore_seconds,
                        rc == 0 ? "ok" : "ended");
    report_set(&job->report, "bytes",
               json_pack("{s:I, s:I}", "stored", (json_int_t)stats.stored_bytes, "archive",
                         (json_int_t)stats.plain_bytes));
    return rc;
}

static int verify_restored(struct restore_job *job, stow_error *err)
{
    json_t *contents = json_object_get(job->manifest->document, "contents");
    json_t *differences = NULL;
    size_t count = 0;
    int rc = dbverify_compare(job->conn, contents, &differences, &count, err);

    if (rc != 0)
        return -1;
    report_set(&job->report, "verification",
               json_pack("{s:b, s:I, s:o}", "passed", count == 0, "difference_count",
                         (json_int_t)count, "differences", differences));
    if (count > 0) {
        dbverify_print_differences(differences);
        return stow_fail(err, STOW_EXIT_VERIFY,
                         "the restored database differs from backup %s in %zu place%s "
                         "(listed above and in the report)",
                         job->manifest->id, count, count == 1 ? "" : "s");
    }
    stow_log_info("verified: the restored database matches backup %s", job->manifest->id);
    return 0;
}

/* Returns why a parallel restore must spool the whole dump, or NULL when it
 * can load the table data as the dump streams. */
static const char *spool_reason(struct restore_job *job)
{
    json_t *contents = json_object_get(job->manifest->document, "contents");
    json_t *objects = json_object_get(json_object_get(contents, "large_objects"), "count");

    if (job->options->clean)
        return "--clean needs pg_restore to drop and create the objects in one run";
    if (!json_is_integer(objects))
        return "the manifest does not list the dump's contents";
    if (json_integer_value(objects) > 0)
        return "the dump contains large objects, which pg_restore restores";
    return NULL;
}

/* Opens the spool file of a parallel restore before anything else, so a
 * directory without room fails before the target is touched. When the
 * table data is loaded as the dump streams, the file contains the dump's
 * header and TOC alone, and the check for room waits until the TOC shows
 * whether the whole dump must be spooled after all. */
static int prepare_spool(struct restore_job *job, stow_error *err)
{
    json_t *archive = json_object_get(job->manifest->document, "archive");
    json_t *dump_bytes = json_object_get(archive, "dump_bytes");
    const char *directory = restore_spool_directory(job->options->spool_directory);
    const char *reason;

    if (job->options->jobs <= 1)
        return 0;
    if (!json_is_integer(dump_bytes) || json_integer_value(dump_bytes) < 0)
        return stow_fail(err, STOW_EXIT_VERIFY,
                         "the manifest of backup %s lacks a valid archive.dump_bytes",
                         job->manifest->id);
    report_set(&job->report, "jobs", json_integer(job->options->jobs));
    reason = spool_reason(job);
    job->load_tables = reason == NULL;
    if (reason == NULL)
        return restore_spool_open_unreserved(&job->spool, directory,
                                             (uint64_t)json_integer_value(dump_bytes), err);
    stow_log_info("restore --jobs spools the whole dump, because %s", reason);
    return restore_spool_open(&job->spool, directory, (uint64_t)json_integer_value(dump_bytes),
                              err);
}

static void finish_scratch(struct restore_job *job)
{
    char dbname_conninfo[1024];

    if (!job->scratch_created)
        return;

    /* An interrupted run cleans up, as its message reports, --keep or not. */
    if (job->options->keep && !stow_interrupted()) {
        scratch_local_release(&job->scratch);
        scratch_local_conninfo(&job->scratch, job->manifest->database, dbname_conninfo,
                               sizeof dbname_conninfo);
        printf("scratch instance kept running in %s\n  connect with: psql \"%s\"\n"
               "  stop with:    %s%s%s%s/pg_ctl -D %s stop && rm -rf %s\n",
               job->scratch.directory, dbname_conninfo,
               job->scratch.run_uid != geteuid() ? "runuser -u " : "",
               job->scratch.run_uid != geteuid() ? job->scratch.run_user : "",
               job->scratch.run_uid != geteuid() ? " -- " : "", job->scratch.bindir, job->scratch.data_directory, job->scratch.directory);
        return;
    }
    scratch_local_remove(&job->scratch);
}

/* Maximum lengths of a locale name and of ICU rules taken from a
 * manifest, in bytes. */
#define SOURCE_LOCALE_MAX 256
#define SOURCE_ICU_RULES_MAX 4096

/* Returns the text of source.key, or NULL when the manifest lacks it or
 * its value cannot be a locale (logged, naming the field). */
static const char *locale_field(const json_t *source, const char *key, size_t max,
                                const char *backup_id)
{
    json_t *value = json_object_get(source, key);
    const char *text = json_string_value(value);
    char problem[64] = "";

    if (value == NULL)
        return NULL;
    if (text == NULL)
        snprintf(problem, sizeof problem, "it is not a string");
    else if (text[0] == '\0')
        snprintf(problem, sizeof problem, "it is empty");
    else if (strlen(text) > max)
        snprintf(problem, sizeof problem, "it is longer than %zu bytes", max);
    else if (stow_has_control_characters(text))
        snprintf(problem, sizeof problem, "it contains control characters");
    if (problem[0] == '\0')
        return text;
    stow_log_warn("ignoring source.%s in the manifest of backup %s: %s", key, backup_id,
                  problem);
    return NULL;
}

/* Leaves out the fields of locale that do not fit together, with a
 * warning: half of the libc pair, a provider other than libc, icu and
 * builtin, a provider without its locale, and a locale or rules without
 * a provider that takes them. */
static void check_locale_fields(struct database_locale *locale, const char *id)
{
    if ((locale->collate == NULL) != (locale->ctype == NULL)) {
        stow_log_warn("the manifest of backup %s has no usable pair of lc_collate and "
                      "lc_ctype: the new database gets the server's default for both", id);
        locale->collate = locale->ctype = NULL;
    }
    if (locale->provider != NULL && strcmp(locale->provider, "libc") != 0 &&
        !new_database_provider_has_locale(locale->provider)) {
        stow_log_warn("ignoring source.locale_provider \"%s\" in the manifest of backup %s: "
                      "it is none of libc, icu and builtin", locale->provider, id);
        locale->provider = NULL;
    }
    if (new_database_provider_has_locale(locale->provider) && locale->locale == NULL) {
        stow_log_warn("the manifest of backup %s has the %s locale provider without a usable "
                      "locale: the new database gets a libc locale", id, locale->provider);
        locale->provider = NULL;
    }
    if (!new_database_provider_has_locale(locale->provider) &&
        (locale->locale != NULL || locale->icu_rules != NULL)) {
        stow_log_warn("ignoring source.%s in the manifest of backup %s: it records no ICU or "
                      "builtin locale provider", locale->locale != NULL ? "locale" : "icu_rules",
                      id);
        locale->locale = locale->icu_rules = NULL;
    }
    if (locale->icu_rules != NULL && strcmp(locale->provider, "icu") != 0) {
        stow_log_warn("ignoring source.icu_rules in the manifest of backup %s: the %s provider "
                      "takes none", id, locale->provider);
        locale->icu_rules = NULL;
    }
}

/* Reads the source database's locale from the manifest into locale and
 * returns 1, or 0 when the manifest records none of its fields (an older
 * build). */
static int read_source_locale(const struct manifest *manifest, struct database_locale *locale)
{
    static const char *const keys[] = {"lc_collate", "lc_ctype", "locale_provider", "locale",
                                       "icu_rules"};
    json_t *source = json_object_get(manifest->document, "source");
    const char *id = manifest->id;
    int recorded = 0;

    *locale = (struct database_locale){
        locale_field(source, "lc_collate", SOURCE_LOCALE_MAX, id),
        locale_field(source, "lc_ctype", SOURCE_LOCALE_MAX, id),
        locale_field(source, "locale_provider", SOURCE_LOCALE_MAX, id),
        locale_field(source, "locale", SOURCE_LOCALE_MAX, id),
        locale_field(source, "icu_rules", SOURCE_ICU_RULES_MAX, id),
    };
    check_locale_fields(locale, id);
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        recorded |= json_object_get(source, keys[i]) != NULL;
    return recorded;
}

/* Creates the temporary database of restore --create, with the source
 * database's locale and locale provider from the manifest, and makes it
 * the target. */
static int create_new_database(struct restore_job *job, stow_error *err)
{
    struct database_locale locale;
    int recorded = read_source_locale(job->manifest, &locale);

    if (!recorded)
        stow_log_info("the manifest of backup %s does not record the database's locale "
                      "(written by an older stowage): the new database gets the server's "
                      "default", job->manifest->id);
    if (new_database_check(&job->new_db, job->options->target_conninfo, err) != 0 ||
        new_database_create(&job->new_db, backup_encoding(job->manifest), &locale,
                            job->manifest->id, err) != 0)
        return -1;
    job->target = (const char *)job->new_db.staging_conninfo.data;
    report_set(&job->report, "new_database",
               json_pack("{s:s, s:s}", "name", job->new_db.name, "temporary_name",
                         job->new_db.staging));
    return 0;
}

/* Gives the database of restore --create its requested name, once nothing
 * is connected to it any more. */
static int publish_new_database(struct restore_job *job, stow_error *err)
{
    json_t *target = json_object_get(job->report.document, "target");

    PQfinish(job->conn);
    job->conn = NULL;
    if (new_database_publish(&job->new_db, err) != 0)
        return -1;
    json_object_set_new(target, "database", json_string(job->new_db.name));
    return 0;
}

/* Starts the next step unless SIGINT or SIGTERM arrived. */
static int begin_step(struct restore_job *job, const char *step, stow_error *err)
{
    if (stow_interrupted())
        return stow_fail_interrupted(err, "the restore");
    report_step_begin(&job->report, step);
    return 0;
}

/* Checks the data object's size (a HEAD on S3) and starts reading it. */
static int open_backup(struct restore_job *job, stow_error *err)
{
    if (begin_step(job, "check-object", err) != 0)
        return -1;
    return backup_reader_start(job->store, job->manifest, job->data_key, &job->reader, err);
}

static int run_steps(struct restore_job *job, stow_error *err)
{
    const struct restore_options *options = job->options;

    if (prepare_spool(job, err) != 0)
        return -1;

    if (begin_step(job, "open-key", err) != 0)
        return -1;
    if (backup_open_data_key(job->manifest, options->secret_key_path, options->passphrase_file,
                             &job->data_key, err) != 0)
        return -1;

    /* A scratch cluster takes half a second or more to create: the first
     * parts download meanwhile. */
    if (options->scratch_local) {
        if (open_backup(job, err) != 0)
            return -1;
        if (begin_step(job, "scratch-create", err) != 0)
            return -1;
        if (prepare_scratch(job, err) != 0)
            return -1;
    }

    if (begin_step(job, "connect", err) != 0)
        return -1;
    if (options->create && create_new_database(job, err) != 0)
        return -1;
    if (connect_target(job, err) != 0)
        return -1;

    if (job->reader == NULL && open_backup(job, err) != 0)
        return -1;
    if (begin_step(job, "restore", err) != 0)
        return -1;
    if (restore_stream(job, err) != 0) {
        if (job->scratch_created)
            scratch_local_hint_full_disk(&job->scratch, err);
        else if (strstr(err->message, "must be member of role") != NULL)
            stow_error_hint(err, "restoring the backup's owners needs a superuser or a member "
                                 "of every owning role: restore with --no-owner to make the "
                                 "restoring role own everything");
        return -1;
    }

    if (options->verify) {
        if (begin_step(job, "verify", err) != 0)
            return -1;
        if (verify_restored(job, err) != 0)
            return -1;
    }

    if (options->create) {
        if (begin_step(job, "rename", err) != 0)
            return -1;
        if (publish_new_database(job, err) != 0)
            return -1;
    }
    report_step_end(&job->report, err);
    return 0;
}

/* Returns 1 when a failed verified restore is a finding about the backup,
 * so that it is recorded as failed. That is a failed check of its data
 * (exit code 3, in any step), or a failure of pg_restore (exit code 1 in
 * the restore step) in a new scratch cluster, where the dump is the likely
 * cause. A broken pg_restore program fails that step the same way,
 * so it counts too. Other failures are the environment's and are not
 * recorded: bad usage, a held lock, an unreachable repository or
 * database, a wrong key, an interruption, a scratch cluster that could not
 * be created, a full disk of the scratch cluster or the spool directory,
 * a scratch server that crashed or was killed, and any failure of
 * pg_restore in a --target database, whose roles and objects are not the
 * backup's. */
static int failure_concerns_backup(const struct restore_job *job, stow_error *err)
{
    const char *step = json_string_value(json_object_get(job->report.document, "failed_step"));

    if (err->exit_code == STOW_EXIT_VERIFY)
        return 1;
    if (err->exit_code != STOW_EXIT_FAILURE || step == NULL || strcmp(step, "restore") != 0 ||
        !job->options->scratch_local)
        return 0;
    if (job->spool.out_of_space || pgtools_reports_server_io_failure(err->message))
        return 0;
    return !scratch_local_server_failed(&job->scratch, err);
}

static void log_not_recorded(const struct restore_job *job, const stow_error *err)
{
    const char *step = json_string_value(json_object_get(job->report.document, "failed_step"));

    if (err->exit_code == STOW_EXIT_INTERRUPTED)
        stow_log_info("the interrupted verification of backup %s is not recorded",
                      job->manifest->id);
    else
        stow_log_info("the failed verification of backup %s is not recorded: it failed %s%s "
                      "with exit code %d, for a reason outside the backup's data",
                      job->manifest->id, step != NULL ? "in the step " : "before its first step",
                      step != NULL ? step : "", err->exit_code);
}

/* Stores the report of a verified restore as the backup's verification
 * record, which `list` shows and retention reads, when it is recordable
 * (passed, or failed because of the backup). */
static void record_verification(struct restore_job *job, int recordable, const stow_error *err)
{
    stow_error store_err = {0};

    if (!recordable) {
        log_not_recorded(job, err);
        return;
    }
    if (report_store(&job->report, job->store, job->manifest, &store_err) != 0)
        stow_log_warn("could not record the verification in the catalog: %s", store_err.message);
}

int restore_run(storage *store, const struct catalog_entry *entry,
                const struct restore_options *options, stow_error *err)
{
    return restore_run_report(store, entry, options, NULL, err);
}

int restore_run_report(storage *store, const struct catalog_entry *entry,
                       const struct restore_options *options, json_t **report, stow_error *err)
{
    struct restore_job job;
    stow_error store_err = {0};
    int recordable;
    int rc;

    memset(&job, 0, sizeof job);
    job.spool.fd = -1;
    job.store = store;
    job.entry = entry;
    job.manifest = &entry->manifest;
    job.options = options;
    job.target = options->target_conninfo;
    stow_log_set_context("backup_id", job.manifest->id);
    report_begin(&job.report, options->verify ? "verified restore" : "restore", job.manifest);

    rc = run_steps(&job, err);
    report_step_end(&job.report, err);
    backup_reader_free(job.reader);
    /* Judged before scratch-remove, which takes the server's log away. */
    recordable = options->verify && (rc == 0 || failure_concerns_backup(&job, err));

    PQfinish(job.conn);
    job.conn = NULL;
    if (options->create)
        new_database_finish(&job.new_db);
    if (job.scratch_created) {
        report_step_begin(&job.report, "scratch-remove");
        finish_scratch(&job);
        report_step_end(&job.report, NULL);
    }
    report_finish(&job.report, err);
    report_print_text(&job.report);
    if (options->report_path != NULL && report_write_file(&job.report, options->report_path, &store_err) != 0)
        stow_log_error(&store_err);
    if (options->verify)
        record_verification(&job, recordable, err);

    if (report != NULL)
        *report = json_incref(job.report.document);
    report_free(&job.report);
    restore_spool_close(&job.spool);
    backup_data_key_free(job.data_key);
    stow_log_set_context("backup_id", NULL);
    return rc;
}
