#include "new_database.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "pg/pgtools.h"

/* Maximum length in bytes of a database name (NAMEDATALEN - 1). PostgreSQL
 * truncates longer names without an error. */
#define DATABASE_NAME_MAX 63

/* Connects to the database that createdb uses for its own statements:
 * postgres, else template1. Reports the error of the first attempt. */
static int connect_maintenance(const char *conninfo, PGconn **conn, stow_error *err)
{
    stow_buf other;
    stow_error second = {0};
    int rc;

    stow_buf_init(&other, 64 * 1024);
    rc = pgtools_conninfo_with_database(conninfo, "postgres", &other, err);
    if (rc == 0)
        rc = pgtools_connect((const char *)other.data, conn, err);
    if (rc != 0 && err->exit_code == STOW_EXIT_DATABASE &&
        pgtools_conninfo_with_database(conninfo, "template1", &other, &second) == 0 &&
        pgtools_connect((const char *)other.data, conn, &second) == 0) {
        memset(err, 0, sizeof *err);
        rc = 0;
    }
    stow_buf_free_secret(&other);
    return rc;
}

/* Runs one statement. The caller adds context to a failure. */
static int run_statement(PGconn *conn, const char *sql, stow_error *err)
{
    PGresult *result = PQexec(conn, sql);
    int rc = 0;

    if (PQresultStatus(result) != PGRES_COMMAND_OK)
        rc = pgtools_fail(err, STOW_EXIT_DATABASE, conn, sql);
    PQclear(result);
    return rc;
}

/* Returns 1 when a database called name exists, 0, or -1 (err filled). */
static int database_exists(PGconn *conn, const char *name, stow_error *err)
{
    const char *values[] = {name};
    PGresult *result = PQexecParams(conn, "SELECT 1 FROM pg_database WHERE datname = $1", 1,
                                    NULL, values, NULL, NULL, 0);
    int rc;

    if (PQresultStatus(result) != PGRES_TUPLES_OK)
        rc = pgtools_fail(err, STOW_EXIT_DATABASE, conn, "looking up the database failed");
    else
        rc = PQntuples(result) > 0;
    PQclear(result);
    return rc;
}

static int read_requested_name(struct new_database *db, const char *conninfo, stow_error *err)
{
    char *parse_error = NULL;
    PQconninfoOption *options = PQconninfoParse(conninfo, &parse_error);
    const char *name = NULL;

    if (options == NULL) {
        stow_fail(err, STOW_EXIT_USAGE, "invalid connection string: %s",
                  parse_error != NULL ? parse_error : "out of memory");
        PQfreemem(parse_error);
        return -1;
    }
    for (PQconninfoOption *option = options; option->keyword != NULL; option++) {
        if (strcmp(option->keyword, "dbname") == 0 && option->val != NULL && option->val[0])
            name = option->val;
    }
    if (name == NULL)
        name = getenv("PGDATABASE");
    if (name == NULL || name[0] == '\0' || strlen(name) > DATABASE_NAME_MAX) {
        PQconninfoFree(options);
        stow_fail(err, STOW_EXIT_USAGE, "restore --create needs the name of the new database, "
                                        "of 1 to %d bytes, in --target", DATABASE_NAME_MAX);
        stow_error_hint(err, "name it in the connection string: dbname=NAME or "
                             "postgresql://HOST/NAME");
        return -1;
    }
    snprintf(db->name, sizeof db->name, "%s", name);
    PQconninfoFree(options);
    return 0;
}

int new_database_check(struct new_database *db, const char *conninfo, stow_error *err)
{
    PGconn *conn = NULL;
    int exists;

    memset(db, 0, sizeof *db);
    db->conninfo = conninfo;
    stow_buf_init(&db->staging_conninfo, 64 * 1024);
    if (read_requested_name(db, conninfo, err) != 0 || connect_maintenance(conninfo, &conn, err) != 0)
        return -1;

    exists = database_exists(conn, db->name, err);
    PQfinish(conn);
    if (exists < 0)
        return -1;
    if (exists) {
        stow_fail(err, STOW_EXIT_USAGE, "the database %s already exists, and restore --create "
                                        "makes a new one", db->name);
        stow_error_hint(err, "name another database in --target, drop %s first, or restore "
                             "into it without --create", db->name);
        return -1;
    }
    return 0;
}

/* Builds the CREATE DATABASE and COMMENT statements for the temporary
 * database. Returns 0, or -1 when libpq could not quote a value. */
