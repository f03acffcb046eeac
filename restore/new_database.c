#include "new_database.h"

#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/interrupt.h"
#include "common/log.h"
#include "pg/pgtools.h"

/* Maximum length in bytes of a database name (NAMEDATALEN - 1). PostgreSQL
 * truncates longer names without an error. */
#define DATABASE_NAME_MAX 63

/* Returns 1 when a failed connection to the postgres database is about
 * that database (missing, or no CONNECT right), so template1 may work. */
static int postgres_database_closed(const stow_error *err)
{
    return strstr(err->message, "database \"postgres\" does not exist") != NULL ||
           strstr(err->message, "permission denied for database \"postgres\"") != NULL;
}

/* Connects to dbname on the server of conninfo, with conninfo's settings
 * and --db-iam-auth when it applies to conninfo. The string is left in
 * other. */
static int connect_database(const char *conninfo, const char *dbname, stow_buf *other,
                            PGconn **conn, stow_error *err)
{
    if (pgtools_conninfo_with_database(conninfo, dbname, other, err) != 0)
        return -1;
    if (pgtools_iam_applies(conninfo) &&
        pgtools_iam_auth_add_alias((const char *)other->data, err) != 0)
        return -1;
    return pgtools_connect((const char *)other->data, conn, err);
}

/* Connects to the database that createdb uses for its own statements:
 * postgres, else template1 when postgres is missing or closed to the role.
 * A failure of both names both errors. */
static int connect_maintenance(const char *conninfo, PGconn **conn, stow_error *err)
{
    stow_buf other;
    stow_error second = {0};
    char first[STOW_ERROR_MESSAGE_MAX];
    int rc;

    stow_buf_init(&other, 64 * 1024);
    rc = connect_database(conninfo, "postgres", &other, conn, err);
    if (rc != 0 && postgres_database_closed(err)) {
        if (connect_database(conninfo, "template1", &other, conn, &second) == 0) {
            memset(err, 0, sizeof *err);
            rc = 0;
        } else {
            snprintf(first, sizeof first, "%s", err->message);
            memset(err, 0, sizeof *err);
            stow_fail(err, STOW_EXIT_DATABASE, "restore --create connects to the database "
                      "postgres, else template1, and neither worked: %s; then %s", first,
                      second.message);
            stow_error_hint(err, "let the --target role connect to postgres or template1 on "
                                 "that server, or create the database yourself and restore "
                                 "into it without --create");
        }
    }
    stow_buf_free_secret(&other);
    return rc;
}

/* Runs sql, one statement or several in one transaction. On failure it
 * names context (NULL: sql itself) and the server's message in err and
 * copies the SQLSTATE into sqlstate (6 bytes, may be NULL). */
static int run_statement_as(PGconn *conn, const char *sql, const char *context, char *sqlstate,
                            stow_error *err)
{
    PGresult *result = PQexec(conn, sql);
    const char *state = PQresultErrorField(result, PG_DIAG_SQLSTATE);
    int rc = 0;

    if (sqlstate != NULL)
        snprintf(sqlstate, 6, "%s", state != NULL ? state : "");
    if (PQresultStatus(result) != PGRES_COMMAND_OK &&
        PQresultStatus(result) != PGRES_TUPLES_OK)
        rc = pgtools_fail(err, STOW_EXIT_DATABASE, conn, context != NULL ? context : sql);
    PQclear(result);
    return rc;
}

static int run_statement(PGconn *conn, const char *sql, char *sqlstate, stow_error *err)
{
    return run_statement_as(conn, sql, NULL, sqlstate, err);
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
    PQconninfoOption *options = pgtools_parse_conninfo(conninfo, err);
    const char *name = NULL;
    const char *service = NULL;

    if (options == NULL)
        return -1;
    for (PQconninfoOption *option = options; option->keyword != NULL; option++) {
        if (option->val == NULL || option->val[0] == '\0')
            continue;
        if (strcmp(option->keyword, "dbname") == 0)
            name = option->val;
        if (strcmp(option->keyword, "service") == 0)
            service = option->val;
    }
    if (service == NULL)
        service = getenv("PGSERVICE");
    if (service != NULL && service[0] == '\0')
        service = NULL;
    /* libpq takes a service file's dbname before PGDATABASE. */
    if (name == NULL && service == NULL)
        name = getenv("PGDATABASE");
    if (name != NULL && name[0] != '\0' && strlen(name) <= DATABASE_NAME_MAX) {
        snprintf(db->name, sizeof db->name, "%s", name);
        PQconninfoFree(options);
        return 0;
    }

    if (name == NULL || name[0] == '\0')
        stow_fail(err, STOW_EXIT_USAGE, "restore --create needs the name of the new database "
                                        "in --target%s", service == NULL ? ""
                  : getenv("PGDATABASE") != NULL
                      ? " besides the service (PGDATABASE does not count, because libpq takes "
                        "the service file's dbname first)"
                      : " besides the service");
    else
        stow_fail(err, STOW_EXIT_USAGE, "the database name \"%s\" is %zu bytes long, and "
                  "PostgreSQL takes at most %d", name, strlen(name), DATABASE_NAME_MAX);
    if (name == NULL || name[0] == '\0')
        stow_error_hint(err, "name the new database in the connection string: dbname=NAME or "
                             "postgresql://HOST/NAME");
    else
        stow_error_hint(err, "choose a name of at most %d bytes", DATABASE_NAME_MAX);
    PQconninfoFree(options);
    return -1;
}

