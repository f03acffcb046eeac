/* Comparison of a database with a backup's recorded contents (dbverify.h). */
#include "dbverify.h"

#include <inttypes.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/interrupt.h"
#include "common/log.h"
#include "formats/rowdigest.h"
#include "pg/pgtools.h"

/* pg_dump leaves out extensions whose OID is below FirstNormalObjectId:
 * the ones initdb creates, such as plpgsql. */
#define FIRST_NORMAL_OBJECT_ID "16384"

/* INV_READ from libpq/libpq-fs.h, for the server-side lo_open(). */
#define LARGE_OBJECT_READ "262144"

/* A table, partitioned table or sequence found in the database. */
struct relation {
    char *schema;
    char *name;
    char kind;                 /* 'r', 'p' or 'S' (pg_class.relkind) */
    int extension_member;      /* created by an extension; pg_dump skips it */
    int matched;               /* listed in the backup */
    uint64_t blocks;           /* size of a table's main fork in blocks, when listed */
};

/* One table's rows as read from the database, summed over its ranges. */
struct table_reading {
    const struct dumpscan_table *table;
    uint64_t blocks;                 /* see struct relation */
    int rejected;                    /* the server rejected a COPY with message failure */
    char failure[512];
    uint64_t rows;
    uint64_t lanes[4];               /* lane sums of the ranges read (formats/rowdigest.h) */
    char digest[ROWDIGEST_HEX_SIZE];
};

/* The part of a table that one COPY reads: a block range, or the whole
 * table. */
struct table_range {
    struct table_reading *reading;
    char *sql;                       /* COPY ... TO STDOUT, owned */
    uint64_t first_block;
    uint64_t rows;                   /* expected rows, an estimate for the order */
};

/* The ranges that both connections take from, most expected rows first. */
struct table_queue {
    pthread_mutex_t mutex;           /* guards next, stop and the sums in the readings */
    struct table_range *ranges;
    size_t count;
    size_t next;
    int stop;                        /* a reader failed: the other stops after its range */
};

struct verify_run {
    PGconn *conn;
    const struct dumpscan_contents *expected;
    struct dbverify_result *result;
    struct relation *relations;      /* sorted by schema, then name */
    size_t relation_count;
    char snapshot[64];               /* exported snapshot for a second connection, or "" */
};

/* --- libpq errors ------------------------------------------------------------ */

/* The one conversion of libpq failures: a lost connection is a database
 * failure (STOW_EXIT_DATABASE), anything else a failed stage. */
static int fail_libpq(stow_error *err, PGconn *conn, const char *operation)
{
    int exit_code = PQstatus(conn) == CONNECTION_BAD ? STOW_EXIT_DATABASE : STOW_EXIT_FAILURE;

    return pgtools_fail(err, exit_code, conn, operation);
}

static int command(struct verify_run *run, const char *sql, stow_error *err)
{
    PGresult *result = PQexec(run->conn, sql);
    int rc = 0;

    if (PQresultStatus(result) != PGRES_COMMAND_OK)
        rc = fail_libpq(err, run->conn, sql);
    PQclear(result);
    return rc;
}

static PGresult *query(struct verify_run *run, const char *sql, int param_count,
                       const char *const *params, stow_error *err)
{
    PGresult *result = PQexecParams(run->conn, sql, param_count, NULL, params, NULL, NULL, 0);

    if (PQresultStatus(result) != PGRES_TUPLES_OK) {
        fail_libpq(err, run->conn, sql);
        PQclear(result);
        return NULL;
    }
    return result;
}

/* --- Differences ----------------------------------------------------------------- */

