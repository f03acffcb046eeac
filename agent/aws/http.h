/* HTTP for the AWS clients on libcurl's multi interface: jobs that retry
 * with backoff, an engine that runs them, and a worker thread that runs
 * several at once.
 *
 * Model. An http_job is one logical AWS call (PutObject, UploadPart). Each
 * attempt calls the job's build function, which signs and describes the
 * request afresh (new time, possibly refreshed credentials). The engine
 * sends it, then judges the outcome:
 *   - success: 2xx; 404 when accept_not_found (HTTP_RESULT_NOT_FOUND, but
 *     never for NoSuchBucket); 412 when accept_conflict (HTTP_RESULT_CONFLICT);
 *   - retry: throttling (429, 503 SlowDown, Throttling codes), other 5xx,
 *     RequestTimeout, ExpiredToken (after invalidating the cached
 *     credentials), timeouts, refused or reset connections;
 *   - failure: everything else, at once, with the service's code and message.
 * Retries wait a random time between 0 and min(backoff_max_ms,
 * backoff_base_ms * 2^(attempt-1)) ("full jitter") and are logged at warn.
 *
 * Limits. Error bodies and XML documents are kept up to body_max bytes, and
 * object data up to the max of the job's sink. A larger response fails the
 * job without a retry. Connections time out after
 * connect_timeout_ms; a transfer slower than low_speed_bytes per second for
 * low_speed_seconds is abandoned and retried.
 *
 * Threads. An engine and its jobs belong to one thread. A worker owns an
 * engine on its own thread; other threads submit jobs and wait for them.
 * A job's memory belongs to its owner, who keeps it alive and untouched
 * from submission until the job finished. */
#ifndef STOWAGE_AWS_HTTP_H
#define STOWAGE_AWS_HTTP_H

#include <curl/curl.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "aws/aws_xml.h"
#include "aws/credentials.h"
#include "common/buf.h"
#include "common/error.h"

#define HTTP_RESULT_NOT_FOUND 1
#define HTTP_RESULT_CONFLICT 2

#define HTTP_DEFAULT_MAX_ATTEMPTS 8
#define HTTP_SUBJECT_MAX 1024

struct http_settings {
    long connect_timeout_ms;  /* default 10000 */
    long low_speed_bytes;     /* default 1024 bytes per second ... */
    long low_speed_seconds;   /* ... sustained for 60 seconds */
    int max_attempts;         /* attempts per job, the first included; default 8 */
    unsigned backoff_base_ms; /* default 200 */
    unsigned backoff_max_ms;  /* default 20000 */
};

/* The request of one attempt, filled by a job's build function. */
struct http_request {
    const char *method;          /* "GET", "HEAD", "PUT", "POST", "DELETE" */
    const char *url;             /* copied by libcurl */
    struct curl_slist *headers;  /* taken over by the engine, freed after the attempt */
    const void *body;            /* borrowed until the job finishes; NULL for none */
    size_t body_len;
};

struct http_response {
    long status;
    stow_buf body;           /* body of a failure, or of a success without a sink */
    char etag[128];
    uint64_t content_length; /* valid when has_content_length */
    int has_content_length;
    uint64_t object_size;    /* SIZE of Content-Range "bytes A-B/SIZE"; valid when has_object_size */
    int has_object_size;
    time_t last_modified;    /* 0 when absent */
    char object_lock_mode[16];         /* x-amz-object-lock-mode; "" when absent */
    char object_lock_retain_until[64]; /* x-amz-object-lock-retain-until-date; "" when absent */
    char bucket_region[64];            /* x-amz-bucket-region; "" when absent */
};

struct http_job;

typedef int (*http_prepare_fn)(struct http_job *job, stow_error *err);
typedef int (*http_build_fn)(struct http_job *job, struct http_request *request,
                             stow_error *err);