/* Warns about temporary databases that earlier runs for the same name
 * left behind (killed, or still running), found by their comment. */
static void warn_about_leftovers(PGconn *conn, const char *name)
{
    char needle[128];
    const char *values[] = {needle};
    PGresult *result;

    snprintf(needle, sizeof needle, ", to be renamed %s;", name);
    result = PQexecParams(conn, "SELECT datname FROM pg_database "
                                "WHERE datname LIKE '" NEW_DATABASE_PREFIX "%' AND "
                                "position($1 in shobj_description(oid, 'pg_database')) > 0 "
                                "ORDER BY datname",
                          1, NULL, values, NULL, NULL, 0);
    if (PQresultStatus(result) == PGRES_TUPLES_OK) {
        for (int row = 0; row < PQntuples(result); row++)
            stow_log_warn("the database %s is left from an earlier restore --create of %s, "
                          "killed or still running: drop it with DROP DATABASE %s when no "
                          "restore runs", PQgetvalue(result, row, 0), name,
                          PQgetvalue(result, row, 0));
    }
    PQclear(result);
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
    if (exists == 0)
        warn_about_leftovers(conn, db->name);
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

/* Appends " keyword 'value'" to sql, with value quoted by libpq. */
static int append_option(PGconn *conn, stow_buf *sql, const char *keyword, const char *value,
                         stow_error *err)
{
    char *literal = PQescapeLiteral(conn, value, strlen(value));
    int rc;

    if (literal == NULL)
        return stow_fail(err, STOW_EXIT_DATABASE, "quoting the new database's %s failed: %s",
                         keyword, PQerrorMessage(conn));
    rc = stow_buf_printf(sql, err, " %s %s", keyword, literal);
    PQfreemem(literal);
    return rc;
}

int new_database_provider_has_locale(const char *provider)
{
    return provider != NULL && (strcmp(provider, "icu") == 0 || strcmp(provider, "builtin") == 0);
}

/* Returns 1 when locale names the ICU or builtin provider and its locale. */
static int has_provider(const struct database_locale *locale)
{
    return locale != NULL && locale->locale != NULL &&
           new_database_provider_has_locale(locale->provider);
}

/* Appends LOCALE_PROVIDER and its locale, and ICU_RULES when set. */
static int append_provider(PGconn *conn, stow_buf *sql, const struct database_locale *locale,
                           stow_error *err)
{
    int icu = strcmp(locale->provider, "icu") == 0;

    if (stow_buf_printf(sql, err, " LOCALE_PROVIDER %s", icu ? "icu" : "builtin") != 0 ||
        append_option(conn, sql, icu ? "ICU_LOCALE" : "BUILTIN_LOCALE", locale->locale,
                      err) != 0)
        return -1;
    if (icu && locale->icu_rules != NULL)
        return append_option(conn, sql, "ICU_RULES", locale->icu_rules, err);
    return 0;
}

/* Builds the CREATE DATABASE statement of the temporary database with the
 * given locale (NULL: the server's default). A NULL collate and ctype
 * leave the server's default libc locale beside the provider. */
static int create_sql(PGconn *conn, const struct new_database *db, const char *encoding,
                      const struct database_locale *locale, stow_buf *sql, stow_error *err)
{
    char *identifier = PQescapeIdentifier(conn, db->staging, strlen(db->staging));
    int rc;

    stow_buf_reset(sql);
    if (identifier == NULL)
        return stow_fail(err, STOW_EXIT_DATABASE, "quoting the new database's name failed: %s",
                         PQerrorMessage(conn));
    rc = stow_buf_printf(sql, err, "CREATE DATABASE %s TEMPLATE template0", identifier);
    PQfreemem(identifier);
    if (rc != 0)
        return -1;

    if (encoding != NULL && encoding[0] != '\0' &&
        append_option(conn, sql, "ENCODING", encoding, err) != 0)
        return -1;
    if (locale == NULL)
        return 0;
    if (locale->collate != NULL &&
        (append_option(conn, sql, "LC_COLLATE", locale->collate, err) != 0 ||
         append_option(conn, sql, "LC_CTYPE", locale->ctype, err) != 0))
        return -1;
    return has_provider(locale) ? append_provider(conn, sql, locale, err) : 0;
}

/* Builds the statements that describe the temporary database in its
 * comment and revoke PUBLIC's default CONNECT right. Then only the
 * restoring role and superusers can connect, so no session of a role that
 * the restoring role may not end can block the rename. */
static int comment_sql(PGconn *conn, const struct new_database *db, const char *backup_id,
                       char *sql, size_t size)
{
    char note[512];
    char *identifier = PQescapeIdentifier(conn, db->staging, strlen(db->staging));
    char *literal = NULL;
    int rc = -1;

    snprintf(note, sizeof note, "stowage: incomplete restore of backup %s, to be renamed %s; "
             "dropped when the restore fails, to be dropped by hand when no restore runs",
             backup_id, db->name);
    literal = PQescapeLiteral(conn, note, strlen(note));
    if (identifier != NULL && literal != NULL) {
        snprintf(sql, size, "COMMENT ON DATABASE %s IS %s; REVOKE CONNECT ON DATABASE %s "
                 "FROM PUBLIC", identifier, literal, identifier);
        rc = 0;
    }
    PQfreemem(identifier);
    PQfreemem(literal);
    return rc;
}

/* Returns 1 when CREATE DATABASE failed because of its locale: a locale
 * the server lacks (42809) or one that does not suit the encoding (22023,
 * a LATIN1 backup on a UTF-8 server, say). With a provider, also a server
 * built without ICU (0A000) and an ICU locale that ICU cannot open, which
 * PostgreSQL 15 reports as XX000. */
static int locale_rejected(const char *sqlstate, const struct database_locale *locale)
{
    if (strcmp(sqlstate, "22023") == 0 || strcmp(sqlstate, "42809") == 0)
        return 1;
    return has_provider(locale) && (strcmp(sqlstate, "0A000") == 0 ||
                                    strcmp(sqlstate, "XX000") == 0);
}

/* The locales that create_staging tries in turn. */
struct locale_choices {
    struct database_locale locale[5];
    const struct database_locale *choice[5];  /* NULL: the server's default */
    char name[5][1024];
    size_t count;
};

static void add_choice(struct locale_choices *choices, const struct database_locale *locale,
                       const char *fmt, ...) STOW_PRINTF(3, 4);

static void add_choice(struct locale_choices *choices, const struct database_locale *locale,
                       const char *fmt, ...)
{
    size_t i = choices->count++;
    va_list ap;

    if (locale != NULL) {
        choices->locale[i] = *locale;
        choices->choice[i] = &choices->locale[i];
    }
    va_start(ap, fmt);
    vsnprintf(choices->name[i], sizeof choices->name[i], fmt, ap);
    va_end(ap);
}

/* Drops from source what the server's version lacks, with a warning:
 * LOCALE_PROVIDER before PostgreSQL 15, builtin before 17 and ICU_RULES
 * before 16. */
static void fit_server_version(PGconn *conn, struct database_locale *source)
{
    int version = PQserverVersion(conn);
    int builtin = strcmp(source->provider, "builtin") == 0;
    int needed = builtin ? 170000 : 150000;

    if (version < needed) {
        stow_log_warn("the server runs PostgreSQL %d, which lacks the %s locale provider "
                      "(PostgreSQL %d on): the new database gets a libc locale instead of %s "
                      "locale %s", version / 10000, source->provider, needed / 10000,
                      source->provider, source->locale);
        source->provider = NULL;
    } else if (source->icu_rules != NULL && version < 160000) {
        stow_log_warn("the server runs PostgreSQL %d, which lacks ICU_RULES (PostgreSQL 16 on): "
                      "the new database gets ICU locale %s without the source database's "
                      "rules", version / 10000, source->locale);
        source->icu_rules = NULL;
    }
}

/* Lists the locales to try: the source's libc locale with its provider,
 * the provider with the server's default libc locale, the libc locale
 * alone, the server's default, and C. Each needs what source records. */
static void plan_locales(PGconn *conn, const struct database_locale *recorded,
                         struct locale_choices *choices)
{
    static const struct database_locale c_locale = {"C", "C", NULL, NULL, NULL};
    struct database_locale source = {0};
    int libc;

    memset(choices, 0, sizeof *choices);
    if (recorded != NULL)
        source = *recorded;
    libc = source.collate != NULL && source.ctype != NULL;
    if (has_provider(&source))
        fit_server_version(conn, &source);

    if (has_provider(&source) && libc)
        add_choice(choices, &source, "the source database's locale (%s locale %s, LC_COLLATE "
                   "%s, LC_CTYPE %s)", source.provider, source.locale, source.collate,
                   source.ctype);
    if (has_provider(&source))
        add_choice(choices, &(struct database_locale){NULL, NULL, source.provider, source.locale,
                                                      source.icu_rules},
                   "the source database's %s locale %s with the server's default LC_COLLATE "
                   "and LC_CTYPE", source.provider, source.locale);
    if (libc && has_provider(&source))
        add_choice(choices, &(struct database_locale){source.collate, source.ctype, NULL, NULL,
                                                      NULL},
                   "the source database's LC_COLLATE %s and LC_CTYPE %s without its %s locale",
                   source.collate, source.ctype, source.provider);
    else if (libc)
        add_choice(choices, &source, "the source database's locale (LC_COLLATE %s, LC_CTYPE %s)",
                   source.collate, source.ctype);
    add_choice(choices, NULL, "the server's default locale");
    add_choice(choices, &c_locale, "the C locale");
}

/* Fills err after every choice of create_staging failed, or one failed
 * for another reason than its locale. */
static void creation_failed(const struct new_database *db, const char *sqlstate,
                            int locale_failed, stow_error *err)
{
    stow_error_prefix(err, "creating the database %s failed", db->staging);
    if (strcmp(sqlstate, "42501") == 0)
        stow_error_hint(err, "restore --create needs the CREATEDB privilege; else create the "
                             "database yourself and restore into it without --create");
    else if (locale_failed)
        stow_error_hint(err, "create the database yourself, with a locale that this server "
                             "has, and restore into it without --create");
    else
        stow_error_hint(err, "create the database yourself and restore into it without "
                             "--create");
}

/* Creates the temporary database with the first locale of plan_locales
 * that the server accepts. When it falls back, the warning names every
 * locale that the server rejected and why. */
static int create_staging(PGconn *conn, struct new_database *db, const char *encoding,
                          const struct database_locale *source, stow_error *err)
{
    struct locale_choices choices;
    stow_buf sql;
    stow_buf rejected;
    char sqlstate[6] = "";
    int locale_failed = 0;
    int rc = -1;

    plan_locales(conn, source, &choices);
    stow_buf_init(&sql, 64 * 1024);
    stow_buf_init(&rejected, 64 * 1024);
    for (size_t i = 0; i < choices.count; i++) {
        stow_error attempt = {0};

        memset(err, 0, sizeof *err);
        if (create_sql(conn, db, encoding, choices.choice[i], &sql, err) != 0)
            break;
        if (run_statement_as(conn, (const char *)sql.data, "CREATE DATABASE", sqlstate,
                             &attempt) == 0) {
            if (rejected.len > 0)
                stow_log_warn("created the database with %s, because %s", choices.name[i],
                              (const char *)rejected.data);
            rc = 0;
            break;
        }
        *err = attempt;  /* the last attempt's error, if none succeeds */
        locale_failed = locale_rejected(sqlstate, choices.choice[i]);
        if (!locale_failed)
            break;
        stow_log_info("the server rejected %s: %s", choices.name[i], attempt.message);
        stow_buf_printf(&rejected, &(stow_error){0}, "%sthe server rejected %s: %s",
                        rejected.len > 0 ? "; then " : "", choices.name[i], attempt.message);
    }
    stow_buf_free(&sql);
    stow_buf_free(&rejected);
    if (rc != 0)
        creation_failed(db, sqlstate, locale_failed, err);
    return rc;
}

int new_database_create(struct new_database *db, const char *encoding,
                        const struct database_locale *locale, const char *backup_id,
                        stow_error *err)
{
    unsigned char random[6];
    char hex[sizeof random * 2 + 1];
    char comment[1024];
    char leftover[160];
    PGconn *conn = NULL;
    int rc = -1;

    randombytes_buf(random, sizeof random);
    sodium_bin2hex(hex, sizeof hex, random, sizeof random);
    snprintf(db->staging, sizeof db->staging, NEW_DATABASE_PREFIX "%s", hex);
    if (connect_maintenance(db->conninfo, &conn, err) != 0)
        return -1;

    if (create_staging(conn, db, encoding, locale, err) == 0) {
        db->created = 1;
        snprintf(leftover, sizeof leftover, "the temporary database %s (DROP DATABASE %s)",
                 db->staging, db->staging);
        stow_interrupt_set_leftover(leftover);
        stow_log_info("created the database %s for the restore; it is renamed %s when the "
                      "restore succeeds", db->staging, db->name);
        if (comment_sql(conn, db, backup_id, comment, sizeof comment) != 0)
            stow_fail(err, STOW_EXIT_DATABASE, "quoting the comment failed: %s",
                      PQerrorMessage(conn));
        else
            rc = run_statement(conn, comment, NULL, err);
    }
    PQfinish(conn);
    if (rc != 0 ||
        pgtools_conninfo_with_database(db->conninfo, db->staging, &db->staging_conninfo, err) != 0)
        return -1;
    if (pgtools_iam_applies(db->conninfo))
        return pgtools_iam_auth_add_alias((const char *)db->staging_conninfo.data, err);
    return 0;
}

/* Stops new connections to the temporary database and ends the sessions
 * connected to it, which would make the rename fail: sessions that looked
 * into a database named as an incomplete restore. Failures are logged
 * only, since the rename then reports the cause. */
static void close_staging(PGconn *conn, const struct new_database *db, const char *identifier)
{
    const char *values[] = {db->staging};
    char sql[256];
    stow_error err = {0};
    PGresult *result;

    snprintf(sql, sizeof sql, "ALTER DATABASE %s WITH ALLOW_CONNECTIONS false", identifier);
    if (run_statement(conn, sql, NULL, &err) != 0)
        stow_log_warn("%s", err.message);

    result = PQexecParams(conn, "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) "
                                "FROM pg_stat_activity WHERE datname = $1 "
                                "AND pid <> pg_backend_pid()",
                          1, NULL, values, NULL, NULL, 0);
    if (PQresultStatus(result) != PGRES_TUPLES_OK)
        stow_log_warn("could not end the sessions connected to %s: %s", db->staging,
                      PQresultErrorMessage(result));
    else if (atol(PQgetvalue(result, 0, 0)) > 0)
        stow_log_warn("ended %s session(s) connected to the temporary database %s, so that it "
                      "can be renamed", PQgetvalue(result, 0, 0), db->staging);
    PQclear(result);
}

/* Renames the temporary database, lets connections in again, gives
 * PUBLIC its CONNECT right back and removes the comment in one
 * transaction, so a database under the requested name
 * never carries the comment of an incomplete restore. */
static int rename_staging(PGconn *conn, struct new_database *db, const char *from,
                          const char *to, stow_error *err)
{
    char sql[768];
    char sqlstate[6];

    snprintf(sql, sizeof sql, "ALTER DATABASE %s RENAME TO %s; "
             "ALTER DATABASE %s WITH ALLOW_CONNECTIONS true; GRANT CONNECT ON DATABASE %s "
             "TO PUBLIC; COMMENT ON DATABASE %s IS NULL", from, to, to, to, to);
    if (run_statement(conn, sql, sqlstate, err) == 0) {
        db->published = 1;
        stow_interrupt_set_leftover(NULL);
        stow_log_info("renamed the restored database %s to %s", db->staging, db->name);
        return 0;
    }
    /* 42P04 duplicate_database; 23505 unique_violation when the other
     * database was committed while the rename waited for it. */
    if (strcmp(sqlstate, "42P04") == 0 || strcmp(sqlstate, "23505") == 0) {
        memset(err, 0, sizeof *err);
        stow_fail(err, STOW_EXIT_USAGE, "a database named %s was created while the restore ran",
                  db->name);
        stow_error_hint(err, "restore again under another name in --target, or drop %s first",
                        db->name);
        return -1;
    }
    stow_error_prefix(err, "renaming the restored database %s to %s failed", db->staging,
                      db->name);
    return -1;
}

int new_database_publish(struct new_database *db, stow_error *err)
{
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
    } else {
        close_staging(conn, db, from);
        rc = rename_staging(conn, db, from, to, err);
    }
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
            run_statement(conn, sql, NULL, &err);
        }
    }
    if (err.exit_code == 0) {
        stow_interrupt_set_leftover(NULL);
        stow_log_info("dropped the temporary database %s", db->staging);
    } else {
        stow_log_warn("the temporary database %s is left on the server: %s; drop it with "
                      "DROP DATABASE %s", db->staging, err.message, db->staging);
    }
    PQfreemem(identifier);
    PQfinish(conn);
}

void new_database_finish(struct new_database *db)
{
    if (db->created && !db->published)
        drop_staging(db);
    stow_buf_free_secret(&db->staging_conninfo);
}