static int add_difference(struct verify_run *run, const char *kind, const char *object,
                          const char *expected, const char *found, stow_error *err)
{
    struct dbverify_result *result = run->result;
    struct dbverify_difference *difference;

    if (result->count == result->cap) {
        size_t cap = result->cap == 0 ? 16 : result->cap * 2;
        struct dbverify_difference *grown =
            realloc(result->differences, cap * sizeof *grown);

        if (grown == NULL)
            return stow_fail(err, STOW_EXIT_FAILURE, "out of memory listing differences");
        result->differences = grown;
        result->cap = cap;
    }

    difference = &result->differences[result->count];
    difference->kind = strdup(kind);
    difference->object = strdup(object);
    difference->expected = strdup(expected);
    difference->found = strdup(found);
    result->count++;
    if (difference->kind == NULL || difference->object == NULL || difference->expected == NULL ||
        difference->found == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory listing differences");

    stow_log_detail("verification difference: %s %s: expected %s, found %s", kind, object,
                    expected, found);
    return 0;
}

static int add_count_difference(struct verify_run *run, const char *kind, const char *object,
                                uint64_t expected, uint64_t found, stow_error *err)
{
    char expected_text[32];
    char found_text[32];

    snprintf(expected_text, sizeof expected_text, "%" PRIu64, expected);
    snprintf(found_text, sizeof found_text, "%" PRIu64, found);
    return add_difference(run, kind, object, expected_text, found_text, err);
}

/* Runs sql inside a savepoint, so that a statement the server rejects
 * (a missing column, no privilege) leaves the transaction usable. Returns
 * 0 with *out set, 1 when the server rejected sql (failure contains its
 * message, the savepoint is rolled back), or -1 on a lost connection. */
static int guarded(struct verify_run *run, const char *sql, ExecStatusType expected,
                   PGresult **out, char *failure, size_t size, stow_error *err)
{
    PGresult *result;
    const char *message;

    *out = NULL;
    failure[0] = '\0';
    if (command(run, "SAVEPOINT stowage_verify", err) != 0)
        return -1;

    result = PQexec(run->conn, sql);
    if (PQresultStatus(result) == expected) {
        *out = result;
        return 0;
    }

    message = PQresultErrorField(result, PG_DIAG_MESSAGE_PRIMARY);
    snprintf(failure, size, "%s", message != NULL ? message : PQerrorMessage(run->conn));
    PQclear(result);
    if (PQstatus(run->conn) == CONNECTION_BAD)
        return fail_libpq(err, run->conn, sql);
    if (command(run, "ROLLBACK TO SAVEPOINT stowage_verify", err) != 0)
        return -1;
    return 1;
}

static int release_savepoint(struct verify_run *run, stow_error *err)
{
    return command(run, "RELEASE SAVEPOINT stowage_verify", err);
}

/* --- Session ------------------------------------------------------------------------ */

static int set_local(struct verify_run *run, const char *name, const char *value,
                     stow_error *err)
{
    const char *params[2] = {name, value};
    PGresult *result = query(run, "SELECT pg_catalog.set_config($1, $2, true)", 2, params, err);

    if (result == NULL) {
        stow_error_prefix(err, "setting %s to %s", name, value);
        return -1;
    }
    PQclear(result);
    return 0;
}

static int use_snapshot(struct verify_run *run, const char *snapshot, stow_error *err)
{
    char *literal = PQescapeLiteral(run->conn, snapshot, strlen(snapshot));
    char sql[256];

    if (literal == NULL)
        return fail_libpq(err, run->conn, "quoting the snapshot name");
    snprintf(sql, sizeof sql, "SET TRANSACTION SNAPSHOT %s", literal);
    PQfreemem(literal);
    return command(run, sql, err);
}

/* The settings of pg_dump 15's setup_connection(), then those that the
 * contents record. With snapshot (from pg_export_snapshot), the transaction
 * reads the same data as the one that exported it. */
static int begin_session(struct verify_run *run, const char *snapshot, stow_error *err)
{
    const struct dumpscan_contents *expected = run->expected;
    const char *const settings[][2] = {
        {"search_path", ""},
        {"client_encoding", expected->encoding},
        {"DateStyle", "ISO"},
        {"IntervalStyle", "postgres"},
        {"extra_float_digits", "3"},
        {"standard_conforming_strings", "on"},
        {"row_security", "off"},
        {"statement_timeout", "0"},
        {"lock_timeout", "0"},
        {"idle_in_transaction_session_timeout", "0"},
        {"TimeZone", expected->timezone},
        {"bytea_output", expected->bytea_output},
    };

    if (command(run, "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY", err) != 0)
        return -1;
    if (snapshot != NULL && use_snapshot(run, snapshot, err) != 0)
        return -1;
    for (size_t i = 0; i < sizeof settings / sizeof settings[0]; i++)
        if (set_local(run, settings[i][0], settings[i][1], err) != 0)
            return -1;
    return 0;
}

/* Exports the transaction's snapshot for a second connection (read_tables).
 * pg_export_snapshot must run outside a savepoint, so a server that rejects
 * it aborts the transaction, which then starts again without one. */
static int export_snapshot(struct verify_run *run, stow_error *err)
{
    PGresult *result = PQexec(run->conn, "SELECT pg_catalog.pg_export_snapshot()");
    const char *message;

    if (PQresultStatus(result) == PGRES_TUPLES_OK) {
        snprintf(run->snapshot, sizeof run->snapshot, "%s", PQgetvalue(result, 0, 0));
        PQclear(result);
        return 0;
    }
    message = PQresultErrorField(result, PG_DIAG_MESSAGE_PRIMARY);
    stow_log_detail("verifying over one connection: %s",
                    message != NULL ? message : PQerrorMessage(run->conn));
    PQclear(result);
    if (PQstatus(run->conn) == CONNECTION_BAD)
        return fail_libpq(err, run->conn, "exporting the snapshot");
    if (command(run, "ROLLBACK", err) != 0)
        return -1;
    return begin_session(run, NULL, err);
}

/* --- Name sets --------------------------------------------------------------------- */

static int compare_strings(const void *left, const void *right)
{
    return strcmp(*(const char *const *)left, *(const char *const *)right);
}

static int contains_name(char *const *sorted, size_t count, const char *name)
{
    return bsearch(&name, sorted, count, sizeof *sorted, compare_strings) != NULL;
}

/* Compares the names in the backup with the first column of sql, both ways.
 * Names in exempt are never extra. */
static int check_names(struct verify_run *run, const char *object_kind, char *const *expected,
                       size_t expected_count, const char *sql, const char *exempt,
                       stow_error *err)
{
    PGresult *result = query(run, sql, 0, NULL, err);
    char **sorted = NULL;
    char **found = NULL;
    char kind[64];
    size_t found_count;
    int rc = -1;

    if (result == NULL)
        return -1;
    found_count = (size_t)PQntuples(result);
    sorted = calloc(expected_count + 1, sizeof *sorted);
    found = calloc(found_count + 1, sizeof *found);
    if (sorted == NULL || found == NULL) {
        stow_fail(err, STOW_EXIT_FAILURE, "out of memory");
        goto cleanup;
    }

    if (expected_count > 0)
        memcpy(sorted, expected, expected_count * sizeof *sorted);
    qsort(sorted, expected_count, sizeof *sorted, compare_strings);
    for (size_t i = 0; i < found_count; i++)
        found[i] = PQgetvalue(result, (int)i, 0);
    qsort(found, found_count, sizeof *found, compare_strings);

    snprintf(kind, sizeof kind, "%s_missing", object_kind);
    for (size_t i = 0; i < expected_count; i++)
        if (!contains_name(found, found_count, sorted[i]) &&
            add_difference(run, kind, sorted[i], "present", "missing", err) != 0)
            goto cleanup;

    snprintf(kind, sizeof kind, "%s_extra", object_kind);
    for (size_t i = 0; i < found_count; i++)
        if (!contains_name(sorted, expected_count, found[i]) &&
            (exempt == NULL || strcmp(found[i], exempt) != 0) &&
            add_difference(run, kind, found[i], "absent", "present", err) != 0)
            goto cleanup;
    rc = 0;

cleanup:
    free(sorted);
    free(found);
    PQclear(result);
    return rc;
}

/* User schemas: not pg_*, not information_schema, not created by an
 * extension. pg_dump 15 does not dump the public schema that initdb
 * creates, so an unlisted public schema is not a difference. */
static int check_schemas(struct verify_run *run, stow_error *err)
{
    static const char sql[] =
        "SELECT n.nspname FROM pg_catalog.pg_namespace n "
        "WHERE n.nspname <> 'information_schema' AND n.nspname !~ '^pg_' "
        "AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d "
        "WHERE d.classid = 'pg_catalog.pg_namespace'::pg_catalog.regclass "
        "AND d.objid = n.oid AND d.deptype = 'e')";

    run->result->summary.schemas = run->expected->schema_count;
    return check_names(run, "schema", run->expected->schemas, run->expected->schema_count, sql,
                       "public", err);
}

static int check_extensions(struct verify_run *run, stow_error *err)
{
    static const char sql[] = "SELECT e.extname FROM pg_catalog.pg_extension e "
                              "WHERE e.oid >= " FIRST_NORMAL_OBJECT_ID;

    run->result->summary.extensions = run->expected->extension_count;
    return check_names(run, "extension", run->expected->extensions,
                       run->expected->extension_count, sql, NULL, err);
}

/* --- Relations ------------------------------------------------------------------------ */

static int compare_relations(const void *left, const void *right)
{
    const struct relation *a = left;
    const struct relation *b = right;
    int order = strcmp(a->schema, b->schema);

    return order != 0 ? order : strcmp(a->name, b->name);
}

static struct relation *find_relation(struct verify_run *run, const char *schema,
                                      const char *name)
{
    struct relation key = {.schema = (char *)schema, .name = (char *)name};

    return bsearch(&key, run->relations, run->relation_count, sizeof key, compare_relations);
}

static int load_relations(struct verify_run *run, stow_error *err)
{
    static const char sql[] =
        "SELECT n.nspname, c.relname, c.relkind, EXISTS (SELECT 1 FROM pg_catalog.pg_depend d "
        "WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass "
        "AND d.objid = c.oid AND d.deptype = 'e'), "
        "CASE WHEN c.relkind = 'r' THEN pg_catalog.pg_relation_size(c.oid) "
        "/ pg_catalog.current_setting('block_size')::pg_catalog.int8 END "
        "FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind IN ('r', 'p', 'S') "
        "AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'";
    PGresult *result = query(run, sql, 0, NULL, err);
    size_t count;

    if (result == NULL)
        return -1;
    count = (size_t)PQntuples(result);
    run->relations = calloc(count + 1, sizeof *run->relations);
    if (run->relations == NULL) {
        PQclear(result);
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory");
    }

    for (size_t i = 0; i < count; i++) {
        struct relation *relation = &run->relations[i];

        relation->schema = strdup(PQgetvalue(result, (int)i, 0));
        relation->name = strdup(PQgetvalue(result, (int)i, 1));
        relation->kind = PQgetvalue(result, (int)i, 2)[0];
        relation->extension_member = PQgetvalue(result, (int)i, 3)[0] == 't';
        relation->blocks = strtoull(PQgetvalue(result, (int)i, 4), NULL, 10);
        run->relation_count = i + 1;
        if (relation->schema == NULL || relation->name == NULL) {
            PQclear(result);
            return stow_fail(err, STOW_EXIT_FAILURE, "out of memory");
        }
    }
    PQclear(result);
    qsort(run->relations, run->relation_count, sizeof *run->relations, compare_relations);
    return 0;
}

static int is_table_kind(char kind)
{
    return kind == 'r' || kind == 'p';
}

/* Finds the relation of a listed table or sequence and marks it matched.
 * Records a *_missing difference when it is absent or of another kind. */
static int match_relation(struct verify_run *run, const char *object_kind, const char *schema,
                          const char *name, struct relation **out, stow_error *err)
{
    struct relation *relation = find_relation(run, schema, name);
    int table_expected = strcmp(object_kind, "table") == 0;
    char qualified[512];
    char kind[64];

    *out = NULL;
    if (relation != NULL && is_table_kind(relation->kind) == table_expected) {
        relation->matched = 1;
        *out = relation;
        return 0;
    }

    dumpscan_format_name(schema, name, qualified, sizeof qualified);
    snprintf(kind, sizeof kind, "%s_missing", object_kind);
    return add_difference(run, kind, qualified, "present", "missing", err);
}

/* --- Tables ----------------------------------------------------------------------------- */

/* Reads the rows of sql, a COPY ... TO STDOUT, into digest. Returns 0 when
 * the COPY ran, 1 when the server rejected it (failure contains its
 * message), -1 on a lost connection. */
static int copy_rows(struct verify_run *run, const char *sql, rowdigest *digest,
                     char *failure, size_t size, stow_error *err)
{
    PGresult *result;
    char *row = NULL;
    int len;
    int status;

    status = guarded(run, sql, PGRES_COPY_OUT, &result, failure, size, err);
    PQclear(result);
    if (status != 0)
        return status;

    while ((len = PQgetCopyData(run->conn, &row, 0)) > 0) {
        rowdigest_feed(digest, row, (size_t)len);
        PQfreemem(row);
    }
    if (len == -2)
        return fail_libpq(err, run->conn, "reading COPY data");

    result = PQgetResult(run->conn);
    if (PQresultStatus(result) != PGRES_COMMAND_OK) {
        PQclear(result);
        return fail_libpq(err, run->conn, "finishing COPY");
    }
    PQclear(result);
    while ((result = PQgetResult(run->conn)) != NULL)
        PQclear(result);

    if (digest->row_open)
        return stow_fail(err, STOW_EXIT_FAILURE, "COPY data ended inside a row: %s", sql);
    return release_savepoint(run, err);
}

static void init_digest(const struct verify_run *run, rowdigest *digest)
{
    if (run->expected->table_digest_algorithm != 0)
        rowdigest_init_algorithm(digest, run->expected->table_digest_algorithm);
    else
        rowdigest_init(digest);
}

/* Reads one range's rows and adds them to its table. Thread-safe for
 * different runs that share the queue. */
static int read_range(struct verify_run *run, struct table_queue *queue,
                      const struct table_range *range, stow_error *err)
{
    struct table_reading *reading = range->reading;
    rowdigest digest;
    char failure[sizeof reading->failure];
    int copied;

    init_digest(run, &digest);
    copied = copy_rows(run, range->sql, &digest, failure, sizeof failure, err);
    if (copied < 0)
        return -1;

    /* The digest is a sum over rows, so a table's digest is the lane-wise
     * sum of its ranges' digests. */
    pthread_mutex_lock(&queue->mutex);
    if (copied > 0 && !reading->rejected) {
        reading->rejected = 1;
        memcpy(reading->failure, failure, sizeof failure);
    }
    reading->rows += digest.rows;
    for (size_t i = 0; i < sizeof digest.lanes / sizeof digest.lanes[0]; i++)
        reading->lanes[i] += digest.lanes[i];
    pthread_mutex_unlock(&queue->mutex);
    return 0;
}

/* Writes the digest of the lane sums of all the table's ranges. */
static void finish_reading(const struct verify_run *run, struct table_reading *reading)
{
    rowdigest digest;

    init_digest(run, &digest);
    memcpy(digest.lanes, reading->lanes, sizeof digest.lanes);
    digest.rows = reading->rows;
    rowdigest_hex(&digest, reading->digest);
}

static int compare_table(struct verify_run *run, const struct table_reading *reading,
                         stow_error *err)
{
    const struct dumpscan_table *table = reading->table;
    char qualified[512];

    dumpscan_format_name(table->schema, table->name, qualified, sizeof qualified);
    if (reading->rejected)
        return add_difference(run, "table_unreadable", qualified, "readable", reading->failure,
                              err);

    run->result->summary.tables++;
    run->result->summary.rows += reading->rows;
    if (reading->rows != table->rows &&
        add_count_difference(run, "table_rows", qualified, table->rows, reading->rows, err) != 0)
        return -1;
    if (strcmp(reading->digest, table->digest) != 0 &&
        add_difference(run, "table_digest", qualified, table->digest, reading->digest, err) != 0)
        return -1;
    return 0;
}

/* --- Block ranges ----------------------------------------------------------------------- */

unsigned dbverify_range_count(uint64_t blocks, int server_version)
{
    uint64_t count = blocks / DBVERIFY_RANGE_MIN_BLOCKS;

    if (server_version < DBVERIFY_RANGE_MIN_SERVER_VERSION || count < 1)
        return 1;
    return count < DBVERIFY_RANGES_MAX ? (unsigned)count : DBVERIFY_RANGES_MAX;
}

/* Length of the table name at the start of a COPY statement's body: up to
 * the first space or parenthesis outside double quotes. */
static size_t copy_name_length(const char *body)
{
    int quoted = 0;
    size_t i;

    for (i = 0; body[i] != '\0'; i++) {
        if (body[i] == '"')
            quoted = !quoted;
        else if (!quoted && (body[i] == ' ' || body[i] == '('))
            break;
    }
    return i;
}

char *dbverify_range_sql(const char *copy, uint64_t first_block, uint64_t end_block)
{
    static const char to_stdout_suffix[] = " TO STDOUT";
    char *to_stdout = dumpscan_copy_to_stdout(copy);
    char *sql = NULL;
    const char *body;
    const char *columns;
    size_t name_len;
    size_t columns_len;
    char upper[64] = "";
    int rc;

    /* to_stdout is "COPY name (columns) TO STDOUT" from pg_dump, which
     * writes no parentheses for a table without columns. */
    if (to_stdout == NULL)
        return NULL;
    body = to_stdout + strlen("COPY ");
    name_len = copy_name_length(body);
    columns = body + name_len;
    while (*columns == ' ')
        columns++;
    columns_len = strlen(columns) - (sizeof to_stdout_suffix - 1);
    if (name_len == 0 || columns[0] != '(' || columns_len < 3 ||
        columns[columns_len - 1] != ')') {
        free(to_stdout);
        return NULL;
    }

    if (end_block != 0)
        snprintf(upper, sizeof upper, " AND ctid < '(%" PRIu64 ",0)'", end_block);
    rc = asprintf(&sql, "COPY (SELECT %.*s FROM ONLY %.*s WHERE ctid >= '(%" PRIu64 ",0)'%s) "
                        "TO STDOUT",
                  (int)(columns_len - 2), columns + 1, (int)name_len, body, first_block, upper);
    free(to_stdout);
    return rc < 0 ? NULL : sql;
}

/* --- Reading tables over two connections ---------------------------------------------- */

static int compare_range_rows(const void *left, const void *right)
{
    const struct table_range *a = left;
    const struct table_range *b = right;

    if (a->rows != b->rows)
        return (a->rows < b->rows) - (a->rows > b->rows);
    if (a->reading != b->reading)
        return (a->reading > b->reading) - (a->reading < b->reading);
    return (a->first_block > b->first_block) - (a->first_block < b->first_block);
}

static const struct table_range *next_range(struct table_queue *queue)
{
    const struct table_range *range = NULL;

    pthread_mutex_lock(&queue->mutex);
    if (!queue->stop && queue->next < queue->count)
        range = &queue->ranges[queue->next++];
    pthread_mutex_unlock(&queue->mutex);
    return range;
}

static void stop_queue(struct table_queue *queue)
{
    pthread_mutex_lock(&queue->mutex);
    queue->stop = 1;
    pthread_mutex_unlock(&queue->mutex);
}

/* Reads ranges from the queue until it is empty. Checked between ranges:
 * a COPY in progress runs to its end. */
static int read_queued(struct verify_run *run, struct table_queue *queue, stow_error *err)
{
    const struct table_range *range;

    while ((range = next_range(queue)) != NULL) {
        if (stow_interrupted() || read_range(run, queue, range, err) != 0) {
            if (stow_interrupted())
                stow_fail_interrupted(err, "the verification");
            stop_queue(queue);
            return -1;
        }
    }
    return 0;
}

/* A second connection that reads tables beside the first one. */
struct helper {
    struct verify_run run;
    struct table_queue *queue;
    stow_error err;
    int rc;
};

static void *run_helper(void *argument)
{
    struct helper *helper = argument;

    helper->rc = read_queued(&helper->run, helper->queue, &helper->err);
    return NULL;
}

/* Opens a connection with the parameters of conn, password included.
 * Returns NULL when out of memory; check PQstatus otherwise. */
static PGconn *connect_like(PGconn *conn)
{
    PQconninfoOption *options = PQconninfo(conn);
    const char **keywords;
    const char **values;
    size_t count = 0;
    PGconn *copy = NULL;

    for (PQconninfoOption *option = options; option != NULL && option->keyword; option++)
        count++;
    keywords = calloc(count + 1, sizeof *keywords);
    values = calloc(count + 1, sizeof *values);
    if (options != NULL && keywords != NULL && values != NULL) {
        count = 0;
        for (PQconninfoOption *option = options; option->keyword != NULL; option++) {
            if (option->val == NULL || option->val[0] == '\0')
                continue;
            keywords[count] = option->keyword;
            values[count++] = option->val;
        }
        copy = PQconnectdbParams(keywords, values, 0);
    }
    free(keywords);
    free(values);
    PQconninfoFree(options);
    return copy;
}

/* Starts a helper on a second connection in the first one's snapshot.
 * Returns 0 when it runs, or 1 when there is no snapshot to share or the
 * second connection failed (the first connection then reads every table). */
static int start_helper(struct verify_run *run, struct helper *helper, pthread_t *thread)
{
    char connect_error[512];
    const char *reason;

    if (run->snapshot[0] == '\0')
        return 1;
    helper->run.conn = connect_like(run->conn);
    if (helper->run.conn == NULL) {
        reason = "out of memory";
    } else if (PQstatus(helper->run.conn) != CONNECTION_OK) {
        snprintf(connect_error, sizeof connect_error, "%s", PQerrorMessage(helper->run.conn));
        connect_error[strcspn(connect_error, "\n")] = '\0';
        reason = connect_error;
    } else if (begin_session(&helper->run, run->snapshot, &helper->err) != 0) {
        reason = helper->err.message;
    } else if (pthread_create(thread, NULL, run_helper, helper) != 0) {
        reason = "no thread could be started";
    } else {
        return 0;
    }

    stow_log_detail("verifying over one connection: a second connection failed: %s", reason);
    PQfinish(helper->run.conn);
    helper->run.conn = NULL;
    return 1;
}

/* Adds the ranges of one table to queue: several block ranges for a large
 * table on PostgreSQL 14 or later, else the whole table. The last range has
 * no upper bound, so it also reads blocks added after pg_relation_size. */
static int add_table_ranges(struct verify_run *run, struct table_queue *queue,
                            struct table_reading *reading, stow_error *err)
{
    const char *copy = reading->table->copy;
    unsigned count = dbverify_range_count(reading->blocks, PQserverVersion(run->conn));
    char *probe;

    /* A table without columns cannot be split, and is never large. */
    if (count > 1) {
        probe = dbverify_range_sql(copy, 0, 0);
        if (probe == NULL)
            count = 1;
        free(probe);
    }

    for (unsigned i = 0; i < count; i++) {
        struct table_range *range = &queue->ranges[queue->count];
        uint64_t first = reading->blocks * i / count;
        uint64_t end = i + 1 < count ? reading->blocks * (i + 1) / count : 0;

        range->reading = reading;
        range->first_block = first;
        range->rows = reading->table->rows / count;
        range->sql = count > 1 ? dbverify_range_sql(copy, first, end)
                               : dumpscan_copy_to_stdout(copy);
        if (range->sql == NULL)
            return stow_fail(err, STOW_EXIT_FAILURE, "invalid COPY statement: %s", copy);
        queue->count++;
    }
    return 0;
}

/* Splits the tables into ranges, most expected rows first, so that the big
 * tables' ranges go out first and both connections finish together. */
static int plan_ranges(struct verify_run *run, struct table_reading *readings, size_t count,
                       struct table_queue *queue, stow_error *err)
{
    int version = PQserverVersion(run->conn);
    size_t total = 0;

    for (size_t i = 0; i < count; i++)
        total += dbverify_range_count(readings[i].blocks, version);
    queue->ranges = calloc(total + 1, sizeof *queue->ranges);
    if (queue->ranges == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory");

    for (size_t i = 0; i < count; i++)
        if (add_table_ranges(run, queue, &readings[i], err) != 0)
            return -1;
    qsort(queue->ranges, queue->count, sizeof *queue->ranges, compare_range_rows);
    return 0;
}

static void free_ranges(struct table_queue *queue)
{
    for (size_t i = 0; i < queue->count; i++)
        free(queue->ranges[i].sql);
    free(queue->ranges);
}

/* Reads the tables in readings, over two connections when there are
 * several ranges and the server allows a second connection in the same
 * snapshot. */
static int read_tables(struct verify_run *run, struct table_reading *readings, size_t count,
                       stow_error *err)
{
    struct table_queue queue = {.count = 0};
    struct helper helper = {.run = {.expected = run->expected}, .queue = &queue};
    pthread_t thread;
    int helped = 0;
    int rc;

    if (plan_ranges(run, readings, count, &queue, err) != 0) {
        free_ranges(&queue);
        return -1;
    }
    pthread_mutex_init(&queue.mutex, NULL);

    if (queue.count >= 2)
        helped = start_helper(run, &helper, &thread) == 0;
    rc = read_queued(run, &queue, err);
    if (helped) {
        pthread_join(thread, NULL);
        if (rc == 0 && helper.rc != 0) {
            *err = helper.err;
            rc = -1;
        }
        PQclear(PQexec(helper.run.conn, "ROLLBACK"));
        PQfinish(helper.run.conn);
    }
    pthread_mutex_destroy(&queue.mutex);
    free_ranges(&queue);
    for (size_t i = 0; i < count && rc == 0; i++)
        finish_reading(run, &readings[i]);
    return rc;
}

/* --- Sequences ------------------------------------------------------------------------- */

static int read_sequence(struct verify_run *run, const struct dumpscan_sequence *sequence,
                         const char *qualified, stow_error *err)
{
    char *schema = PQescapeIdentifier(run->conn, sequence->schema, strlen(sequence->schema));
    char *name = PQescapeIdentifier(run->conn, sequence->name, strlen(sequence->name));
    char sql[1024];
    char failure[512];
    char expected[64];
    char found[64];
    PGresult *result = NULL;
    int status;
    int rc = -1;

    if (schema == NULL || name == NULL) {
        fail_libpq(err, run->conn, "quoting a sequence name");
        goto cleanup;
    }
    snprintf(sql, sizeof sql, "SELECT last_value, is_called FROM %s.%s", schema, name);
    status = guarded(run, sql, PGRES_TUPLES_OK, &result, failure, sizeof failure, err);
    if (status != 0) {
        rc = status < 0 ? -1
                        : add_difference(run, "sequence_unreadable", qualified, "readable",
                                         failure, err);
        goto cleanup;
    }

    run->result->summary.sequences++;
    snprintf(expected, sizeof expected, "%" PRId64 " (is_called %s)", sequence->value,
             sequence->is_called ? "true" : "false");
    snprintf(found, sizeof found, "%s (is_called %s)", PQgetvalue(result, 0, 0),
             PQgetvalue(result, 0, 1)[0] == 't' ? "true" : "false");
    rc = release_savepoint(run, err);
    if (rc == 0 && strcmp(expected, found) != 0)
        rc = add_difference(run, "sequence_value", qualified, expected, found, err);

cleanup:
    PQclear(result);
    PQfreemem(schema);
    PQfreemem(name);
    return rc;
}

static int check_sequence(struct verify_run *run, const struct dumpscan_sequence *sequence,
                          stow_error *err)
{
    struct relation *relation;
    char qualified[512];

    if (match_relation(run, "sequence", sequence->schema, sequence->name, &relation, err) != 0)
        return -1;
    if (relation == NULL || !sequence->has_value)
        return 0;

    dumpscan_format_name(sequence->schema, sequence->name, qualified, sizeof qualified);
    return read_sequence(run, sequence, qualified, err);
}

/* Tables and sequences in the database that the backup does not list. */
static int check_extra_relations(struct verify_run *run, stow_error *err)
{
    char qualified[512];

    for (size_t i = 0; i < run->relation_count; i++) {
        const struct relation *relation = &run->relations[i];

        if (relation->matched || relation->extension_member)
            continue;
        dumpscan_format_name(relation->schema, relation->name, qualified, sizeof qualified);
        if (add_difference(run, is_table_kind(relation->kind) ? "table_extra" : "sequence_extra",
                           qualified, "absent", "present", err) != 0)
            return -1;
    }
    return 0;
}

/* --- Large objects ---------------------------------------------------------------------- */

/* Counts large objects and sums their sizes on the server; lo_open needs
 * the same SELECT privilege that pg_dump needed to dump them. */
static int check_large_objects(struct verify_run *run, stow_error *err)
{
    static const char sql[] =
        "SELECT count(*), COALESCE(sum(lo_lseek64(lo_open(m.oid, " LARGE_OBJECT_READ
        "), 0, 2)), 0) FROM pg_catalog.pg_largeobject_metadata m";
    const struct dumpscan_contents *expected = run->expected;
    PGresult *result;
    char failure[512];
    uint64_t count;
    uint64_t bytes;
    int status;
    int rc;

    status = guarded(run, sql, PGRES_TUPLES_OK, &result, failure, sizeof failure, err);
    if (status != 0)
        return status < 0 ? -1
                          : add_difference(run, "large_objects_unreadable", "large objects",
                                           "readable", failure, err);

    count = strtoull(PQgetvalue(result, 0, 0), NULL, 10);
    bytes = strtoull(PQgetvalue(result, 0, 1), NULL, 10);
    PQclear(result);
    run->result->summary.large_objects = count;

    rc = release_savepoint(run, err);
    if (rc == 0 && count != expected->large_object_count)
        rc = add_count_difference(run, "large_object_count", "large objects",
                                  expected->large_object_count, count, err);
    if (rc == 0 && bytes != expected->large_object_bytes)
        rc = add_count_difference(run, "large_object_bytes", "large objects",
                                  expected->large_object_bytes, bytes, err);
    return rc;
}

/* --- Run ------------------------------------------------------------------------------------ */

/* Matches the listed tables, reads those present with data, and compares
 * them in the order listed. */
static int check_tables(struct verify_run *run, stow_error *err)
{
    const struct dumpscan_contents *expected = run->expected;
    struct table_reading *readings = calloc(expected->table_count + 1, sizeof *readings);
    size_t count = 0;
    int rc = 0;

    if (readings == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory");
    for (size_t i = 0; i < expected->table_count && rc == 0; i++) {
        const struct dumpscan_table *table = &expected->tables[i];
        struct relation *relation;

        rc = match_relation(run, "table", table->schema, table->name, &relation, err);
        if (rc == 0 && relation != NULL && table->copy != NULL) {
            readings[count].table = table;
            readings[count++].blocks = relation->blocks;
        }
    }

    if (rc == 0)
        rc = read_tables(run, readings, count, err);
    for (size_t i = 0; i < count && rc == 0; i++)
        rc = compare_table(run, &readings[i], err);
    free(readings);
    return rc;
}

static int check_relations(struct verify_run *run, stow_error *err)
{
    const struct dumpscan_contents *expected = run->expected;

    if (check_tables(run, err) != 0)
        return -1;
    for (size_t i = 0; i < expected->sequence_count; i++)
        if (check_sequence(run, &expected->sequences[i], err) != 0)
            return -1;
    return check_extra_relations(run, err);
}

static void free_relations(struct verify_run *run)
{
    for (size_t i = 0; i < run->relation_count; i++) {
        free(run->relations[i].schema);
        free(run->relations[i].name);
    }
    free(run->relations);
}

int dbverify_run(PGconn *conn, const struct dumpscan_contents *expected,
                 struct dbverify_result **out, stow_error *err)
{
    struct verify_run run = {.conn = conn, .expected = expected};
    int rc = -1;

    *out = NULL;
    if (sodium_init() < 0)
        return stow_fail(err, STOW_EXIT_FAILURE, "libsodium failed to initialise");
    run.result = calloc(1, sizeof *run.result);
    if (run.result == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory");

    stow_log_info("verifying database %s: %zu tables, %zu sequences, %" PRIu64
                  " large objects in the backup", PQdb(conn), expected->table_count,
                  expected->sequence_count, expected->large_object_count);

    /* Set up the session as pg_dump had it, in one read-only snapshot. */
    if (begin_session(&run, NULL, err) != 0 || export_snapshot(&run, err) != 0)
        goto cleanup;

    /* Compare the catalog: schemas, extensions, tables and sequences. */
    if (check_schemas(&run, err) != 0 || check_extensions(&run, err) != 0 ||
        load_relations(&run, err) != 0)
        goto cleanup;

    /* Read every table's rows and every sequence's value. */
    if (check_relations(&run, err) != 0 || check_large_objects(&run, err) != 0)
        goto cleanup;

    /* The transaction only read, so its end restores the session settings. */
    if (command(&run, "COMMIT", err) != 0)
        goto cleanup;
    rc = 0;

cleanup:
    if (rc != 0 && PQtransactionStatus(conn) != PQTRANS_IDLE)
        PQclear(PQexec(conn, "ROLLBACK"));
    free_relations(&run);
    if (rc != 0) {
        stow_error_prefix(err, "verifying database %s", PQdb(conn));
        dbverify_result_free(run.result);
        return -1;
    }
    *out = run.result;
    return 0;
}

/* --- Output ---------------------------------------------------------------------------------- */

json_t *dbverify_differences_to_json(const struct dbverify_result *result)
{
    json_t *differences = json_array();

    for (size_t i = 0; i < result->count; i++) {
        const struct dbverify_difference *difference = &result->differences[i];

        json_array_append_new(differences,
                              json_pack("{s:s, s:s, s:s, s:s}", "kind", difference->kind,
                                        "object", difference->object, "expected",
                                        difference->expected, "found", difference->found));
    }
    return differences;
}

json_t *dbverify_result_to_json(const struct dbverify_result *result)
{
    const struct dbverify_summary *summary = &result->summary;

    return json_pack("{s:b, s:{s:I, s:I, s:I, s:I, s:I, s:I}, s:o}", "passed",
                     result->count == 0, "summary", "tables", (json_int_t)summary->tables,
                     "rows", (json_int_t)summary->rows, "sequences",
                     (json_int_t)summary->sequences, "schemas", (json_int_t)summary->schemas,
                     "extensions", (json_int_t)summary->extensions, "large_objects",
                     (json_int_t)summary->large_objects, "differences",
                     dbverify_differences_to_json(result));
}

int dbverify_result_to_text(const struct dbverify_result *result, stow_buf *out,
                            stow_error *err)
{
    const struct dbverify_summary *summary = &result->summary;

    if (stow_buf_printf(out, err,
                        "compared %zu tables (%" PRIu64 " rows), %zu sequences, %zu schemas, "
                        "%zu extensions, %" PRIu64 " large objects: %zu difference%s\n",
                        summary->tables, summary->rows, summary->sequences, summary->schemas,
                        summary->extensions, summary->large_objects, result->count,
                        result->count == 1 ? "" : "s") != 0)
        return -1;

    for (size_t i = 0; i < result->count; i++) {
        const struct dbverify_difference *difference = &result->differences[i];

        if (stow_buf_printf(out, err, "%s %s: expected %s, found %s\n", difference->kind,
                            difference->object, difference->expected, difference->found) != 0)
            return -1;
    }
    return 0;
}

void dbverify_result_free(struct dbverify_result *result)
{
    if (result == NULL)
        return;

    for (size_t i = 0; i < result->count; i++) {
        free(result->differences[i].kind);
        free(result->differences[i].object);
        free(result->differences[i].expected);
        free(result->differences[i].found);
    }
    free(result->differences);
    free(result);
}

int dbverify_compare(PGconn *conn, const json_t *contents, json_t **differences,
                     size_t *count, stow_error *err)
{
    struct dumpscan_contents *expected = NULL;
    struct dbverify_result *result = NULL;

    *differences = NULL;
    *count = 0;
    if (dumpscan_contents_from_json(contents, &expected, err) != 0)
        return -1;

    if (dbverify_run(conn, expected, &result, err) != 0) {
        dumpscan_contents_free(expected);
        return -1;
    }

    stow_log_info("compared %zu tables (%" PRIu64 " rows), %zu sequences and %" PRIu64
                  " large objects with the backup: %zu differences",
                  result->summary.tables, result->summary.rows, result->summary.sequences,
                  result->summary.large_objects, result->count);
    *differences = dbverify_differences_to_json(result);
    *count = result->count;
    dbverify_result_free(result);
    dumpscan_contents_free(expected);
    return 0;
}

void dbverify_print_differences(const json_t *differences)
{
    const json_t *item;
    size_t index;

    json_array_foreach(differences, index, item) {
        printf("difference: %s %s: expected %s, found %s\n",
               json_string_value(json_object_get(item, "kind")),
               json_string_value(json_object_get(item, "object")),
               json_string_value(json_object_get(item, "expected")),
               json_string_value(json_object_get(item, "found")));
    }
}
