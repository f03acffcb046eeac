/* AWS credentials: the key pair (and session token) that signs requests,
 * and the provider chain that finds them.
 *
 * The default chain follows the AWS SDK conventions, in this order:
 *   1. the environment: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and the
 *      optional AWS_SESSION_TOKEN;
 *   2. the profile AWS_PROFILE (else "default") of the shared config file
 *      (AWS_CONFIG_FILE, else ~/.aws/config) and the shared credentials
 *      file (AWS_SHARED_CREDENTIALS_FILE, else ~/.aws/credentials). Keys in
 *      the credentials file win over the same keys in the config file. A
 *      profile with role_arn assumes that role through STS AssumeRole,
 *      signed with the credentials of source_profile or credential_source,
 *      or through AssumeRoleWithWebIdentity with web_identity_token_file;
 *      a profile with static keys supplies them;
 *   3. web identity: AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN (and the
 *      optional AWS_ROLE_SESSION_NAME), exchanged through STS
 *      AssumeRoleWithWebIdentity (Kubernetes service accounts, IRSA);
 *   4. container credentials: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI (on
 *      169.254.170.2) or AWS_CONTAINER_CREDENTIALS_FULL_URI, with
 *      AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE or _TOKEN (ECS, EKS Pod
 *      Identity);
 *   5. the EC2 instance metadata service (IMDSv2) unless
 *      AWS_EC2_METADATA_DISABLED=true.
 * A source that is configured but fails (a profile with role_arn whose STS
 * call is rejected, an unreadable token file) ends the search with its
 * error; a source that is not configured passes to the next. The chain
 * remembers the source that supplied credentials and refreshes from that
 * source only. STS, container and instance metadata calls are in sts.h and
 * imds.h.
 *
 * Refresh. A provider caches what it found. Credentials with an expiration
 * time are refreshed once fewer than the refresh margin remain: 300
 * seconds, or STOWAGE_CREDENTIALS_REFRESH_MARGIN seconds (for tests).
 * Credentials whose whole lifetime is shorter than the margin are
 * refreshed halfway through what is left. When a refresh fails while the
 * cached credentials are still valid, they stay in use (with a warning)
 * and the refresh is tried again later. aws_credentials_provider_get is
 * thread-safe; callers receive a copy and wipe it with
 * aws_credentials_clear. The S3 client calls it for every request attempt,
 * so a long multipart upload switches to refreshed credentials between
 * parts, and the HTTP layer invalidates the cache on ExpiredToken.
 *
 * Secrets never appear in logs or errors: messages name the source (the
 * environment, the file and profile, the role ARN, the endpoint) and at
 * most the last four characters of the access key id. */
#ifndef STOWAGE_AWS_CREDENTIALS_H
#define STOWAGE_AWS_CREDENTIALS_H

#include <pthread.h>
#include <stddef.h>
#include <time.h>

#include "common/error.h"

#define AWS_ACCESS_KEY_ID_MAX 128
#define AWS_SECRET_ACCESS_KEY_MAX 128
#define AWS_SESSION_TOKEN_MAX 4096
#define AWS_CREDENTIALS_SOURCE_MAX 512

/* Default seconds before expiration at which temporary credentials are
 * refreshed. */
#define AWS_CREDENTIALS_REFRESH_MARGIN 300

/* Profiles followed through source_profile before giving up on a loop. */
#define AWS_PROFILE_CHAIN_MAX 5

struct aws_credentials {
    char access_key_id[AWS_ACCESS_KEY_ID_MAX + 1];
    char secret_access_key[AWS_SECRET_ACCESS_KEY_MAX + 1];
    char session_token[AWS_SESSION_TOKEN_MAX + 1]; /* "" for long-term keys */
    time_t expiration;                             /* 0: does not expire */
    char source[AWS_CREDENTIALS_SOURCE_MAX];       /* where they came from, for messages */
};

struct aws_credentials_provider;

/* Loads fresh credentials into out. Returns 0, or -1 with err filled. */
typedef int (*aws_credentials_refresh_fn)(struct aws_credentials_provider *provider,
                                          struct aws_credentials *out, stow_error *err);

struct aws_credentials_provider {
    aws_credentials_refresh_fn refresh;
    void *state;                        /* owned by the refresh function's module */
    void (*free_state)(void *state);    /* NULL when state needs no release */
    pthread_mutex_t lock;
    int cached;                         /* 1 once current contains credentials */
    time_t refresh_at;                  /* when current is refreshed; unused without expiration */
    long refresh_margin;                /* seconds before expiration */
    struct aws_credentials current;
};

