/* AWS credential sources (environment, shared credentials file) and the
 * caching provider that refreshes them. */
#include "aws/credentials.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define INI_LINE_MAX 8192

static int copy_field(char *out, size_t size, const char *value, const char *name,
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

    snprintf(out->source, sizeof out->source, "the environment (AWS_ACCESS_KEY_ID)");
    if (copy_field(out->access_key_id, sizeof out->access_key_id, key_id, "AWS_ACCESS_KEY_ID",
                   out->source, err) != 0 ||
        copy_field(out->secret_access_key, sizeof out->secret_access_key, secret,
                   "AWS_SECRET_ACCESS_KEY", out->source, err) != 0 ||
        copy_field(out->session_token, sizeof out->session_token, token ? token : "",
                   "AWS_SESSION_TOKEN", out->source, err) != 0) {
        aws_credentials_clear(out);
        return -1;
    }
    return 0;
}

/* Strips leading and trailing blanks in place and returns the start. */
static char *trim(char *text)
{
    char *end;

    while (*text == ' ' || *text == '\t')
        text++;
    end = text + strlen(text);
    while (end > text && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r' ||
                          end[-1] == '\n'))
        end--;
    *end = '\0';
    return text;
}

/* Returns 1 when line is a section header naming profile, 0 for another
 * section header, -1 when line is not a section header. */
static int match_section(char *line, const char *profile)
{
    size_t len = strlen(line);

    if (len < 2 || line[0] != '[' || line[len - 1] != ']')
        return -1;
    line[len - 1] = '\0';
    return strcmp(trim(line + 1), profile) == 0 ? 1 : 0;
}

/* Stores one "name = value" line of the selected profile. */
static int store_ini_value(char *line, struct aws_credentials *out, stow_error *err)
{
    char *equals = strchr(line, '=');
    char *name;
    char *value;

    if (equals == NULL)
        return 0;
    *equals = '\0';
    name = trim(line);
    value = trim(equals + 1);

    if (strcmp(name, "aws_access_key_id") == 0)
        return copy_field(out->access_key_id, sizeof out->access_key_id, value, name,
                          out->source, err);
    if (strcmp(name, "aws_secret_access_key") == 0)
        return copy_field(out->secret_access_key, sizeof out->secret_access_key, value, name,
                          out->source, err);
    if (strcmp(name, "aws_session_token") == 0)
        return copy_field(out->session_token, sizeof out->session_token, value, name,
                          out->source, err);
    return 0;
}

/* Reads the lines of file into out while they belong to profile. Returns
 * 1 when the profile's section was found, 0 when not, -1 on error. */
static int read_profile(FILE *file, const char *profile, struct aws_credentials *out,
                        stow_error *err)
{
    char line[INI_LINE_MAX];
    int in_profile = 0;
    int found = 0;
    int rc = 0;

    while (rc == 0 && fgets(line, sizeof line, file) != NULL) {
        char *text = trim(line);
        int section;

        if (text[0] == '\0' || text[0] == '#' || text[0] == ';')
            continue;

        section = match_section(text, profile);
        if (section >= 0) {
            in_profile = section;
            found |= section;
            continue;
        }
        if (in_profile)
            rc = store_ini_value(text, out, err);
    }
    sodium_memzero(line, sizeof line);
    return rc != 0 ? -1 : found;
}

int aws_credentials_from_file(const char *path, const char *profile,
                              struct aws_credentials *out, stow_error *err)
{
    FILE *file;
    int found;

    aws_credentials_clear(out);
    file = fopen(path, "r");
    if (file == NULL && errno == ENOENT)
        return 1;
    if (file == NULL)
        return stow_fail_errno(err, STOW_EXIT_STORAGE, errno, "reading AWS credentials file",
                               path);

    snprintf(out->source, sizeof out->source, "%s, profile %s", path, profile);
    found = read_profile(file, profile, out, err);
    fclose(file);

