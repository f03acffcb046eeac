/* RDS IAM database authentication for the connections of one connection
 * string (--db-iam-auth): every connection, and every child process, gets
 * a freshly signed token as its password. */
#include "pg/pgtools.h"

#include <arpa/inet.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "aws/aws_env.h"
#include "aws/rds_auth.h"
#include "common/log.h"

#define IAM_FIELD_MAX 256

/* The connection string that IAM authentication applies to, and what the
 * token is signed for. Set once by the command, before any thread starts. */
static struct {
    int enabled;
    char *conninfo;     /* NULL: the PG* variables alone */
    char host[IAM_FIELD_MAX];
    char port[16];
    char user[IAM_FIELD_MAX];
    char region[64];
    struct aws_credentials_provider *provider;
    char *aliases[PGTOOLS_IAM_ALIASES_MAX]; /* pgtools_iam_auth_add_alias */
    size_t alias_count;
} iam;

/* Returns the value of keyword in options, or NULL when unset or empty. */
static const char *option_value(PQconninfoOption *options, const char *keyword)
{
    for (PQconninfoOption *option = options; option != NULL && option->keyword != NULL;
         option++) {
        if (strcmp(option->keyword, keyword) == 0)
            return option->val != NULL && option->val[0] != '\0' ? option->val : NULL;
    }
    return NULL;
}

/* Returns the connection string's value of keyword, else its PG* variable
 * or libpq's compiled-in default. */
static const char *setting(PQconninfoOption *parsed, PQconninfoOption *defaults,
                           const char *keyword)
{
    const char *value = option_value(parsed, keyword);

    return value != NULL ? value : option_value(defaults, keyword);
}

int pgtools_host_is_loopback(const char *host)
{
    struct in_addr v4;
    struct in6_addr v6;

    if (strcasecmp(host, "localhost") == 0)
        return 1;
    if (inet_pton(AF_INET, host, &v4) == 1)
        return (ntohl(v4.s_addr) >> 24) == 127;
    return inet_pton(AF_INET6, host, &v6) == 1 && IN6_IS_ADDR_LOOPBACK(&v6);
}

static int check_host(const char *host, const char *port, stow_error *err)
{
    if (host == NULL || host[0] == '/' || host[0] == '@') {
        stow_fail(err, STOW_EXIT_USAGE, "--db-iam-auth needs a TCP host name, and the "
                                        "connection string gives %s%s%s",
                  host != NULL ? "the socket directory \"" : "no host", host ? host : "",
                  host ? "\"" : "");
        stow_error_hint(err, "name the RDS endpoint: host=NAME.ID.REGION.rds.amazonaws.com");
        return -1;
    }
    if (strchr(host, ',') != NULL || strchr(port, ',') != NULL) {
        stow_fail(err, STOW_EXIT_USAGE, "--db-iam-auth signs a token for one host, and the "
                                        "connection string lists several: \"%s\"", host);
        stow_error_hint(err, "give one host and port");
        return -1;
    }
    if (strlen(host) >= sizeof iam.host || strlen(port) >= sizeof iam.port)
        return stow_fail(err, STOW_EXIT_USAGE, "database host or port is too long for "
                                               "--db-iam-auth: %s", host);
    return 0;
}

/* RDS accepts IAM tokens only over TLS, and a token sent in clear text could
 * be replayed for 15 minutes. A loopback host (a tunnel, a test) is exempt. */
static int check_sslmode(const char *host, const char *sslmode, stow_error *err)
{
    static const char *const secure[] = {"require", "verify-ca", "verify-full"};

    for (size_t i = 0; i < sizeof secure / sizeof secure[0]; i++) {
        if (strcmp(sslmode, secure[i]) == 0)
            return 0;
    }
    if (pgtools_host_is_loopback(host))
        return 0;
    stow_fail(err, STOW_EXIT_USAGE, "--db-iam-auth needs TLS, and sslmode is \"%s\" for "
                                    "host %s: RDS accepts IAM tokens only over TLS, and this "
                                    "mode could send the token in clear text", sslmode, host);
    stow_error_hint(err, "add sslmode=verify-full sslrootcert=PATH (the RDS CA bundle) to the "
                         "connection string, or set PGSSLMODE=require");
    return -1;
}

static int resolve_user(const char *user, stow_error *err)
{
    struct passwd *entry;

    if (user == NULL) {
        entry = getpwuid(geteuid());
        user = entry != NULL ? entry->pw_name : NULL;
    }
    if (user == NULL || strlen(user) >= sizeof iam.user)
        return stow_fail(err, STOW_EXIT_USAGE, "--db-iam-auth needs the database user name: "
                                               "give user=NAME in the connection string");
    snprintf(iam.user, sizeof iam.user, "%s", user);
    return 0;
}

