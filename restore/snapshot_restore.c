/* Verified restores from RDS: a DB snapshot or a point in time restored
 * into a scratch instance, checked over libpq against the logical backups
 * in the repository, reported with step times, and removed.
 *
 * Every query runs asynchronously and polls the interrupt flag, so SIGINT
 * or SIGTERM cancels a slow verification query and the flow still reaches
 * the step that deletes the scratch instance. */
#include "scratch_rds.h"

#include <errno.h>
#include <libpq-fe.h>
#include <poll.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aws/credentials.h"
#include "catalog.h"
#include "common/interrupt.h"
#include "common/log.h"
#include "pg/pgtools.h"
#include "report.h"

#define CONNINFO_MAX 2048
#define QUERY_POLL_MS 200
#define DEFAULT_DATABASE "postgres"

struct rds_restore_job {
    rds_client *client;
    storage *store;
    const struct snapshot_restore_options *options;
    struct rds_snapshot snapshot;        /* the snapshot restored, if any */
    char source_instance[RDS_ID_MAX];    /* instance the data comes from */
    time_t target_time;                  /* snapshot time or point in time */
    struct scratch_rds scratch;
    struct catalog catalog;              /* logical backups to compare with */
    char host[RDS_HOST_MAX];
    char port[16];
    char user[RDS_FIELD_MAX];            /* "" lets libpq choose (PGUSER) */
    char **database_names;               /* databases to verify */
    size_t database_count;
    json_t *databases;                   /* report member, borrowed */
    json_t *problems;                    /* report member, borrowed */
    struct report report;
};

/* --- queries that SIGINT and SIGTERM can cancel ----------------------------- */

static void cancel_query(PGconn *conn)
{
    PGcancel *cancel = PQgetCancel(conn);
    char message[256];
    PGresult *result;

    if (cancel != NULL) {
        PQcancel(cancel, message, sizeof message);
        PQfreeCancel(cancel);
    }
    while ((result = PQgetResult(conn)) != NULL)
        PQclear(result);
}

/* Waits until the query sent on conn has its results. Returns -1 after
 * cancelling it when SIGINT or SIGTERM arrives. */
static int await_result(PGconn *conn, const char *step, stow_error *err)
{
    while (PQisBusy(conn)) {
        struct pollfd descriptor = {PQsocket(conn), POLLIN, 0};

        if (stow_interrupted()) {
            cancel_query(conn);
            return stow_fail_interrupted(err, step);
        }
        if (poll(&descriptor, 1, QUERY_POLL_MS) < 0 && errno != EINTR)
            return stow_fail_errno(err, STOW_EXIT_DATABASE, errno, "waiting for", "the database");
        if (!PQconsumeInput(conn))
            return pgtools_fail(err, STOW_EXIT_DATABASE, conn, "the verification query failed");
    }
    return 0;
}

/* Runs sql with text parameters. Returns 0 with *out set (any status; the
 * caller checks it), or -1 when the query could not run or was cancelled. */
static int run_query(PGconn *conn, const char *sql, int param_count, const char *const *params,
                     const char *step, PGresult **out, stow_error *err)
{
    PGresult *result;

    *out = NULL;
    if (!PQsendQueryParams(conn, sql, param_count, NULL, params, NULL, NULL, 0))
        return pgtools_fail(err, STOW_EXIT_DATABASE, conn, "sending a verification query failed");
    if (await_result(conn, step, err) != 0)
        return -1;
    while ((result = PQgetResult(conn)) != NULL) {
        if (*out == NULL)
            *out = result;
        else
            PQclear(result);
    }
    if (*out == NULL)
        return pgtools_fail(err, STOW_EXIT_DATABASE, conn, "a verification query returned nothing");
    return 0;
}

/* Runs sql and requires it to succeed. */
static int query_ok(PGconn *conn, const char *sql, int param_count, const char *const *params,
                    const char *step, PGresult **out, stow_error *err)
{
    ExecStatusType status;

    if (run_query(conn, sql, param_count, params, step, out, err) != 0)
        return -1;
    status = PQresultStatus(*out);
    if (status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK)
        return 0;
    stow_fail(err, STOW_EXIT_FAILURE, "verification query failed in %s: %s", step,
              PQresultErrorMessage(*out));
    PQclear(*out);
    *out = NULL;
    return -1;
}

static int exec_ok(PGconn *conn, const char *sql, const char *step, stow_error *err)
{
    PGresult *result = NULL;
    int rc = query_ok(conn, sql, 0, NULL, step, &result, err);

    PQclear(result);
    return rc;
}

/* --- problems and report members ---------------------------------------------- */

static void add_problem(struct rds_restore_job *job, const char *fmt, ...) STOW_PRINTF(2, 3);