/* Creates the default chain described above. Reads nothing yet: the first
 * aws_credentials_provider_get does. */
int aws_credentials_provider_new_default(struct aws_credentials_provider **out,
                                         stow_error *err);

/* Creates a provider that always returns a copy of credentials (tests,
 * and credentials that the caller already has). */
int aws_credentials_provider_new_static(const struct aws_credentials *credentials,
                                        struct aws_credentials_provider **out,
                                        stow_error *err);

/* Creates a provider around refresh, which owns state (released with
 * free_state, also when creation fails). */
int aws_credentials_provider_new(aws_credentials_refresh_fn refresh, void *state,
                                 void (*free_state)(void *state),
                                 struct aws_credentials_provider **out, stow_error *err);

/* Accepts NULL. Wipes the cached secrets. */
void aws_credentials_provider_free(struct aws_credentials_provider *provider);

/* Copies the current credentials into out, refreshing them first when none
 * are cached or they are due for refresh. Fails with STOW_EXIT_STORAGE when
 * no source has credentials. */
int aws_credentials_provider_get(struct aws_credentials_provider *provider,
                                 struct aws_credentials *out, stow_error *err);

/* Drops the cached credentials so that the next get refreshes them (after
 * a service returned ExpiredToken). Accepts NULL. */
void aws_credentials_provider_invalidate(struct aws_credentials_provider *provider);

/* Returns the refresh margin in seconds: STOWAGE_CREDENTIALS_REFRESH_MARGIN
 * when it is a whole number from 0 to 86400, else
 * AWS_CREDENTIALS_REFRESH_MARGIN. */
long aws_credentials_refresh_margin(void);

/* Returns the time at which credentials expiring at expiration and fetched
 * at now are refreshed: margin seconds before expiration, or halfway
 * through the remaining lifetime when that is shorter than margin. */
time_t aws_credentials_refresh_time(time_t now, time_t expiration, long margin);

/* Reads AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN.
 * Returns 1 when AWS_ACCESS_KEY_ID is unset, 0 on success, -1 when the
 * variables are incomplete or too long. */
int aws_credentials_from_environment(struct aws_credentials *out, stow_error *err);

/* Reads the static keys of section profile of the INI file at path
 * (aws_access_key_id, aws_secret_access_key, aws_session_token). Returns 1
 * when the file does not exist, 0 on success, -1 when the file is
 * unreadable, the profile is missing or a key is missing. */
int aws_credentials_from_file(const char *path, const char *profile,
                              struct aws_credentials *out, stow_error *err);

/* Resolves profile from the shared config and credentials files: static
 * keys, or a role assumed through STS (role_arn with source_profile,
 * credential_source or web_identity_token_file). Returns 1 when neither
 * file has the profile or the profile names no credentials, 0 on success,
 * -1 on error. A profile that was named explicitly (AWS_PROFILE) and is
 * missing from both files is an error. */
int aws_credentials_from_profile(const char *profile, int explicit_profile,
                                 struct aws_credentials *out, stow_error *err);

/* Writes the path of the shared config file (AWS_CONFIG_FILE, else
 * ~/.aws/config) or of the shared credentials file
 * (AWS_SHARED_CREDENTIALS_FILE, else ~/.aws/credentials). */
int aws_config_file_path(char *out, size_t size, stow_error *err);
int aws_shared_credentials_file_path(char *out, size_t size, stow_error *err);

/* Copies the value of key in the profile's section of the shared config
 * file ("[profile NAME]", or "[default]") into out. Returns 1 when absent,
 * 0 when found, -1 on a read error. For settings such as region. */
int aws_config_profile_value(const char *profile, const char *key, char *out, size_t size,
                             stow_error *err);

/* Writes a description safe to print: the source and the last four
 * characters of the access key id ("... (access key id ending ABCD)"). */
void aws_credentials_describe(const struct aws_credentials *credentials, char *out,
                              size_t size);

/* Copies value into a credentials field of size bytes, naming the field
 * and source when it does not fit (STOW_EXIT_USAGE). For the source
 * modules. */
int aws_credentials_copy_field(char *out, size_t size, const char *value, const char *name,
                               const char *source, stow_error *err);

/* Overwrites every field with zeros. Accepts NULL. */
void aws_credentials_clear(struct aws_credentials *credentials);

#endif