struct http_job {
    /* Set by the owner (http_job_init fills defaults). */
    const char *service;             /* "S3", for messages */
    const char *operation;           /* "UploadPart", for messages */
    char subject[HTTP_SUBJECT_MAX];  /* "bucket B key K part 3 upload id U" */
    http_prepare_fn prepare;         /* optional; once, on the engine's thread */
    http_build_fn build;             /* required; every attempt */
    void *owner;                     /* for the callbacks */
    stow_buf *sink;                  /* receives a 2xx body when set; reset per attempt */
    int accept_not_found;
    int accept_conflict;
    int error_in_success_body;       /* a 200 may carry <Error> (CompleteMultipartUpload) */
    int ends_on_interrupt;           /* a read, or a part that aborting the upload undoes */
    struct aws_credentials_provider *credentials; /* invalidated on ExpiredToken; may be NULL */
    const struct http_settings *settings;

    /* Results, valid once the job finished. */
    int result;                      /* 0, HTTP_RESULT_*, or -1 with err filled */
    stow_error err;
    struct http_response response;
    struct aws_error_body error;     /* the last error body, if any */
    int attempts;

    /* Engine state. */
    const char *method;              /* HTTP method of the current attempt */
    struct http_job *next;
    CURL *easy;
    struct curl_slist *headers;
    const uint8_t *body;
    size_t body_len;
    size_t body_offset;
    stow_buf *destination;
    int prepared;
    int limit_exceeded;
    int os_errno;                    /* errno of the last failed connection, 0 if none */
    int finished;
    int before_interrupt;            /* queued before SIGINT or SIGTERM arrived */
    uint64_t due_ms;
    char curl_message[CURL_ERROR_SIZE];
};

struct http_engine;
struct http_worker;

void http_settings_default(struct http_settings *settings);

/* Prepares job with defaults; response bodies without a sink are kept up
 * to body_max bytes. */
void http_job_init(struct http_job *job, const struct http_settings *settings,
                   size_t body_max);

/* Releases the response body. Accepts NULL. The job must not be running. */
void http_job_free(struct http_job *job);

/* Copies the error of a failed job into err (unless err already contains
 * one) and returns job->result. */
int http_job_error(const struct http_job *job, stow_error *err);

/* Sets job->subject from a printf format. */
void http_job_subject(struct http_job *job, const char *fmt, ...) STOW_PRINTF(2, 3);

int http_engine_new(struct http_engine **out, stow_error *err);

/* Cancels unfinished jobs (result -1, "cancelled") and frees the engine.
 * Accepts NULL. */
void http_engine_free(struct http_engine *engine);

/* Runs job to its end on this thread and returns job->result (err is
 * filled from job->err on failure). */
int http_engine_perform(struct http_engine *engine, struct http_job *job, stow_error *err);

/* Starts a worker thread with its own engine. */
int http_worker_new(struct http_worker **out, stow_error *err);

/* Hands job to the worker; returns at once. */
void http_worker_submit(struct http_worker *worker, struct http_job *job);

/* Blocks until job finished. */
void http_worker_wait(struct http_worker *worker, struct http_job *job);

/* Blocks until fewer than limit submitted jobs are unfinished. */
void http_worker_wait_below(struct http_worker *worker, size_t limit);

/* Returns 1 when job finished (thread-safe). */
int http_worker_is_finished(struct http_worker *worker, const struct http_job *job);

/* Ends every unfinished job as cancelled, and every job submitted later,
 * within one poll of the worker. Thread-safe; the worker stays usable for
 * http_worker_wait and http_worker_free. */
void http_worker_cancel(struct http_worker *worker);

/* Stops the thread, cancels unfinished jobs and frees the worker. Accepts
 * NULL. After it returns, every submitted job has finished. */
void http_worker_free(struct http_worker *worker);

/* Records a libcurl failure of an AWS call: the message names the call,
 * subject and libcurl's reason, the hint points at the endpoint. Exit code
 * STOW_EXIT_STORAGE. Returns -1. */
int http_fail_curl(stow_error *err, const struct http_job *job, CURLcode code);

/* Returns 1 for libcurl errors that a later attempt may not repeat
 * (timeouts, refused or reset connections, partial transfers). */
int http_curl_is_retryable(CURLcode code);

/* Returns the full-jitter delay before the retry that follows attempt. */
unsigned http_backoff_ms(const struct http_settings *settings, int attempt);

#endif