static void add_problem(struct rds_restore_job *job, const char *fmt, ...)
{
    char text[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    json_array_append_new(job->problems, json_string(text));
    stow_log_warn("verification: %s", text);
}

/* Begins the report. report_begin describes a backup; its backup fields are
 * replaced with the snapshot's. */
static void begin_report(struct rds_restore_job *job)
{
    const struct snapshot_restore_options *options = job->options;
    struct manifest none;
    const char *kind;

    memset(&none, 0, sizeof none);
    none.id = "";
    none.name = "";
    none.database = "";
    none.document = json_object();
    if (options->snapshot_id != NULL)
        kind = options->verify ? "verified snapshot restore" : "snapshot restore";
    else
        kind = options->verify ? "verified point-in-time restore" : "point-in-time restore";
    report_begin(&job->report, kind, &none);
    json_decref(none.document);
    json_object_del(job->report.document, "backup_id");
    json_object_del(job->report.document, "name");
    json_object_del(job->report.document, "database");
    json_object_del(job->report.document, "backup_started_at");

    report_set(&job->report, "snapshot_id", options->snapshot_id ? json_string(options->snapshot_id)
                                                                 : json_null());
    report_set(&job->report, "source_instance", options->source_instance
                                                    ? json_string(options->source_instance)
                                                    : json_null());
    report_set(&job->report, "region", json_string(rds_client_region(job->client)));
    job->databases = json_array();
    job->problems = json_array();
    report_set(&job->report, "databases", job->databases);
    report_set(&job->report, "problems", job->problems);
}

/* --- steps: the source ---------------------------------------------------------- */

static int describe_snapshot_source(struct rds_restore_job *job, stow_error *err)
{
    const char *id = job->options->snapshot_id;
    int rc = rds_describe_snapshot(job->client, 0, id, &job->snapshot, err);

    if (rc == RDS_NOT_FOUND) {
        stow_fail(err, STOW_EXIT_USAGE, "RDS snapshot %s not found in %s", id,
                  rds_client_region(job->client));
        stow_error_hint(err, "check the snapshot id and --region; stowage snapshot list shows "
                             "the snapshots");
        return -1;
    }
    if (rc != 0)
        return -1;
    if (strcmp(job->snapshot.status, "available") != 0)
        return stow_fail(err, STOW_EXIT_FAILURE, "RDS snapshot %s is \"%s\", not available", id,
                         job->snapshot.status);
    snprintf(job->source_instance, sizeof job->source_instance, "%s", job->snapshot.source_id);
    job->target_time = job->snapshot.created;
    report_set(&job->report, "snapshot",
               json_pack("{s:s, s:s, s:o, s:s, s:b}", "arn", job->snapshot.arn, "instance",
                         job->snapshot.source_id, "created_at",
                         manifest_time_json(job->snapshot.created), "engine_version",
                         job->snapshot.engine_version, "encrypted", job->snapshot.encrypted));
    return 0;
}

static int describe_instance_source(struct rds_restore_job *job, stow_error *err)
{
    const struct snapshot_restore_options *options = job->options;
    struct rds_instance source;
    char latest[32];
    int rc = rds_describe_instance(job->client, options->source_instance, &source, err);

    if (rc == RDS_NOT_FOUND) {
        stow_fail(err, STOW_EXIT_USAGE, "RDS instance %s not found in %s", options->source_instance,
                  rds_client_region(job->client));
        stow_error_hint(err, "check the instance id and --region");
        return -1;
    }
    if (rc != 0)
        return -1;
    snprintf(job->source_instance, sizeof job->source_instance, "%s", source.id);
    job->target_time = options->point_in_time != 0 ? options->point_in_time
                                                   : (source.latest_restorable != 0
                                                          ? source.latest_restorable
                                                          : time(NULL));
    manifest_format_time(source.latest_restorable, latest);
    rc = 0;
    if (options->point_in_time != 0 && source.latest_restorable != 0 &&
        options->point_in_time > source.latest_restorable) {
        stow_fail(err, STOW_EXIT_USAGE, "point in time is after the latest restorable time %s "
                  "of instance %s", latest, source.id);
        stow_error_hint(err, "choose an earlier --at, or --at latest");
        rc = -1;
    }
    report_set(&job->report, "point_in_time", manifest_time_json(job->target_time));
    rds_instance_free(&source);
    return rc;
}

/* Loads the logical backups that verification compares with. */
static int load_catalog(struct rds_restore_job *job, stow_error *err)
{
    if (job->store == NULL || !job->options->verify)
        return 0;
    return catalog_load(job->store, job->options->catalog_name, &job->catalog, err);
}

/* --- steps: the scratch instance ---------------------------------------------------- */

static int create_scratch(struct rds_restore_job *job, stow_error *err)
{
    const struct snapshot_restore_options *options = job->options;
    struct scratch_rds_options scratch = options->scratch;
    int rc;

    /* A token is accepted only by an instance with IAM authentication on. */
    scratch.iam_auth = scratch.iam_auth || options->db_iam_auth;
    if (options->snapshot_id != NULL)
        rc = scratch_rds_restore_snapshot(job->client, options->snapshot_id, &scratch,
                                          &job->scratch, err);
    else
        rc = scratch_rds_restore_point_in_time(job->client, options->source_instance,
                                               options->point_in_time, &scratch,
                                               &job->scratch, err);
    report_set(&job->report, "scratch_instance",
               json_pack("{s:s, s:o, s:s}", "id", job->scratch.id, "expires_at",
                         manifest_time_json(job->scratch.expires_at), "status", "requested"));
    if (rc != 0)
        return -1;
    if (stow_interrupted())
        return stow_fail_interrupted(err, "the creation of the scratch instance");
    return 0;
}

/* Splits "HOST:PORT", "[V6]:PORT" or "HOST" into job->host and job->port. */
static int parse_connect_host(struct rds_restore_job *job, const char *text, stow_error *err)
{
    const char *colon = strrchr(text, ':');
    const char *host_end = colon;

    if (text[0] == '[') {
        const char *close = strchr(text, ']');

        if (close == NULL)
            return stow_fail(err, STOW_EXIT_USAGE, "invalid --connect-host \"%s\"", text);
        snprintf(job->host, sizeof job->host, "%.*s", (int)(close - text - 1), text + 1);
        colon = close[1] == ':' ? close + 1 : NULL;
    } else if (colon != NULL && strchr(text, ':') != colon) {
        colon = NULL; /* a bare IPv6 address */
        snprintf(job->host, sizeof job->host, "%s", text);
    } else {
        snprintf(job->host, sizeof job->host, "%.*s",
                 (int)(host_end != NULL ? host_end - text : (long)strlen(text)), text);
    }
    if (colon != NULL) {
        long port = strtol(colon + 1, NULL, 10);

        if (port < 1 || port > 65535)
            return stow_fail(err, STOW_EXIT_USAGE, "invalid port in --connect-host \"%s\"", text);
        snprintf(job->port, sizeof job->port, "%ld", port);
    }
    if (job->host[0] == '\0')
        return stow_fail(err, STOW_EXIT_USAGE, "invalid --connect-host \"%s\"", text);
    return 0;
}

/* Chooses where and as whom verification connects. */
static int choose_connection(struct rds_restore_job *job, stow_error *err)
{
    const struct rds_instance *instance = &job->scratch.instance;
    const char *pguser = getenv("PGUSER");

    if (job->options->connect_host != NULL) {
        if (parse_connect_host(job, job->options->connect_host, err) != 0)
            return -1;
    } else if (instance->endpoint_address[0] != '\0') {
        snprintf(job->host, sizeof job->host, "%s", instance->endpoint_address);
    } else {
        return stow_fail(err, STOW_EXIT_FAILURE, "scratch instance %s reports no endpoint",
                         job->scratch.id);
    }
    if (job->port[0] == '\0')
        snprintf(job->port, sizeof job->port, "%d",
                 instance->endpoint_port > 0 ? instance->endpoint_port : 5432);
    if (job->options->db_user != NULL)
        snprintf(job->user, sizeof job->user, "%s", job->options->db_user);
    else if (pguser == NULL || pguser[0] == '\0')
        snprintf(job->user, sizeof job->user, "%s", instance->master_username);
    return 0;
}

static int append_conninfo_value(stow_buf *out, const char *key, const char *value,
                                 stow_error *err)
{
    if (stow_buf_printf(out, err, "%s%s='", out->len > 0 ? " " : "", key) != 0)
        return -1;
    for (const char *p = value; *p != '\0'; p++) {
        if ((*p == '\'' || *p == '\\') && stow_buf_append_str(out, "\\", err) != 0)
            return -1;
        if (stow_buf_append(out, p, 1, err) != 0)
            return -1;
    }
    return stow_buf_append_str(out, "'", err);
}

/* Returns 1 when PGSSLMODE already requires TLS (require or stricter). */
static int environment_requires_tls(void)
{
    const char *mode = getenv("PGSSLMODE");

    return mode != NULL && (strcmp(mode, "require") == 0 || strcmp(mode, "verify-ca") == 0 ||
                            strcmp(mode, "verify-full") == 0);
}

/* Makes the connection with conninfo sign in with an RDS IAM token. RDS
 * takes tokens only over TLS, so sslmode=require is added unless the host
 * is loopback (a tunnel), where pgtools accepts any mode, or PGSSLMODE
 * already requires TLS (verify-full must not be weakened). */
static int use_iam_token(const struct rds_restore_job *job, stow_buf *conninfo, stow_error *err)
{
    struct aws_credentials_provider *provider = NULL;

    if (!pgtools_host_is_loopback(job->host) && !environment_requires_tls() &&
        stow_buf_append_str(conninfo, " sslmode=require", err) != 0)
        return -1;
    if (aws_credentials_provider_new_default(&provider, err) != 0)
        return -1;
    return pgtools_iam_auth_enable((const char *)conninfo->data, provider, err);
}

/* Connects to dbname on the scratch instance. The password is an RDS IAM
 * token with db_iam_auth, else it comes from libpq's usual sources
 * (PGPASSWORD, .pgpass). */
static int connect_database(struct rds_restore_job *job, const char *dbname, PGconn **conn,
                            stow_error *err)
{
    stow_buf conninfo;
    int rc;

    stow_buf_init(&conninfo, CONNINFO_MAX);
    rc = append_conninfo_value(&conninfo, "host", job->host, err);
    if (rc == 0)
        rc = append_conninfo_value(&conninfo, "port", job->port, err);
    if (rc == 0)
        rc = append_conninfo_value(&conninfo, "dbname", dbname, err);
    if (rc == 0 && job->user[0] != '\0')
        rc = append_conninfo_value(&conninfo, "user", job->user, err);
    if (rc == 0)
        rc = stow_buf_append_str(&conninfo, " connect_timeout=10 application_name=stowage-verify",
                                 err);
    if (rc == 0 && job->options->db_iam_auth)
        rc = use_iam_token(job, &conninfo, err);
    if (rc == 0)
        rc = pgtools_connect((const char *)conninfo.data, conn, err);
    if (job->options->db_iam_auth)
        pgtools_iam_auth_disable();
    if (rc != 0) {
        stow_error_prefix(err, "connecting to database %s of scratch instance %s at %s:%s",
                          dbname, job->scratch.id, job->host, job->port);
        if (job->options->db_iam_auth)
            stow_error_hint(err, "check --connect-host (a tunnel or bastion when this host "
                                 "cannot reach the VPC), and that --db-user has the rds_iam "
                                 "role and the credentials may call rds-db:connect");
        else
            stow_error_hint(err, "check --connect-host (a tunnel or bastion when this host "
                                 "cannot reach the VPC), --db-user, and PGPASSWORD or .pgpass");
    }
    stow_buf_free(&conninfo);
    return rc;
}

/* --- steps: verification ----------------------------------------------------------- */

static int add_name(struct rds_restore_job *job, const char *name, stow_error *err)
{
    char **grown = realloc(job->database_names, (job->database_count + 1) * sizeof *grown);

    if (grown == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory listing databases");
    job->database_names = grown;
    grown[job->database_count] = strdup(name);
    if (grown[job->database_count] == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory listing databases");
    job->database_count++;
    return 0;
}

static int result_has(const PGresult *result, const char *name)
{
    for (int row = 0; row < PQntuples(result); row++) {
        if (strcmp(PQgetvalue(result, row, 0), name) == 0)
            return 1;
    }
    return 0;
}

/* Connects to the database "postgres", else to the first requested database
 * that accepts the connection. The error is the first attempt's. */
static int connect_any(struct rds_restore_job *job, PGconn **conn, stow_error *err)
{
    const struct snapshot_restore_options *options = job->options;
    stow_error later = {0};

    if (connect_database(job, DEFAULT_DATABASE, conn, err) == 0)
        return 0;
    for (size_t i = 0; i < options->database_count; i++) {
        if (strcmp(options->databases[i], DEFAULT_DATABASE) == 0)
            continue;
        stow_error_clear(&later);
        if (connect_database(job, options->databases[i], conn, &later) == 0) {
            stow_error_clear(err);
            return 0;
        }
    }
    return -1;
}

/* Checks that the server responds and lists its databases. Every requested
 * database must be among them. */
static int check_server(struct rds_restore_job *job, stow_error *err)
{
    static const char sql[] =
        "SELECT datname, version() FROM pg_database WHERE datallowconn AND NOT datistemplate "
        "AND datname <> 'rdsadmin' ORDER BY 1";
    const struct snapshot_restore_options *options = job->options;
    PGconn *conn = NULL;
    PGresult *result = NULL;
    json_t *found = json_array();
    int rc;

    report_set(&job->report, "databases_found", found);
    rc = connect_any(job, &conn, err);
    if (rc == 0)
        rc = query_ok(conn, sql, 0, NULL, "connect", &result, err);
    for (int row = 0; rc == 0 && row < PQntuples(result); row++)
        json_array_append_new(found, json_string(PQgetvalue(result, row, 0)));
    if (rc == 0 && PQntuples(result) > 0)
        report_set(&job->report, "server_version", json_string(PQgetvalue(result, 0, 1)));

    for (size_t i = 0; rc == 0 && i < options->database_count; i++) {
        if (result_has(result, options->databases[i]))
            rc = add_name(job, options->databases[i], err);
        else
            add_problem(job, "database %s is missing", options->databases[i]);
    }
    for (int row = 0; rc == 0 && options->database_count == 0 && row < PQntuples(result); row++)
        rc = add_name(job, PQgetvalue(result, row, 0), err);
    if (rc == 0)
        stow_log_info("scratch instance %s responds at %s:%s with %d databases", job->scratch.id,
                      job->host, job->port, PQntuples(result));
    PQclear(result);
    PQfinish(conn);
    return rc;
}

/* Finds the logical backup of dbname taken closest to the target time,
 * within the match window. */
static const struct catalog_entry *match_backup(const struct rds_restore_job *job,
                                                const char *dbname)
{
    int64_t window = job->options->match_window_seconds > 0 ? job->options->match_window_seconds
                                                            : SCRATCH_RDS_DEFAULT_MATCH_WINDOW;
    const struct catalog_entry *best = NULL;
    int64_t best_gap = 0;

    for (size_t i = 0; i < job->catalog.count; i++) {
        const struct manifest *m = &job->catalog.entries[i].manifest;
        int64_t gap = (int64_t)m->started_at - (int64_t)job->target_time;

        if (gap < 0)
            gap = -gap;
        if (strcmp(m->database, dbname) != 0 || gap > window)
            continue;
        if (best == NULL || gap < best_gap) {
            best = &job->catalog.entries[i];
            best_gap = gap;
        }
    }
    return best;
}

/* Returns 1 when a row exists for the query with params, 0 when not, -1 on error. */
static int exists(PGconn *conn, const char *sql, int param_count, const char *const *params,
                  stow_error *err)
{
    PGresult *result = NULL;
    int found;

    if (query_ok(conn, sql, param_count, params, "verify", &result, err) != 0)
        return -1;
    found = PQntuples(result) > 0;
    PQclear(result);
    return found;
}

static int count_rows(PGconn *conn, const char *schema, const char *name, long long *rows,
                      stow_error *err)
{
    char *quoted_schema = PQescapeIdentifier(conn, schema, strlen(schema));
    char *quoted_name = PQescapeIdentifier(conn, name, strlen(name));
    PGresult *result = NULL;
    stow_buf sql;
    int rc = -1;

    stow_buf_init(&sql, 4096);
    if (quoted_schema == NULL || quoted_name == NULL)
        pgtools_fail(err, STOW_EXIT_FAILURE, conn, "quoting a table name failed");
    else if (stow_buf_printf(&sql, err, "SELECT count(*) FROM ONLY %s.%s", quoted_schema,
                             quoted_name) == 0 &&
             query_ok(conn, (const char *)sql.data, 0, NULL, "verify", &result, err) == 0) {
        *rows = atoll(PQgetvalue(result, 0, 0));
        rc = 0;
    }
    PQclear(result);
    PQfreemem(quoted_schema);
    PQfreemem(quoted_name);
    stow_buf_free(&sql);
    return rc;
}

static int check_schemas(struct rds_restore_job *job, PGconn *conn, const char *dbname,
                         const json_t *schemas, json_t *missing, stow_error *err)
{
    static const char sql[] = "SELECT 1 FROM pg_namespace WHERE nspname = $1";
    size_t index;
    json_t *schema;

    json_array_foreach(schemas, index, schema) {
        const char *params[1] = {json_string_value(schema)};
        int found = params[0] != NULL ? exists(conn, sql, 1, params, err) : 1;

        if (found < 0)
            return -1;
        if (!found) {
            json_array_append_new(missing, json_string(params[0]));
            add_problem(job, "schema %s is missing in database %s", params[0], dbname);
        }
    }
    return 0;
}

/* Compares one table of the backup with the database. */
static int check_table(struct rds_restore_job *job, PGconn *conn, const char *dbname,
                       const json_t *table, json_t *entry, stow_error *err)
{
    static const char sql[] =
        "SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')";
    const char *params[2] = {json_string_value(json_object_get(table, "schema")),
                             json_string_value(json_object_get(table, "name"))};
    json_t *expected_rows = json_object_get(table, "rows");
    long long rows = 0;
    int found;

    if (params[0] == NULL || params[1] == NULL)
        return 0;
    found = exists(conn, sql, 2, params, err);
    if (found < 0)
        return -1;
    if (!found) {
        json_array_append_new(json_object_get(entry, "tables_missing"),
                              json_sprintf("%s.%s", params[0], params[1]));
        add_problem(job, "table %s.%s is missing in database %s", params[0], params[1], dbname);
        return 0;
    }
    json_object_set_new(entry, "tables_present",
                        json_integer(json_integer_value(json_object_get(entry, "tables_present")) + 1));
    if (!json_is_integer(expected_rows))
        return 0;
    if (count_rows(conn, params[0], params[1], &rows, err) != 0)
        return -1;
    if (rows == json_integer_value(expected_rows)) {
        json_object_set_new(entry, "row_counts_equal",
                            json_integer(json_integer_value(json_object_get(entry, "row_counts_equal")) + 1));
    } else {
        json_array_append_new(json_object_get(entry, "row_count_differences"),
                              json_pack("{s:s++, s:I, s:I}", "table", params[0], ".", params[1],
                                        "backup_rows", json_integer_value(expected_rows),
                                        "found_rows", (json_int_t)rows));
    }
    json_object_set_new(entry, "row_counts_compared",
                        json_integer(json_integer_value(json_object_get(entry, "row_counts_compared")) + 1));
    return 0;
}

/* Compares a database with the contents of a logical backup's manifest. */
static int compare_with_backup(struct rds_restore_job *job, PGconn *conn, const char *dbname,
                               const struct catalog_entry *backup, json_t *entry, stow_error *err)
{
    const json_t *contents = json_object_get(backup->manifest.document, "contents");
    json_t *tables = json_object_get(contents, "tables");
    json_t *table;
    size_t index;
    char started[32];
    int64_t gap = (int64_t)backup->manifest.started_at - (int64_t)job->target_time;

    manifest_format_time(backup->manifest.started_at, started);
    json_object_set_new(entry, "backup",
                        json_pack("{s:s, s:s, s:s, s:I, s:s}", "id", backup->manifest.id, "name",
                                  backup->manifest.name, "started_at", started, "gap_seconds",
                                  (json_int_t)gap, "match", "approximate"));
    json_object_set_new(entry, "schemas_missing", json_array());
    json_object_set_new(entry, "tables_expected", json_integer((json_int_t)json_array_size(tables)));
    json_object_set_new(entry, "tables_present", json_integer(0));
    json_object_set_new(entry, "tables_missing", json_array());
    json_object_set_new(entry, "row_counts_compared", json_integer(0));
    json_object_set_new(entry, "row_counts_equal", json_integer(0));
    json_object_set_new(entry, "row_count_differences", json_array());

    if (check_schemas(job, conn, dbname, json_object_get(contents, "schemas"),
                      json_object_get(entry, "schemas_missing"), err) != 0)
        return -1;
    json_array_foreach(tables, index, table) {
        if (check_table(job, conn, dbname, table, entry, err) != 0)
            return -1;
    }
    stow_log_info("database %s: %lld of %zu tables of backup %s present, row counts equal in "
                  "%lld of %lld (backup taken %lld s %s the restored state)", dbname,
                  json_integer_value(json_object_get(entry, "tables_present")),
                  json_array_size(tables), backup->manifest.id,
                  json_integer_value(json_object_get(entry, "row_counts_equal")),
                  json_integer_value(json_object_get(entry, "row_counts_compared")),
                  (long long)(gap < 0 ? -gap : gap), gap < 0 ? "before" : "after");
    return 0;
}

/* Counts the user tables of a database that no backup describes. */
static int count_tables(PGconn *conn, json_t *entry, stow_error *err)
{
    static const char sql[] =
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', "
        "'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%'";
    PGresult *result = NULL;

    if (query_ok(conn, sql, 0, NULL, "verify", &result, err) != 0)
        return -1;
    json_object_set_new(entry, "backup", json_null());
    json_object_set_new(entry, "tables_present", json_integer(atoll(PQgetvalue(result, 0, 0))));
    PQclear(result);
    return 0;
}

static int verify_database(struct rds_restore_job *job, const char *dbname, stow_error *err)
{
    const struct catalog_entry *backup = match_backup(job, dbname);
    json_t *entry = json_pack("{s:s}", "name", dbname);
    PGconn *conn = NULL;
    int rc;

    json_array_append_new(job->databases, entry);
    rc = connect_database(job, dbname, &conn, err);
    /* One snapshot of the data for every check. */
    if (rc == 0)
        rc = exec_ok(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", "verify", err);
    if (rc == 0 && backup != NULL)
        rc = compare_with_backup(job, conn, dbname, backup, entry, err);
    if (rc == 0 && backup == NULL) {
        stow_log_info("database %s: no logical backup in the repository within the match "
                      "window; checking that it answers only", dbname);
        rc = count_tables(conn, entry, err);
    }
    if (rc == 0)
        rc = exec_ok(conn, "COMMIT", "verify", err);
    PQfinish(conn);
    return rc;
}

static int verify_databases(struct rds_restore_job *job, stow_error *err)
{
    for (size_t i = 0; i < job->database_count; i++) {
        if (verify_database(job, job->database_names[i], err) != 0)
            return -1;
    }
    return 0;
}

/* --- steps: amcheck ---------------------------------------------------------------- */

static int check_indexes(struct rds_restore_job *job, PGconn *conn, const char *dbname,
                         json_t *amcheck, stow_error *err)
{
    static const char list_sql[] =
        "SELECT c.oid::text, format('%I.%I', n.nspname, c.relname) FROM pg_index i "
        "JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
        "JOIN pg_am a ON a.oid = c.relam WHERE a.amname = 'btree' AND i.indisvalid "
        "AND i.indisready AND c.relpersistence <> 't' ORDER BY 2";
    PGresult *indexes = NULL;
    json_t *failures = json_object_get(amcheck, "failures");
    int rc = query_ok(conn, list_sql, 0, NULL, "amcheck", &indexes, err);

    for (int row = 0; rc == 0 && row < PQntuples(indexes); row++) {
        const char *params[1] = {PQgetvalue(indexes, row, 0)};
        const char *name = PQgetvalue(indexes, row, 1);
        PGresult *result = NULL;

        rc = run_query(conn, "SELECT bt_index_check($1::oid::regclass)", 1, params, "amcheck",
                       &result, err);
        if (rc == 0 && PQresultStatus(result) != PGRES_TUPLES_OK) {
            json_array_append_new(failures, json_pack("{s:s, s:s}", "index", name, "error",
                                                      PQresultErrorMessage(result)));
            add_problem(job, "amcheck: index %s in database %s: %s", name, dbname,
                        PQresultErrorField(result, PG_DIAG_MESSAGE_PRIMARY)
                            ? PQresultErrorField(result, PG_DIAG_MESSAGE_PRIMARY)
                            : "check failed");
        }
        PQclear(result);
    }
    if (rc == 0)
        json_object_set_new(amcheck, "indexes", json_integer(PQntuples(indexes)));
    PQclear(indexes);
    return rc;
}

static int amcheck_database(struct rds_restore_job *job, const char *dbname, json_t *entry,
                            stow_error *err)
{
    json_t *amcheck = json_pack("{s:i, s:[]}", "indexes", 0, "failures");
    PGconn *conn = NULL;
    PGresult *result = NULL;
    int rc;

    json_object_set_new(entry, "amcheck", amcheck);
    rc = connect_database(job, dbname, &conn, err);
    if (rc == 0)
        rc = run_query(conn, "CREATE EXTENSION IF NOT EXISTS amcheck", 0, NULL, "amcheck",
                       &result, err);
    if (rc == 0 && PQresultStatus(result) != PGRES_COMMAND_OK) {
        add_problem(job, "amcheck is not available in database %s: %s", dbname,
                    PQresultErrorField(result, PG_DIAG_MESSAGE_PRIMARY)
                        ? PQresultErrorField(result, PG_DIAG_MESSAGE_PRIMARY)
                        : "CREATE EXTENSION failed");
        json_object_set_new(amcheck, "error", json_string(PQresultErrorMessage(result)));
    } else if (rc == 0) {
        rc = check_indexes(job, conn, dbname, amcheck, err);
    }
    if (rc == 0)
        stow_log_info("amcheck: database %s: %lld btree indexes checked, %zu failed", dbname,
                      json_integer_value(json_object_get(amcheck, "indexes")),
                      json_array_size(json_object_get(amcheck, "failures")));
    PQclear(result);
    PQfinish(conn);
    return rc;
}

static int amcheck_databases(struct rds_restore_job *job, stow_error *err)
{
    for (size_t i = 0; i < job->database_count; i++) {
        json_t *entry = json_array_get(job->databases, i);

        if (entry == NULL) {
            entry = json_pack("{s:s}", "name", job->database_names[i]);
            json_array_append_new(job->databases, entry);
        }
        if (amcheck_database(job, job->database_names[i], entry, err) != 0)
            return -1;
    }
    return 0;
}

/* --- the flow ---------------------------------------------------------------------- */

static int run_steps(struct rds_restore_job *job, stow_error *err)
{
    const struct snapshot_restore_options *options = job->options;

    report_step_begin(&job->report, "describe-source");
    if ((options->snapshot_id != NULL ? describe_snapshot_source(job, err)
                                      : describe_instance_source(job, err)) != 0 ||
        load_catalog(job, err) != 0)
        return -1;

    report_step_begin(&job->report, "scratch-create");
    if (create_scratch(job, err) != 0)
        return -1;

    report_step_begin(&job->report, "scratch-wait");
    if (scratch_rds_wait(job->client, &job->scratch, &options->scratch, err) != 0)
        return -1;

    report_step_begin(&job->report, "connect");
    if (choose_connection(job, err) != 0 || check_server(job, err) != 0)
        return -1;

    if (options->verify) {
        report_step_begin(&job->report, "verify");
        if (verify_databases(job, err) != 0)
            return -1;
    }

    if (options->amcheck) {
        report_step_begin(&job->report, "amcheck");
        if (amcheck_databases(job, err) != 0)
            return -1;
    }
    report_step_end(&job->report, err);

    if (json_array_size(job->problems) > 0)
        return stow_fail(err, STOW_EXIT_VERIFY, "verification of scratch instance %s found %zu "
                         "problems, the first: %s", job->scratch.id,
                         json_array_size(job->problems),
                         json_string_value(json_array_get(job->problems, 0)));
    return 0;
}

/* Deletes the scratch instance, or prints how to delete it when it is kept. */
static void finish_scratch(struct rds_restore_job *job, stow_error *err)
{
    json_t *scratch = json_object_get(job->report.document, "scratch_instance");
    stow_error removal = {0};
    char expires[32];

    if (!job->scratch.requested)
        return;
    if (job->options->keep) {
        manifest_format_time(job->scratch.expires_at, expires);
        json_object_set_new(scratch, "status", json_string("kept"));
        printf("scratch instance %s kept running (it expires at %s)\n"
               "  delete it with: stowage snapshot delete-scratch %s --region %s\n",
               job->scratch.id, expires, job->scratch.id, rds_client_region(job->client));
        return;
    }
    report_step_begin(&job->report, "scratch-delete");
    if (scratch_rds_remove(job->client, &job->scratch, &removal) != 0) {
        json_object_set_new(scratch, "status", json_string("delete-failed"));
        stow_error_hint(&removal, "delete it with stowage snapshot delete-scratch %s, or let "
                                  "stowage snapshot gc-scratch remove it after it expires",
                        job->scratch.id);
        if (stow_error_is_set(err))
            stow_log_error(&removal);
        else
            *err = removal;
        report_step_end(&job->report, &removal);
        return;
    }
    json_object_set_new(scratch, "status", json_string("deleted"));
    report_step_end(&job->report, NULL);
}

static void print_report(const struct rds_restore_job *job)
{
    json_t *doc = job->report.document;
    json_t *item;
    size_t index;

    printf("%s of %s %s: %s\n", json_string_value(json_object_get(doc, "kind")),
           job->options->snapshot_id ? "snapshot" : "instance",
           job->options->snapshot_id ? job->options->snapshot_id : job->options->source_instance,
           json_string_value(json_object_get(doc, "result")));
    json_array_foreach(json_object_get(doc, "steps"), index, item) {
        printf("  %-16s %9.2f s  %s\n", json_string_value(json_object_get(item, "step")),
               json_real_value(json_object_get(item, "seconds")),
               json_string_value(json_object_get(item, "status")));
    }
    printf("  %-16s %9.2f s\n", "total", json_real_value(json_object_get(doc, "total_seconds")));
    json_array_foreach(job->databases, index, item) {
        json_t *backup = json_object_get(item, "backup");

        printf("  database %s: %lld tables", json_string_value(json_object_get(item, "name")),
               json_integer_value(json_object_get(item, "tables_present")));
        if (json_is_object(backup))
            printf("; backup %s (%+lld s from the restored state): row counts equal in %lld of "
                   "%lld tables", json_string_value(json_object_get(backup, "id")),
                   json_integer_value(json_object_get(backup, "gap_seconds")),
                   json_integer_value(json_object_get(item, "row_counts_equal")),
                   json_integer_value(json_object_get(item, "row_counts_compared")));
        printf("\n");
    }
    json_array_foreach(job->problems, index, item)
        printf("  problem: %s\n", json_string_value(item));
    if (json_object_get(doc, "error") != NULL)
        printf("  error: %s\n", json_string_value(json_object_get(doc, "error")));
}

/* Keeps the report beside the snapshot's manifest in the repository. */
static void store_report(const struct rds_restore_job *job)
{
    static const struct storage_put_options put = {1, "application/json"};
    const char *result = json_string_value(json_object_get(job->report.document, "result"));
    char name[96];
    char stamp[32];
    char key[SNAPSHOT_KEY_MAX];
    char *text;
    stow_error err = {0};
    struct tm utc;
    time_t now = time(NULL);

    if (job->store == NULL || job->options->snapshot_id == NULL || job->snapshot.id[0] == '\0')
        return;
    gmtime_r(&now, &utc);
    strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &utc);
    snprintf(name, sizeof name, "%s-%s-%06x.json", stamp, result ? result : "failed",
             randombytes_uniform(0x1000000));
    if (snprintf(key, sizeof key, "%s/%s/%s/%s/%s", SNAPSHOT_CATALOG_DIR,
                 job->snapshot.source_id, job->snapshot.id, SNAPSHOT_VERIFICATIONS_DIR,
                 name) >= (int)sizeof key)
        return;
    text = json_dumps(job->report.document, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (text == NULL || storage_put(job->store, key, text, strlen(text), &put, &err) != 0)
        stow_log_warn("could not keep the report in the repository at %s: %s", key,
                      err.message);
    free(text);
}

int snapshot_restore_run(rds_client *client, storage *store,
                         const struct snapshot_restore_options *options, stow_error *err)
{
    return snapshot_restore_run_report(client, store, options, NULL, err);
}

int snapshot_restore_run_report(rds_client *client, storage *store,
                                const struct snapshot_restore_options *options, json_t **report,
                                stow_error *err)
{
    struct rds_restore_job job;
    stow_error file_err = {0};
    int rc;

    memset(&job, 0, sizeof job);
    job.client = client;
    job.store = store;
    job.options = options;
    begin_report(&job);
    stow_log_set_context("snapshot_id", options->snapshot_id);

    rc = run_steps(&job, err);
    report_step_end(&job.report, err);

    finish_scratch(&job, err);
    rc = stow_error_is_set(err) ? -1 : rc;
    report_finish(&job.report, err);
    print_report(&job);
    if (options->report_path != NULL &&
        report_write_file(&job.report, options->report_path, &file_err) != 0)
        stow_log_error(&file_err);
    store_report(&job);
    if (report != NULL)
        *report = json_incref(job.report.document);

    for (size_t i = 0; i < job.database_count; i++)
        free(job.database_names[i]);
    free(job.database_names);
    catalog_free(&job.catalog);
    scratch_rds_free(&job.scratch);
    rds_snapshot_free(&job.snapshot);
    report_free(&job.report);
    stow_log_set_context("snapshot_id", NULL);
    return rc;
}
