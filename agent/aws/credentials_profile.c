/* Profiles of the shared config and credentials files: static keys, and
 * roles assumed through STS with source_profile, credential_source or
 * web_identity_token_file. */
#include "aws/credentials.h"

#include <errno.h>
#include <sodium.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aws/imds.h"
#include "aws/sts.h"

#define INI_LINE_MAX 8192
#define PROFILE_PATH_MAX 4096
#define PROFILE_NAME_MAX 256

/* The settings of one profile that matter for credentials, merged from
 * both files (the credentials file wins). */
struct profile {
    char name[PROFILE_NAME_MAX];
    int found;
    char config_path[PROFILE_PATH_MAX];
    char credentials_path[PROFILE_PATH_MAX];
    const char *keys_path;  /* the file that supplied aws_access_key_id */
    char access_key_id[AWS_ACCESS_KEY_ID_MAX + 1];
    char secret_access_key[AWS_SECRET_ACCESS_KEY_MAX + 1];
    char session_token[AWS_SESSION_TOKEN_MAX + 1];
    char role_arn[2048];
    char source_profile[PROFILE_NAME_MAX];
    char credential_source[64];
    char web_identity_token_file[PROFILE_PATH_MAX];
    char role_session_name[STS_ROLE_SESSION_NAME_MAX + 1];
    char external_id[1280];
    char duration_seconds[16];
    char region[64];
    char unsupported[64];   /* the first setting that stowage cannot act on */
};

struct profile_key {
    const char *name;
    size_t offset;
    size_t size;
};

#define PROFILE_KEY(key, field) {key, offsetof(struct profile, field), sizeof(((struct profile *)0)->field)}

static const struct profile_key profile_keys[] = {
    PROFILE_KEY("aws_access_key_id", access_key_id),
    PROFILE_KEY("aws_secret_access_key", secret_access_key),
    PROFILE_KEY("aws_session_token", session_token),
    PROFILE_KEY("role_arn", role_arn),
    PROFILE_KEY("source_profile", source_profile),
    PROFILE_KEY("credential_source", credential_source),
    PROFILE_KEY("web_identity_token_file", web_identity_token_file),
    PROFILE_KEY("role_session_name", role_session_name),
    PROFILE_KEY("external_id", external_id),
    PROFILE_KEY("duration_seconds", duration_seconds),
    PROFILE_KEY("region", region),
};

/* Settings that name a credential source stowage does not implement. A
 * profile with one of them fails instead of passing to the next source. */
static const char *const unsupported_keys[] = {
    "credential_process", "sso_session", "sso_start_url", "mfa_serial",
};

/* --- file paths ----------------------------------------------------------- */

static int home_file_path(const char *variable, const char *relative, char *out, size_t size,
                          stow_error *err)
{
    const char *path = getenv(variable);
    const char *home = getenv("HOME");
    int written;

    if (path != NULL && path[0] != '\0')
        written = snprintf(out, size, "%s", path);
    else
        written = snprintf(out, size, "%s/%s", home ? home : "", relative);
    if (written < 0 || (size_t)written >= size)
        return stow_fail(err, STOW_EXIT_USAGE, "the path in %s is too long", variable);
    return 0;
}

int aws_config_file_path(char *out, size_t size, stow_error *err)
{
    return home_file_path("AWS_CONFIG_FILE", ".aws/config", out, size, err);
}

int aws_shared_credentials_file_path(char *out, size_t size, stow_error *err)
{
    return home_file_path("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials", out, size, err);
}

/* --- INI reading ---------------------------------------------------------- */

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
 * section header, -1 when line is not a section header. In the config file
 * a profile's section is "[profile NAME]", and "[default]" for the default
 * profile. In the credentials file it is "[NAME]". */
static int match_section(char *line, const char *profile, int config_file)
{
    size_t len = strlen(line);
    char *name;

    if (len < 2 || line[0] != '[' || line[len - 1] != ']')
        return -1;
    line[len - 1] = '\0';
    name = trim(line + 1);
    if (config_file && strncmp(name, "profile", 7) == 0 && (name[7] == ' ' || name[7] == '\t'))
        return strcmp(trim(name + 8), profile) == 0 ? 1 : 0;
    if (config_file && strcmp(profile, "default") != 0)
        return 0;
    return strcmp(name, profile) == 0 ? 1 : 0;
}

typedef int (*ini_value_fn)(const char *name, const char *value, void *context,
                            stow_error *err);