static int creation_sql(PGconn *conn, const struct new_database *db, const char *encoding,
                        const char *backup_id, char *create, size_t create_size, char *comment,
                        size_t comment_size)
{
    char note[512];
    char *identifier = PQescapeIdentifier(conn, db->staging, strlen(db->staging));
    char *encoding_literal = NULL;
    char *note_literal = NULL;
    int rc = -1;

    snprintf(note, sizeof note, "stowage: incomplete restore of backup %s, to be renamed %s; "
             "dropped when the restore fails, to be dropped by hand when no restore runs",
             backup_id, db->name);
    note_literal = PQescapeLiteral(conn, note, strlen(note));
    if (encoding != NULL && encoding[0] != '\0')
        encoding_literal = PQescapeLiteral(conn, encoding, strlen(encoding));
    if (identifier != NULL && note_literal != NULL &&
        (encoding_literal != NULL || encoding == NULL || encoding[0] == '\0')) {
        snprintf(create, create_size, "CREATE DATABASE %s TEMPLATE template0%s%s", identifier,
                 encoding_literal != NULL ? " ENCODING " : "",
                 encoding_literal != NULL ? encoding_literal : "");
        snprintf(comment, comment_size, "COMMENT ON DATABASE %s IS %s", identifier, note_literal);
        rc = 0;
    }
    PQfreemem(identifier);
    PQfreemem(encoding_literal);
    PQfreemem(note_literal);
    return rc;
}

int new_database_create(struct new_database *db, const char *encoding, const char *backup_id,
                        stow_error *err)
{
    unsigned char random[6];
    char hex[sizeof random * 2 + 1];
    char create[512];
    char comment[1024];
    PGconn *conn = NULL;
    int rc = -1;

    randombytes_buf(random, sizeof random);
    sodium_bin2hex(hex, sizeof hex, random, sizeof random);
    snprintf(db->staging, sizeof db->staging, NEW_DATABASE_PREFIX "%s", hex);
    if (connect_maintenance(db->conninfo, &conn, err) != 0)
        return -1;

    if (creation_sql(conn, db, encoding, backup_id, create, sizeof create, comment,
                     sizeof comment) != 0) {
        stow_fail(err, STOW_EXIT_DATABASE, "quoting the new database's name failed: %s",
                  PQerrorMessage(conn));
    } else if (run_statement(conn, create, err) != 0) {
        stow_error_prefix(err, "creating the database %s failed", db->staging);
        stow_error_hint(err, "restore --create needs the CREATEDB privilege and a locale "
                             "that suits the backup's encoding %s; else create the database "
                             "yourself and restore into it without --create",
                        encoding != NULL && encoding[0] != '\0' ? encoding : "(default)");
    } else {
        db->created = 1;
        stow_log_info("created the database %s for the restore; it is renamed %s when the "
                      "restore succeeds", db->staging, db->name);
        rc = run_statement(conn, comment, err);
    }
    PQfinish(conn);
    if (rc != 0)
        return -1;
    return pgtools_conninfo_with_database(db->conninfo, db->staging, &db->staging_conninfo, err);
}

int new_database_publish(struct new_database *db, stow_error *err)
{
    char sql[512];
    char *from = NULL;
    char *to = NULL;
    PGconn *conn = NULL;
    int rc = -1;

    if (connect_maintenance(db->conninfo, &conn, err) != 0)
        return -1;
    from = PQescapeIdentifier(conn, db->staging, strlen(db->staging));
    to = PQescapeIdentifier(conn, db->name, strlen(db->name));
    if (from == NULL || to == NULL) {
        stow_fail(err, STOW_EXIT_DATABASE, "quoting the database names failed: %s",
                  PQerrorMessage(conn));
        goto done;
    }

    snprintf(sql, sizeof sql, "ALTER DATABASE %s RENAME TO %s", from, to);
    if (run_statement(conn, sql, err) != 0) {
        stow_error_prefix(err, "renaming the restored database %s to %s failed", db->staging,
                          db->name);
        goto done;
    }
    db->published = 1;

    snprintf(sql, sizeof sql, "COMMENT ON DATABASE %s IS NULL", to);
    if (run_statement(conn, sql, err) != 0) {
        stow_log_warn("the restored database %s keeps the comment of an incomplete restore: %s",
                      db->name, err->message);
        memset(err, 0, sizeof *err);
    }
    stow_log_info("renamed the restored database %s to %s", db->staging, db->name);
    rc = 0;

done:
    PQfreemem(from);
    PQfreemem(to);
    PQfinish(conn);
    return rc;
}

/* Drops the temporary database. From PostgreSQL 13 on, WITH (FORCE) also
 * ends connections that a failed restore left behind. */
static void drop_staging(struct new_database *db)
{
    stow_error err = {0};
    PGconn *conn = NULL;
    char *identifier = NULL;
    char sql[256];

    if (connect_maintenance(db->conninfo, &conn, &err) == 0) {
        identifier = PQescapeIdentifier(conn, db->staging, strlen(db->staging));
        if (identifier == NULL) {
            stow_fail(&err, STOW_EXIT_DATABASE, "quoting %s failed", db->staging);
        } else {
            snprintf(sql, sizeof sql, "DROP DATABASE %s%s", identifier,
                     PQserverVersion(conn) >= 130000 ? " WITH (FORCE)" : "");
            run_statement(conn, sql, &err);
        }
    }
    if (err.exit_code == 0)
        stow_log_info("dropped the incomplete database %s", db->staging);
    else
        stow_log_warn("the incomplete database %s is left on the server: %s; drop it with "
                      "DROP DATABASE %s", db->staging, err.message, db->staging);
    PQfreemem(identifier);
    PQfinish(conn);
}

void new_database_finish(struct new_database *db)
{
    if (db->created && !db->published)
        drop_staging(db);
    stow_buf_free_secret(&db->staging_conninfo);
}