static int resolve_target(PQconninfoOption *parsed, PQconninfoOption *defaults, stow_error *err)
{
    const char *host = setting(parsed, defaults, "host");
    const char *port = setting(parsed, defaults, "port");
    const char *sslmode = setting(parsed, defaults, "sslmode");

    if (host == NULL)
        host = setting(parsed, defaults, "hostaddr");
    if (port == NULL)
        port = "5432";
    if (sslmode == NULL)
        sslmode = "prefer";
    if (check_host(host, port, err) != 0 || check_sslmode(host, sslmode, err) != 0 ||
        resolve_user(setting(parsed, defaults, "user"), err) != 0)
        return -1;

    snprintf(iam.host, sizeof iam.host, "%s", host);
    snprintf(iam.port, sizeof iam.port, "%s", port);
    if (rds_auth_region_of_host(host, iam.region, sizeof iam.region) != 0)
        snprintf(iam.region, sizeof iam.region, "%s", aws_default_region());
    return 0;
}

int pgtools_iam_auth_enable(const char *conninfo, struct aws_credentials_provider *provider,
                            stow_error *err)
{
    PQconninfoOption *parsed = NULL;
    PQconninfoOption *defaults = PQconndefaults();
    char *parse_error = NULL;
    int rc = -1;

    pgtools_iam_auth_disable();
    parsed = PQconninfoParse(conninfo != NULL ? conninfo : "", &parse_error);
    if (parsed == NULL || defaults == NULL) {
        stow_fail(err, STOW_EXIT_USAGE, "invalid connection string: %s",
                  parse_error != NULL ? parse_error : "out of memory");
        goto done;
    }
    if (resolve_target(parsed, defaults, err) != 0)
        goto done;
    iam.conninfo = conninfo != NULL ? strdup(conninfo) : NULL;
    if (conninfo != NULL && iam.conninfo == NULL) {
        stow_fail(err, STOW_EXIT_FAILURE, "out of memory");
        goto done;
    }
    iam.provider = provider;
    provider = NULL;
    iam.enabled = 1;
    stow_log_detail("database connections to %s port %s as %s use RDS IAM tokens for %s",
                    iam.host, iam.port, iam.user, iam.region);
    rc = 0;

done:
    aws_credentials_provider_free(provider);
    PQconninfoFree(parsed);
    PQconninfoFree(defaults);
    PQfreemem(parse_error);
    return rc;
}

int pgtools_iam_auth_add_alias(const char *conninfo, stow_error *err)
{
    if (!iam.enabled)
        return 0;
    for (size_t i = 0; i < iam.alias_count; i++) {
        if (strcmp(iam.aliases[i], conninfo) == 0)
            return 0;
    }
    if (iam.alias_count == PGTOOLS_IAM_ALIASES_MAX)
        return stow_fail(err, STOW_EXIT_FAILURE, "too many connection strings for --db-iam-auth");
    iam.aliases[iam.alias_count] = strdup(conninfo);
    if (iam.aliases[iam.alias_count] == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory");
    iam.alias_count++;
    return 0;
}

int pgtools_iam_applies(const char *conninfo)
{
    if (!iam.enabled)
        return 0;
    if (conninfo == NULL || iam.conninfo == NULL)
        return conninfo == iam.conninfo;
    if (strcmp(conninfo, iam.conninfo) == 0)
        return 1;
    for (size_t i = 0; i < iam.alias_count; i++) {
        if (strcmp(conninfo, iam.aliases[i]) == 0)
            return 1;
    }
    return 0;
}

void pgtools_iam_auth_disable(void)
{
    for (size_t i = 0; i < iam.alias_count; i++)
        free(iam.aliases[i]);
    free(iam.conninfo);
    aws_credentials_provider_free(iam.provider);
    memset(&iam, 0, sizeof iam);
}

int pgtools_iam_password(const char *conninfo, stow_buf *password, stow_error *err)
{
    struct aws_credentials credentials;
    int rc;

    if (!pgtools_iam_applies(conninfo))
        return 1;

    memset(&credentials, 0, sizeof credentials);
    rc = aws_credentials_provider_get(iam.provider, &credentials, err);
    if (rc == 0)
        rc = rds_auth_token(&credentials, iam.region, iam.host, iam.port, iam.user,
                            time(NULL), password, err);
    aws_credentials_clear(&credentials);
    if (rc != 0)
        stow_error_prefix(err, "creating the RDS IAM authentication token failed");
    return rc;
}