/* Calls fn for every "name = value" line in the section of profile. A
 * line indented deeper than the key before it continues that key's value
 * (nested settings such as "s3 =", as Python's configparser reads them)
 * and is skipped. Returns 1 when the file does not exist, 0 when
 * it was read (*found is 1 when the section exists), -1 on error. */
static int read_ini_section(const char *path, const char *profile, int config_file,
                            ini_value_fn fn, void *context, int *found, stow_error *err)
{
    char line[INI_LINE_MAX];
    FILE *file = fopen(path, "r");
    int in_profile = 0;
    long key_indent = -1; /* indentation of the last key line; -1 after a header */
    int rc = 0;

    *found = 0;
    if (file == NULL && (errno == ENOENT || errno == ENOTDIR))
        return 1;
    if (file == NULL)
        return stow_fail_errno(err, STOW_EXIT_STORAGE, errno, "reading AWS profile file", path);

    while (rc == 0 && fgets(line, sizeof line, file) != NULL) {
        long indent = (long)strspn(line, " \t");
        char *text = trim(line);
        char *equals;
        int section;

        if (text[0] == '\0' || text[0] == '#' || text[0] == ';')
            continue;
        section = match_section(text, profile, config_file);
        if (section >= 0) {
            in_profile = section;
            *found |= section;
            key_indent = -1;
            continue;
        }
        if (key_indent >= 0 && indent > key_indent)
            continue;
        key_indent = indent;
        equals = strchr(text, '=');
        if (!in_profile || equals == NULL)
            continue;
        *equals = '\0';
        rc = fn(trim(text), trim(equals + 1), context, err);
    }
    sodium_memzero(line, sizeof line);
    fclose(file);
    return rc;
}

struct profile_reading {
    struct profile *profile;
    const char *path;
};

static int store_profile_value(const char *name, const char *value, void *context,
                               stow_error *err)
{
    struct profile_reading *reading = context;
    struct profile *profile = reading->profile;
    char source[PROFILE_PATH_MAX + PROFILE_NAME_MAX + 16];

    for (size_t i = 0; i < sizeof unsupported_keys / sizeof unsupported_keys[0]; i++) {
        if (strcmp(name, unsupported_keys[i]) == 0 && profile->unsupported[0] == '\0')
            snprintf(profile->unsupported, sizeof profile->unsupported, "%s", name);
    }
    for (size_t i = 0; i < sizeof profile_keys / sizeof profile_keys[0]; i++) {
        const struct profile_key *key = &profile_keys[i];

        if (strcmp(name, key->name) != 0)
            continue;
        if (strcmp(name, "aws_access_key_id") == 0)
            profile->keys_path = reading->path;
        snprintf(source, sizeof source, "%s, profile %s", reading->path, profile->name);
        return aws_credentials_copy_field((char *)profile + key->offset, key->size, value, name,
                                          source, err);
    }
    return 0;
}

static void profile_free(struct profile *profile)
{
    if (profile == NULL)
        return;
    sodium_memzero(profile, sizeof *profile);
    free(profile);
}

/* Reads the settings of name from the config file, then the credentials
 * file, into a new profile. */
