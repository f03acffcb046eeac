/* AWS credentials: the key pair (and session token) that signs requests,
 * and the provider chain that finds them.
 *
 * The default chain follows the AWS conventions, in this order:
 *   1. the environment: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and the
 *      optional AWS_SESSION_TOKEN;
 *   2. the shared credentials file: AWS_SHARED_CREDENTIALS_FILE, else
 *      ~/.aws/credentials, section AWS_PROFILE (else "default").
 * Instance metadata is not implemented and is never contacted.
 *
 * A provider caches what it found. Credentials with an expiration time are
 * refreshed through the provider's refresh function when fewer than
 * AWS_CREDENTIALS_REFRESH_MARGIN seconds remain, so that a provider for
 * temporary credentials (STS web identity, container credentials) can be
 * added as one more refresh function. aws_credentials_provider_get is
 * thread-safe; callers receive a copy and wipe it with aws_credentials_clear.
 *
 * Secrets never appear in logs or errors: messages name the source
 * ("environment", the file and profile) and at most the access key id. */
#ifndef STOWAGE_AWS_CREDENTIALS_H
#define STOWAGE_AWS_CREDENTIALS_H

#include <pthread.h>
#include <time.h>

#include "common/error.h"

#define AWS_ACCESS_KEY_ID_MAX 128
#define AWS_SECRET_ACCESS_KEY_MAX 128
#define AWS_SESSION_TOKEN_MAX 4096
#define AWS_CREDENTIALS_SOURCE_MAX 512

/* Seconds before expiration at which temporary credentials are refreshed. */
#define AWS_CREDENTIALS_REFRESH_MARGIN 300

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
    struct aws_credentials current;
};

/* Creates the default chain (environment, then shared credentials file).
 * Reads nothing yet: the first aws_credentials_provider_get does. */
int aws_credentials_provider_new_default(struct aws_credentials_provider **out,
                                         stow_error *err);

/* Creates a provider that always returns a copy of credentials (tests,
 * and credentials that the caller already has). */
int aws_credentials_provider_new_static(const struct aws_credentials *credentials,
                                        struct aws_credentials_provider **out,
                                        stow_error *err);

/* Accepts NULL. Wipes the cached secrets. */
void aws_credentials_provider_free(struct aws_credentials_provider *provider);

/* Copies the current credentials into out, refreshing them first when none
 * are cached or they expire within AWS_CREDENTIALS_REFRESH_MARGIN seconds.
 * Fails with STOW_EXIT_STORAGE when no source has credentials. */
int aws_credentials_provider_get(struct aws_credentials_provider *provider,
                                 struct aws_credentials *out, stow_error *err);

/* Drops the cached credentials so that the next get refreshes them (after
 * a service returned ExpiredToken). */
void aws_credentials_provider_invalidate(struct aws_credentials_provider *provider);

/* Reads AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN.
 * Returns 1 when AWS_ACCESS_KEY_ID is unset, 0 on success, -1 when the
 * variables are incomplete or too long. */
int aws_credentials_from_environment(struct aws_credentials *out, stow_error *err);

/* Reads section profile of the INI file at path (aws_access_key_id,
 * aws_secret_access_key, aws_session_token). Returns 1 when the file does
 * not exist, 0 on success, -1 when the file is unreadable, the profile is
 * missing or a key is missing. */
int aws_credentials_from_file(const char *path, const char *profile,
                              struct aws_credentials *out, stow_error *err);

/* Overwrites every field with zeros. Accepts NULL. */
void aws_credentials_clear(struct aws_credentials *credentials);

#endif
