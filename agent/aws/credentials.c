/* The caching credentials provider, the environment source and the default
 * chain that tries every source in the AWS order. */
#include "aws/credentials.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aws/imds.h"
#include "aws/sts.h"
#include "common/log.h"

#define REFRESH_MARGIN_MAX 86400
/* Cached credentials with less than this many seconds left are not used
 * after a failed refresh. */
#define STILL_VALID_MIN 10
/* Maximum wait in seconds before a failed refresh is tried again. */
#define RETRY_AFTER_FAILURE_MAX 60

int aws_credentials_copy_field(char *out, size_t size, const char *value, const char *name,
                               const char *source, stow_error *err)
{
    size_t len = strlen(value);

    if (len >= size)
        return stow_fail(err, STOW_EXIT_USAGE, "%s from %s is too long (%zu bytes, maximum %zu)",
                         name, source, len, size - 1);
    memcpy(out, value, len + 1);
    return 0;
}

void aws_credentials_clear(struct aws_credentials *credentials)
{
    if (credentials == NULL)
        return;
    sodium_memzero(credentials, sizeof *credentials);
}

void aws_credentials_describe(const struct aws_credentials *credentials, char *out, size_t size)
{
    size_t len = strlen(credentials->access_key_id);
    char expires[64] = "";

    if (credentials->expiration != 0) {
        struct tm tm;

        gmtime_r(&credentials->expiration, &tm);
        strftime(expires, sizeof expires, ", expiring at %Y-%m-%dT%H:%M:%SZ", &tm);
    }
    if (len >= 8)
        snprintf(out, size, "%s (access key id ending %s%s)", credentials->source,
                 credentials->access_key_id + len - 4, expires);
    else
        snprintf(out, size, "%s (%s)", credentials->source,
                 expires[0] != '\0' ? expires + 2 : "long-term key");
}

int aws_credentials_from_environment(struct aws_credentials *out, stow_error *err)
{
    const char *key_id = getenv("AWS_ACCESS_KEY_ID");
    const char *secret = getenv("AWS_SECRET_ACCESS_KEY");
    const char *token = getenv("AWS_SESSION_TOKEN");

    aws_credentials_clear(out);
    if (key_id == NULL || key_id[0] == '\0')
        return 1;

    if (secret == NULL || secret[0] == '\0')
        return stow_fail(err, STOW_EXIT_STORAGE,
                         "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not");

    snprintf(out->source, sizeof out->source, "environment variables (AWS_ACCESS_KEY_ID)");
    if (aws_credentials_copy_field(out->access_key_id, sizeof out->access_key_id, key_id,
                                   "AWS_ACCESS_KEY_ID", out->source, err) != 0 ||
        aws_credentials_copy_field(out->secret_access_key, sizeof out->secret_access_key,
                                   secret, "AWS_SECRET_ACCESS_KEY", out->source, err) != 0 ||
        aws_credentials_copy_field(out->session_token, sizeof out->session_token,
                                   token ? token : "", "AWS_SESSION_TOKEN", out->source,
                                   err) != 0) {
        aws_credentials_clear(out);
        return -1;
    }
    return 0;
}

/* --- the default chain ---------------------------------------------------- */

enum chain_source {
    SOURCE_ENVIRONMENT,
    SOURCE_PROFILE,
    SOURCE_WEB_IDENTITY,
    SOURCE_CONTAINER,
    SOURCE_INSTANCE_METADATA,
    SOURCE_COUNT
};

static const char *const source_names[SOURCE_COUNT] = {
    "the environment", "the shared config and credentials files", "web identity",
    "the container credentials endpoint", "instance metadata",
};

struct chain_state {
    int source; /* the enum chain_source that supplied credentials; -1 before */
};

/* Returns 1 when source is not configured, 0 with credentials, -1 on error. */
static int load_from_source(int source, struct aws_credentials *out, stow_error *err)
{
    const char *profile = getenv("AWS_PROFILE");
    int explicit_profile = profile != NULL && profile[0] != '\0';

    switch (source) {
    case SOURCE_ENVIRONMENT:
        return aws_credentials_from_environment(out, err);
    case SOURCE_PROFILE:
        return aws_credentials_from_profile(explicit_profile ? profile : "default",
                                            explicit_profile, out, err);
    case SOURCE_WEB_IDENTITY:
        return sts_credentials_from_web_identity_env(out, err);
    case SOURCE_CONTAINER:
        return container_credentials(out, err);
    case SOURCE_INSTANCE_METADATA:
        return imds_credentials(out, err);
    default:
        return 1;
    }
}