static int profile_load(const char *name, struct profile **out, stow_error *err)
{
    struct profile *profile = calloc(1, sizeof *profile);
    struct profile_reading reading = {profile, NULL};
    int found = 0;

    *out = NULL;
    if (profile == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory reading AWS profile %s", name);
    if (strlen(name) >= sizeof profile->name) {
        profile_free(profile);
        return stow_fail(err, STOW_EXIT_USAGE, "AWS profile name \"%.40s...\" is too long", name);
    }
    memcpy(profile->name, name, strlen(name) + 1);

    if (aws_config_file_path(profile->config_path, sizeof profile->config_path, err) != 0 ||
        aws_shared_credentials_file_path(profile->credentials_path,
                                         sizeof profile->credentials_path, err) != 0)
        goto fail;

    reading.path = profile->config_path;
    if (read_ini_section(profile->config_path, name, 1, store_profile_value, &reading, &found,
                         err) < 0)
        goto fail;
    profile->found = found;
    reading.path = profile->credentials_path;
    if (read_ini_section(profile->credentials_path, name, 0, store_profile_value, &reading,
                         &found, err) < 0)
        goto fail;
    profile->found |= found;
    *out = profile;
    return 0;

fail:
    profile_free(profile);
    return -1;
}

/* --- resolution ----------------------------------------------------------- */

static int resolve_profile(const char *name, int explicit_profile, int depth,
                           struct aws_credentials *out, stow_error *err);

static int static_keys(const struct profile *profile, struct aws_credentials *out,
                       stow_error *err)
{
    const char *path = profile->keys_path != NULL ? profile->keys_path : profile->config_path;

    if (profile->secret_access_key[0] == '\0')
        return stow_fail(err, STOW_EXIT_STORAGE,
                         "profile %s in %s has aws_access_key_id but no aws_secret_access_key",
                         profile->name, path);
    memcpy(out->access_key_id, profile->access_key_id, sizeof out->access_key_id);
    memcpy(out->secret_access_key, profile->secret_access_key, sizeof out->secret_access_key);
    memcpy(out->session_token, profile->session_token, sizeof out->session_token);
    out->expiration = 0;
    /* A path too long for the source is cut: the text is only for messages. */
    if (snprintf(out->source, sizeof out->source, "%s, profile %s", path, profile->name) < 0)
        out->source[0] = '\0';
    return 0;
}

/* Finds the credentials that sign AssumeRole for profile. */
static int role_source_credentials(const struct profile *profile, int depth,
                                   struct aws_credentials *out, stow_error *err)
{
    const char *source = profile->credential_source;
    int rc;

    if (profile->source_profile[0] != '\0') {
        /* A profile may assume its role with its own keys. */
        if (strcmp(profile->source_profile, profile->name) == 0 &&
            profile->access_key_id[0] == '\0') {
            stow_fail(err, STOW_EXIT_USAGE,
                      "profile %s in %s names itself as source_profile but has no "
                      "aws_access_key_id and aws_secret_access_key",
                      profile->name, profile->config_path);
            stow_error_hint(err, "add the keys to the profile, or name a source_profile that "
                                 "has them");
            return -1;
        }
        if (strcmp(profile->source_profile, profile->name) == 0)
            return static_keys(profile, out, err);
        if (depth + 1 >= AWS_PROFILE_CHAIN_MAX)
            return stow_fail(err, STOW_EXIT_USAGE,
                             "profile %s: the source_profile chain is longer than %d profiles "
                             "or contains a loop",
                             profile->name, AWS_PROFILE_CHAIN_MAX);
        rc = resolve_profile(profile->source_profile, 1, depth + 1, out, err);
    } else if (strcmp(source, "Environment") == 0) {
        rc = aws_credentials_from_environment(out, err);
    } else if (strcmp(source, "EcsContainer") == 0) {
        rc = container_credentials(out, err);
    } else if (strcmp(source, "Ec2InstanceMetadata") == 0) {
        rc = imds_credentials(out, err);
    } else if (source[0] != '\0') {
        return stow_fail(err, STOW_EXIT_USAGE,
                         "profile %s has credential_source = %s; use Environment, EcsContainer "
                         "or Ec2InstanceMetadata",
                         profile->name, source);
    } else {
        return stow_fail(err, STOW_EXIT_USAGE,
                         "profile %s has role_arn but no source_profile, credential_source or "
                         "web_identity_token_file",
                         profile->name);
    }
    if (rc == 1)
        return stow_fail(err, STOW_EXIT_STORAGE,
                         "profile %s: its %s %s supplies no credentials", profile->name,
                         profile->source_profile[0] ? "source_profile" : "credential_source",
                         profile->source_profile[0] ? profile->source_profile : source);
    return rc;
}

/* Returns the region for STS: the environment's, else the profile's. */
static const char *role_region(const struct profile *profile)
{
    const char *region = getenv("AWS_REGION");

    if (region == NULL || region[0] == '\0')
        region = getenv("AWS_DEFAULT_REGION");
    if (region == NULL || region[0] == '\0')
        region = profile->region[0] != '\0' ? profile->region : NULL;
    return region;
}

static int assume_profile_role(const struct profile *profile, int depth,
                               struct aws_credentials *out, stow_error *err)
{
    struct aws_credentials source;
    char description[PROFILE_NAME_MAX + 16];
    struct sts_role_request request = {
        .role_arn = profile->role_arn,
        .session_name = profile->role_session_name[0] ? profile->role_session_name : NULL,
        .external_id = profile->external_id[0] ? profile->external_id : NULL,
        .region = role_region(profile),
        .source = description,
    };
    char *end = NULL;
    int rc;

    snprintf(description, sizeof description, "profile %s", profile->name);
    if (profile->duration_seconds[0] != '\0') {
        long duration = strtol(profile->duration_seconds, &end, 10);

        if (*end != '\0' || duration < 900 || duration > 43200)
            return stow_fail(err, STOW_EXIT_USAGE,
                             "profile %s has duration_seconds = %s; use 900 to 43200",
                             profile->name, profile->duration_seconds);
        request.duration_seconds = (int)duration;
    }

    if (profile->web_identity_token_file[0] != '\0')
        return sts_credentials_from_token_file(&request, profile->web_identity_token_file, out,
                                               err);

    memset(&source, 0, sizeof source);
    rc = role_source_credentials(profile, depth, &source, err);
    if (rc == 0)
        rc = sts_assume_role(&request, &source, out, err);
    aws_credentials_clear(&source);
    return rc;
}

static int resolve_profile(const char *name, int explicit_profile, int depth,
                           struct aws_credentials *out, stow_error *err)
{
    struct profile *profile = NULL;
    int rc;

    aws_credentials_clear(out);
    if (profile_load(name, &profile, err) != 0)
        return -1;

    if (!profile->found && explicit_profile) {
        stow_fail(err, STOW_EXIT_STORAGE,
                  "AWS credentials file %s has no profile %s, and the config file %s has none "
                  "either",
                  profile->credentials_path, name, profile->config_path);
        stow_error_hint(err, "fix AWS_PROFILE or the source_profile setting, or add the profile");
        rc = -1;
    } else if (!profile->found) {
        rc = 1;
    } else if (profile->unsupported[0] != '\0') {
        rc = stow_fail(err, STOW_EXIT_USAGE,
                       "AWS profile %s uses %s, which stowage does not support", name,
                       profile->unsupported);
        stow_error_hint(err, "use static keys, role_arn with source_profile, or web identity");
    } else if (profile->role_arn[0] != '\0') {
        rc = assume_profile_role(profile, depth, out, err);
    } else if (profile->access_key_id[0] != '\0') {
        rc = static_keys(profile, out, err);
    } else {
        rc = 1;
    }
    profile_free(profile);
    if (rc != 0)
        aws_credentials_clear(out);
    return rc;
}

int aws_credentials_from_profile(const char *profile, int explicit_profile,
                                 struct aws_credentials *out, stow_error *err)
{
    return resolve_profile(profile, explicit_profile, 0, out, err);
}

int aws_credentials_from_file(const char *path, const char *profile,
                              struct aws_credentials *out, stow_error *err)
{
    struct profile *settings = calloc(1, sizeof *settings);
    struct profile_reading reading = {settings, path};
    int found = 0;
    int rc;

    aws_credentials_clear(out);
    if (settings == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory reading %s", path);
    snprintf(settings->name, sizeof settings->name, "%s", profile);

    rc = read_ini_section(path, profile, 0, store_profile_value, &reading, &found, err);
    if (rc == 0 && !found)
        rc = stow_fail(err, STOW_EXIT_STORAGE, "AWS credentials file %s has no profile %s", path,
                       profile);
    else if (rc == 0 && settings->access_key_id[0] == '\0')
        rc = stow_fail(err, STOW_EXIT_STORAGE,
                       "profile %s in %s lacks aws_access_key_id or aws_secret_access_key",
                       profile, path);
    else if (rc == 0)
        rc = static_keys(settings, out, err);
    profile_free(settings);
    if (rc < 0)
        aws_credentials_clear(out);
    return rc;
}

struct single_value {
    const char *key;
    char *out;
    size_t size;
    int found;
};

static int store_single_value(const char *name, const char *value, void *context,
                              stow_error *err)
{
    struct single_value *wanted = context;

    if (strcmp(name, wanted->key) == 0) {
        snprintf(wanted->out, wanted->size, "%s", value);
        wanted->found = 1;
    }
    return 0;
}

int aws_config_profile_value(const char *profile, const char *key, char *out, size_t size,
                             stow_error *err)
{
    char path[PROFILE_PATH_MAX];
    struct single_value wanted = {key, out, size, 0};
    int found = 0;
    int rc;

    out[0] = '\0';
    if (aws_config_file_path(path, sizeof path, err) != 0)
        return -1;
    rc = read_ini_section(path, profile, 1, store_single_value, &wanted, &found, err);
    if (rc < 0)
        return -1;
    return wanted.found ? 0 : 1;
}