    if (found < 0) {
        aws_credentials_clear(out);
        return -1;
    }
    if (found == 0)
        return stow_fail(err, STOW_EXIT_STORAGE, "AWS credentials file %s has no profile %s",
                         path, profile);
    if (out->access_key_id[0] == '\0' || out->secret_access_key[0] == '\0') {
        stow_fail(err, STOW_EXIT_STORAGE,
                  "profile %s in %s lacks aws_access_key_id or aws_secret_access_key", profile,
                  path);
        aws_credentials_clear(out);
        return -1;
    }
    return 0;
}

/* Returns the shared credentials file path in out. */
static int shared_file_path(char *out, size_t size, stow_error *err)
{
    const char *path = getenv("AWS_SHARED_CREDENTIALS_FILE");
    const char *home = getenv("HOME");
    int written;

    if (path != NULL && path[0] != '\0')
        written = snprintf(out, size, "%s", path);
    else
        written = snprintf(out, size, "%s/.aws/credentials", home ? home : "");
    if (written < 0 || (size_t)written >= size)
        return stow_fail(err, STOW_EXIT_USAGE, "AWS shared credentials file path is too long");
    return 0;
}

static int refresh_default_chain(struct aws_credentials_provider *provider,
                                 struct aws_credentials *out, stow_error *err)
{
    char path[4096];
    const char *profile = getenv("AWS_PROFILE");
    int rc;

    rc = aws_credentials_from_environment(out, err);
    if (rc <= 0)
        return rc;

    if (profile == NULL || profile[0] == '\0')
        profile = "default";
    if (shared_file_path(path, sizeof path, err) != 0)
        return -1;
    rc = aws_credentials_from_file(path, profile, out, err);
    if (rc <= 0)
        return rc;

    stow_fail(err, STOW_EXIT_STORAGE,
              "no AWS credentials found: AWS_ACCESS_KEY_ID is not set and %s does not exist",
              path);
    stow_error_hint(err, "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or write profile %s "
                         "to the shared credentials file",
                    profile);
    return -1;
}

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

static int provider_new(aws_credentials_refresh_fn refresh, void *state,
                        void (*free_state)(void *), struct aws_credentials_provider **out,
                        stow_error *err)
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
    pthread_mutex_init(&provider->lock, NULL);
    *out = provider;
    return 0;
}

int aws_credentials_provider_new_default(struct aws_credentials_provider **out,
                                         stow_error *err)
{
    return provider_new(refresh_default_chain, NULL, NULL, out, err);
}

int aws_credentials_provider_new_static(const struct aws_credentials *credentials,
                                        struct aws_credentials_provider **out,
                                        stow_error *err)
{
    struct aws_credentials *copy = malloc(sizeof *copy);

    if (copy == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory copying credentials");
    memcpy(copy, credentials, sizeof *copy);
    return provider_new(refresh_static, copy, free_static, out, err);
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

static int needs_refresh(const struct aws_credentials_provider *provider)
{
    if (!provider->cached)
        return 1;
    if (provider->current.expiration == 0)
        return 0;
    return time(NULL) + AWS_CREDENTIALS_REFRESH_MARGIN >= provider->current.expiration;
}

int aws_credentials_provider_get(struct aws_credentials_provider *provider,
                                 struct aws_credentials *out, stow_error *err)
{
    int rc = 0;

    pthread_mutex_lock(&provider->lock);
    if (needs_refresh(provider)) {
        provider->cached = 0;
        rc = provider->refresh(provider, &provider->current, err);
        provider->cached = rc == 0;
    }
    if (rc == 0)
        memcpy(out, &provider->current, sizeof *out);
    pthread_mutex_unlock(&provider->lock);
    return rc == 0 ? 0 : -1;
}

void aws_credentials_provider_invalidate(struct aws_credentials_provider *provider)
{
    if (provider == NULL)
        return;
    pthread_mutex_lock(&provider->lock);
    provider->cached = 0;
    pthread_mutex_unlock(&provider->lock);
}