static int fail_no_credentials(stow_error *err)
{
    stow_fail(err, STOW_EXIT_STORAGE,
              "no AWS credentials found: not in the environment, the shared config and "
              "credentials files (profile %s), web identity, container credentials%s",
              getenv("AWS_PROFILE") != NULL && getenv("AWS_PROFILE")[0] != '\0'
                  ? getenv("AWS_PROFILE")
                  : "default",
              imds_disabled() ? " (instance metadata is disabled)" : " or instance metadata");
    stow_error_hint(err, "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, set AWS_PROFILE to a "
                         "profile with credentials, or run with an IAM role (web identity, "
                         "container or instance role)");
    return -1;
}

static int refresh_default_chain(struct aws_credentials_provider *provider,
                                 struct aws_credentials *out, stow_error *err)
{
    struct chain_state *chain = provider->state;
    int rc;

    if (chain->source >= 0) {
        rc = load_from_source(chain->source, out, err);
        if (rc == 1)
            return stow_fail(err, STOW_EXIT_STORAGE,
                             "AWS credentials from %s are no longer available",
                             source_names[chain->source]);
        return rc;
    }

    for (int source = 0; source < SOURCE_COUNT; source++) {
        rc = load_from_source(source, out, err);
        if (rc == 0)
            chain->source = source;
        if (rc <= 0)
            return rc;
    }
    return fail_no_credentials(err);
}

/* --- providers ------------------------------------------------------------ */

static int refresh_static(struct aws_credentials_provider *provider,
                          struct aws_credentials *out, stow_error *err)
{
    memcpy(out, provider->state, sizeof *out);
    return 0;
}

static void free_static(void *state)
{
    aws_credentials_clear(state);
    free(state);
}

long aws_credentials_refresh_margin(void)
{
    const char *text = getenv("STOWAGE_CREDENTIALS_REFRESH_MARGIN");
    char *end = NULL;
    long value;

    if (text == NULL || text[0] == '\0')
        return AWS_CREDENTIALS_REFRESH_MARGIN;
    errno = 0;
    value = strtol(text, &end, 10);
    if (errno != 0 || *end != '\0' || value < 0 || value > REFRESH_MARGIN_MAX) {
        stow_log_warn("ignoring STOWAGE_CREDENTIALS_REFRESH_MARGIN=\"%s\" (expected whole "
                      "seconds from 0 to %d); using %d",
                      text, REFRESH_MARGIN_MAX, AWS_CREDENTIALS_REFRESH_MARGIN);
        return AWS_CREDENTIALS_REFRESH_MARGIN;
    }
    return value;
}

time_t aws_credentials_refresh_time(time_t now, time_t expiration, long margin)
{
    if (expiration - margin > now)
        return expiration - margin;
    if (expiration <= now)
        return now;
    return now + (expiration - now) / 2;
}

int aws_credentials_provider_new(aws_credentials_refresh_fn refresh, void *state,
                                 void (*free_state)(void *state),
                                 struct aws_credentials_provider **out, stow_error *err)
{
    struct aws_credentials_provider *provider = calloc(1, sizeof *provider);

    *out = NULL;
    if (provider == NULL) {
        if (free_state != NULL)
            free_state(state);
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory creating a credentials provider");
    }
    provider->refresh = refresh;
    provider->state = state;
    provider->free_state = free_state;
    provider->refresh_margin = aws_credentials_refresh_margin();
    pthread_mutex_init(&provider->lock, NULL);
    *out = provider;
    return 0;
}

