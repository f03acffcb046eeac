/* Tests for pgtools_conninfo_with_database: the connection string of
 * another database on the same server, checked by parsing the result
 * again with libpq. */
#include "unit.h"

#include "pg/pgtools.h"

/* Returns the value of keyword in conninfo as libpq parses it, copied into
 * out (empty when unset). */
static const char *parsed_value(const char *conninfo, const char *keyword, char *out,
                                size_t size)
{
    char *parse_error = NULL;
    PQconninfoOption *options = PQconninfoParse(conninfo, &parse_error);

    out[0] = '\0';
    if (options == NULL) {
        unit_fail(__FILE__, __LINE__, "libpq rejected %s: %s", conninfo,
                  parse_error != NULL ? parse_error : "out of memory");
        PQfreemem(parse_error);
        return out;
    }
    for (PQconninfoOption *option = options; option->keyword != NULL; option++) {
        if (strcmp(option->keyword, keyword) == 0 && option->val != NULL)
            snprintf(out, size, "%s", option->val);
    }
    PQconninfoFree(options);
    return out;
}

/* Rewrites conninfo for dbname and returns the result in out. */
static const char *with_database(const char *conninfo, const char *dbname, stow_buf *out)
{
    stow_error err = {0};

    if (pgtools_conninfo_with_database(conninfo, dbname, out, &err) != 0)
        unit_fail(__FILE__, __LINE__, "%s rejected: %s", conninfo, err.message);
    return out->len > 0 ? (const char *)out->data : "";
}

static void test_key_value_keeps_settings(void)
{
    stow_buf out;
    char value[256];
    const char *rewritten;

    stow_buf_init(&out, 4096);
    rewritten = with_database("host=db.example port=6432 user=app dbname=appdb sslmode=require",
                              "stowage_restore_0a1b", &out);
    CHECK_STR_EQ("stowage_restore_0a1b", parsed_value(rewritten, "dbname", value, sizeof value));
    CHECK_STR_EQ("db.example", parsed_value(rewritten, "host", value, sizeof value));
    CHECK_STR_EQ("6432", parsed_value(rewritten, "port", value, sizeof value));
    CHECK_STR_EQ("app", parsed_value(rewritten, "user", value, sizeof value));
    CHECK_STR_EQ("require", parsed_value(rewritten, "sslmode", value, sizeof value));
    stow_buf_free_secret(&out);
}

static void test_quotes_and_backslashes_survive(void)
{
    stow_buf out;
    char value[256];
    const char *rewritten;

    stow_buf_init(&out, 4096);
    rewritten = with_database("host=/tmp password='it\\'s a \\\\ secret' dbname=x",
                              "name with 'quote' and \\", &out);
    CHECK_STR_EQ("it's a \\ secret", parsed_value(rewritten, "password", value, sizeof value));
    CHECK_STR_EQ("name with 'quote' and \\", parsed_value(rewritten, "dbname", value,
                                                           sizeof value));
    stow_buf_free_secret(&out);
}

static void test_uri_becomes_key_value(void)
{
    stow_buf out;
    char value[256];
    const char *rewritten;

    stow_buf_init(&out, 4096);
    rewritten = with_database("postgresql://app:p%40ss@h1:5433,h2:5434/appdb?connect_timeout=5",
                              "postgres", &out);
    CHECK(strncmp(rewritten, "postgresql://", 13) != 0);
    CHECK_STR_EQ("postgres", parsed_value(rewritten, "dbname", value, sizeof value));
    CHECK_STR_EQ("h1,h2", parsed_value(rewritten, "host", value, sizeof value));
    CHECK_STR_EQ("5433,5434", parsed_value(rewritten, "port", value, sizeof value));
    CHECK_STR_EQ("p@ss", parsed_value(rewritten, "password", value, sizeof value));
    CHECK_STR_EQ("5", parsed_value(rewritten, "connect_timeout", value, sizeof value));
    stow_buf_free_secret(&out);
}

static void test_empty_conninfo_names_only_database(void)
{
    stow_buf out;

    stow_buf_init(&out, 4096);
    CHECK_STR_EQ("dbname='template1'", with_database("", "template1", &out));
    stow_buf_free_secret(&out);
}

static void test_unparsable_conninfo_is_usage_error(void)
{
    stow_buf out;
    stow_error err = {0};

    stow_buf_init(&out, 4096);
    CHECK_INT_EQ(-1, pgtools_conninfo_with_database("host='unterminated", "postgres", &out, &err));
    CHECK_INT_EQ(STOW_EXIT_USAGE, err.exit_code);
    CHECK_CONTAINS(err.message, "invalid connection string");
    stow_buf_free_secret(&out);
}

int main(void)
{
    unit_run("key=value keeps settings", test_key_value_keeps_settings);
    unit_run("quotes and backslashes survive", test_quotes_and_backslashes_survive);
    unit_run("URI becomes key=value", test_uri_becomes_key_value);
    unit_run("empty conninfo names only database", test_empty_conninfo_names_only_database);
    unit_run("unparsable conninfo is usage error", test_unparsable_conninfo_is_usage_error);
    return unit_finish();
}