int aws_credentials_provider_new_default(struct aws_credentials_provider **out,
                                         stow_error *err)
{
    struct chain_state *chain = malloc(sizeof *chain);

    *out = NULL;
    if (chain == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory creating a credentials provider");
    chain->source = -1;
    return aws_credentials_provider_new(refresh_default_chain, chain, free, out, err);
}

int aws_credentials_provider_new_static(const struct aws_credentials *credentials,
                                        struct aws_credentials_provider **out,
                                        stow_error *err)
{
    struct aws_credentials *copy = malloc(sizeof *copy);

    *out = NULL;
    if (copy == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory copying credentials");
    memcpy(copy, credentials, sizeof *copy);
    return aws_credentials_provider_new(refresh_static, copy, free_static, out, err);
}

void aws_credentials_provider_free(struct aws_credentials_provider *provider)
{
    if (provider == NULL)
        return;
    if (provider->free_state != NULL)
        provider->free_state(provider->state);
    aws_credentials_clear(&provider->current);
    pthread_mutex_destroy(&provider->lock);
    free(provider);
}

static int needs_refresh(const struct aws_credentials_provider *provider, time_t now)
{
    if (!provider->cached)
        return 1;
    if (provider->current.expiration == 0)
        return 0;
    return now >= provider->refresh_at;
}

static void log_credentials_in_use(const struct aws_credentials *credentials)
{
    char description[AWS_CREDENTIALS_SOURCE_MAX + 128];

    aws_credentials_describe(credentials, description, sizeof description);
    stow_log_detail("using AWS credentials from %s", description);
}

/* Keeps the cached credentials after a failed refresh when they are still
 * valid for a while. Returns 1 when they stay in use. */
static int keep_after_failed_refresh(struct aws_credentials_provider *provider, time_t now,
                                     const stow_error *refresh_err)
{
    time_t left = provider->current.expiration - now;
    time_t wait = left / 2 < RETRY_AFTER_FAILURE_MAX ? left / 2 : RETRY_AFTER_FAILURE_MAX;

    if (!provider->cached || left <= STILL_VALID_MIN)
        return 0;
    provider->refresh_at = now + (wait > 1 ? wait : 1);
    stow_log_warn("refreshing AWS credentials failed: %s; the current credentials from %s stay "
                  "in use for %lld more seconds, and the refresh is tried again in %lld s",
                  refresh_err->message, provider->current.source, (long long)left,
                  (long long)(provider->refresh_at - now));
    return 1;
}

/* Refreshes the cache. Called with the lock held. */
static int refresh_locked(struct aws_credentials_provider *provider, time_t now,
                          stow_error *err)
{
    struct aws_credentials fresh;
    stow_error refresh_err = {0};
    int rc;

    memset(&fresh, 0, sizeof fresh);
    rc = provider->refresh(provider, &fresh, &refresh_err);
    if (rc == 0) {
        memcpy(&provider->current, &fresh, sizeof fresh);
        provider->cached = 1;
        provider->refresh_at = fresh.expiration != 0
                                   ? aws_credentials_refresh_time(now, fresh.expiration,
                                                                  provider->refresh_margin)
                                   : 0;
        log_credentials_in_use(&fresh);
    } else if (keep_after_failed_refresh(provider, now, &refresh_err)) {
        rc = 0;
    } else {
        provider->cached = 0;
        aws_credentials_clear(&provider->current);
        if (err != NULL && !stow_error_is_set(err))
            memcpy(err, &refresh_err, sizeof refresh_err);
        rc = -1;
    }
    aws_credentials_clear(&fresh);
    return rc;
}

int aws_credentials_provider_get(struct aws_credentials_provider *provider,
                                 struct aws_credentials *out, stow_error *err)
{
    time_t now = time(NULL);
    int rc = 0;

    pthread_mutex_lock(&provider->lock);
    if (needs_refresh(provider, now))
        rc = refresh_locked(provider, now, err);
    if (rc == 0)
        memcpy(out, &provider->current, sizeof *out);
    pthread_mutex_unlock(&provider->lock);
    return rc;
}

void aws_credentials_provider_invalidate(struct aws_credentials_provider *provider)
{
    if (provider == NULL)
        return;
    pthread_mutex_lock(&provider->lock);
    if (provider->cached)
        stow_log_detail("AWS credentials from %s were rejected as expired; fetching new ones",
                        provider->current.source);
    provider->cached = 0;
    pthread_mutex_unlock(&provider->lock);
}
