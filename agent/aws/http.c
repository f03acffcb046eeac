/* Retrying HTTP jobs on libcurl's multi interface, the engine that runs
 * them on one thread, and the worker thread that runs an engine. */
#include "aws/http.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/interrupt.h"
#include "common/log.h"
#include "common/metrics.h"

#define HTTP_USER_AGENT "stowage/" STOWAGE_VERSION
#define HTTP_POLL_MS 1000

enum attempt_outcome { OUTCOME_DONE, OUTCOME_RETRY, OUTCOME_FAIL };

struct http_engine {
    CURLM *multi;
    struct http_job *waiting; /* not started yet, or waiting for a retry */
    struct http_job *active;  /* attempt in flight */
    struct http_job *done;    /* finished, not yet handed back */
};

struct http_worker {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t changed;
    struct http_engine *engine;
    struct http_job *submitted; /* handed over, not yet moved to the engine */
    size_t unfinished;
    int stop;
    int cancel;                 /* end every job, now and when submitted */
};

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static int global_init_failed;

static void init_globals(void)
{
    global_init_failed = curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || sodium_init() < 0;
}

static uint64_t now_ms(void)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000 + (uint64_t)now.tv_nsec / 1000000;
}

static void list_append(struct http_job **head, struct http_job *job)
{
    job->next = NULL;
    while (*head != NULL)
        head = &(*head)->next;
    *head = job;
}

static struct http_job *list_pop(struct http_job **head)
{
    struct http_job *job = *head;

    if (job != NULL) {
        *head = job->next;
        job->next = NULL;
    }
    return job;
}

static void list_remove(struct http_job **head, struct http_job *job)
{
    while (*head != NULL && *head != job)
        head = &(*head)->next;
    if (*head == job)
        *head = job->next;
    job->next = NULL;
}

void http_settings_default(struct http_settings *settings)
{
    settings->connect_timeout_ms = 10000;
    settings->low_speed_bytes = 1024;
    settings->low_speed_seconds = 60;
    settings->max_attempts = HTTP_DEFAULT_MAX_ATTEMPTS;
    settings->backoff_base_ms = 200;
    settings->backoff_max_ms = 20000;
}

void http_job_init(struct http_job *job, const struct http_settings *settings, size_t body_max)
{
    memset(job, 0, sizeof *job);
    job->service = "AWS";
    job->operation = "request";
    job->settings = settings;
    stow_buf_init(&job->response.body, body_max);
}

void http_job_free(struct http_job *job)
{
    if (job == NULL)
        return;
    stow_buf_free(&job->response.body);
}

void http_job_subject(struct http_job *job, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(job->subject, sizeof job->subject, fmt, ap);
    va_end(ap);
}

unsigned http_backoff_ms(const struct http_settings *settings, int attempt)
{
    uint64_t ceiling = settings->backoff_base_ms;

    for (int i = 1; i < attempt && ceiling < settings->backoff_max_ms; i++)
        ceiling *= 2;
    if (ceiling > settings->backoff_max_ms)
        ceiling = settings->backoff_max_ms;
    if (ceiling == 0)
        return 0;
    return randombytes_uniform((uint32_t)ceiling + 1);
}

int http_curl_is_retryable(CURLcode code)
{
    switch (code) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_UPLOAD_FAILED:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_SSL_CONNECT_ERROR:
        return 1;
    default:
        return 0;
    }
}

static const char *curl_hint(CURLcode code)
{
    switch (code) {
    case CURLE_COULDNT_CONNECT:
        return "check --endpoint and that the storage service is running and reachable";
    case CURLE_COULDNT_RESOLVE_HOST:
        return "check --endpoint, --region and the bucket name, and that DNS works";
    case CURLE_OPERATION_TIMEDOUT:
        return "the endpoint stopped responding; check --endpoint and the network";
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
        return "check the endpoint's TLS certificate and the system CA certificates";
    case CURLE_SSL_CONNECT_ERROR:
        return "check that the endpoint speaks TLS (else give it as http://), its TLS "
               "certificate and the system CA certificates";
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
        return "--endpoint must be an http:// or https:// URL";
    default:
        return "check --endpoint and the network";
    }
}

static const char *subject_separator(const struct http_job *job)
{
    return job->subject[0] != '\0' ? " for " : "";
}

/* Writes libcurl's reason, its detail and the system error, if any. */
static void describe_curl_failure(const struct http_job *job, CURLcode code, char *out,
                                  size_t size)
{
    char system_error[128] = "";

    if (job->os_errno != 0)
        snprintf(system_error, sizeof system_error, " (%s)", strerror(job->os_errno));
    snprintf(out, size, "%s%s%s%s", curl_easy_strerror(code), job->curl_message[0] ? ": " : "",
             job->curl_message, system_error);
}

int http_fail_curl(stow_error *err, const struct http_job *job, CURLcode code)
{
    char reason[CURL_ERROR_SIZE + 256];
    char after[48] = "";

    if (stow_error_is_set(err))
        return -1;
    if (job->attempts > 1)
        snprintf(after, sizeof after, " (after %d attempts)", job->attempts);

    describe_curl_failure(job, code, reason, sizeof reason);
    stow_fail(err, STOW_EXIT_STORAGE, "%s %s failed%s%s: %s%s", job->service, job->operation,
              subject_separator(job), job->subject, reason, after);
    stow_error_hint(err, "%s", curl_hint(code));
    return -1;
}

/* --- one attempt --------------------------------------------------------- */

static size_t write_body(char *data, size_t size, size_t count, void *context)
{
    struct http_job *job = context;
    size_t len = size * count;

    if (job->destination == NULL) {
        long status = 0;

        curl_easy_getinfo(job->easy, CURLINFO_RESPONSE_CODE, &status);
        if (status >= 200 && status < 300 && job->sink != NULL)
            job->destination = job->sink;
        else
            job->destination = &job->response.body;
    }
    if (stow_buf_append(job->destination, data, len, NULL) != 0) {
        job->limit_exceeded = 1;
        return 0;
    }
    return len;
}

static size_t read_body(char *buffer, size_t size, size_t count, void *context)
{
    struct http_job *job = context;
    size_t room = size * count;
    size_t left = job->body_len - job->body_offset;
    size_t chunk = left < room ? left : room;

    if (chunk > 0)
        memcpy(buffer, job->body + job->body_offset, chunk);
    job->body_offset += chunk;
    return chunk;
}

static int seek_body(void *context, curl_off_t offset, int origin)
{
    struct http_job *job = context;

    if (origin != SEEK_SET || offset < 0 || (uint64_t)offset > job->body_len)
        return CURL_SEEKFUNC_CANTSEEK;
    job->body_offset = (size_t)offset;
    return CURL_SEEKFUNC_OK;
}

static void reset_response(struct http_job *job)
{
    struct http_response *response = &job->response;

    stow_buf_reset(&response->body);
    if (job->sink != NULL)
        stow_buf_reset(job->sink);
    response->status = 0;
    response->etag[0] = '\0';
    response->content_length = 0;
    response->has_content_length = 0;
    response->object_size = 0;
    response->has_object_size = 0;
    response->last_modified = 0;
    response->bucket_region[0] = '\0';
    memset(&job->error, 0, sizeof job->error);
    job->destination = NULL;
    job->limit_exceeded = 0;
    job->os_errno = 0;
    job->body_offset = 0;
    job->curl_message[0] = '\0';
}

static void set_method(CURL *easy, struct http_job *job, const char *method)
{
    if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(easy, CURLOPT_NOBODY, 1L);
    } else if (strcmp(method, "PUT") == 0 || strcmp(method, "POST") == 0) {
        curl_easy_setopt(easy, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(easy, CURLOPT_READFUNCTION, read_body);
        curl_easy_setopt(easy, CURLOPT_READDATA, job);
        curl_easy_setopt(easy, CURLOPT_SEEKFUNCTION, seek_body);
        curl_easy_setopt(easy, CURLOPT_SEEKDATA, job);
        curl_easy_setopt(easy, CURLOPT_INFILESIZE_LARGE, (curl_off_t)job->body_len);
        curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, method);
    } else if (strcmp(method, "GET") != 0) {
        curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, method);
    }
}

/* Creates the easy handle for request. Takes over request->headers. */
static CURL *new_easy(struct http_job *job, struct http_request *request)
{
    const struct http_settings *settings = job->settings;
    struct curl_slist *headers = curl_slist_append(request->headers, "Expect:");
    CURL *easy = curl_easy_init();

    job->headers = headers != NULL ? headers : request->headers;
    if (easy == NULL || headers == NULL ||
        curl_easy_setopt(easy, CURLOPT_URL, request->url) != CURLE_OK) {
        curl_easy_cleanup(easy);
        return NULL;
    }

    job->body = request->body;
    job->body_len = request->body != NULL ? request->body_len : 0;
    curl_easy_setopt(easy, CURLOPT_PRIVATE, job);
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, job->headers);
    curl_easy_setopt(easy, CURLOPT_USERAGENT, HTTP_USER_AGENT);
    curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(easy, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, settings->connect_timeout_ms);
    curl_easy_setopt(easy, CURLOPT_LOW_SPEED_LIMIT, settings->low_speed_bytes);
    curl_easy_setopt(easy, CURLOPT_LOW_SPEED_TIME, settings->low_speed_seconds);
    curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, job->curl_message);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, write_body);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, job);
    set_method(easy, job, request->method);
    return easy;
}

/* Prepares, builds and starts the next attempt of job. On failure job->err
 * is filled and the job must finish. */
static int start_attempt(struct http_engine *engine, struct http_job *job)
{
    struct http_request request;

    if (!job->prepared && job->prepare != NULL && job->prepare(job, &job->err) != 0)
        return -1;
    job->prepared = 1;

    reset_response(job);
    memset(&request, 0, sizeof request);
    if (job->build(job, &request, &job->err) != 0) {
        curl_slist_free_all(request.headers);
        return -1;
    }

    job->method = request.method;
    job->easy = new_easy(job, &request);
    if (job->easy == NULL || curl_multi_add_handle(engine->multi, job->easy) != CURLM_OK) {
        curl_easy_cleanup(job->easy);
        job->easy = NULL;
        return stow_fail(&job->err, STOW_EXIT_FAILURE, "%s %s%s%s: cannot set up the request",
                         job->service, job->operation, subject_separator(job), job->subject);
    }
    job->attempts++;
    list_append(&engine->active, job);
    return 0;
}

/* Stores SIZE of a Content-Range "bytes A-B/SIZE" (RFC 9110 section 14.4).
 * An unknown size (an asterisk) or a malformed value leaves has_object_size
 * at 0. */
static void read_object_size(const char *content_range, struct http_response *response)
{
    const char *slash = strrchr(content_range, '/');
    char *end = NULL;
    unsigned long long size;

    if (slash == NULL || !isdigit((unsigned char)slash[1]))
        return;
    errno = 0;
    size = strtoull(slash + 1, &end, 10);
    if (errno != 0 || (*end != '\0' && !isspace((unsigned char)*end)))
        return;
    response->object_size = size;
    response->has_object_size = 1;
}

static void read_response_headers(struct http_job *job)
{
    struct http_response *response = &job->response;
    struct curl_header *header;

    long os_errno = 0;

    curl_easy_getinfo(job->easy, CURLINFO_RESPONSE_CODE, &response->status);
    curl_easy_getinfo(job->easy, CURLINFO_OS_ERRNO, &os_errno);
    job->os_errno = (int)os_errno;
    if (curl_easy_header(job->easy, "ETag", 0, CURLH_HEADER, -1, &header) == CURLHE_OK)
        snprintf(response->etag, sizeof response->etag, "%s", header->value);
    if (curl_easy_header(job->easy, "Content-Length", 0, CURLH_HEADER, -1, &header) ==
        CURLHE_OK) {
        response->content_length = strtoull(header->value, NULL, 10);
        response->has_content_length = 1;
    }
    if (curl_easy_header(job->easy, "Content-Range", 0, CURLH_HEADER, -1, &header) ==
        CURLHE_OK)
        read_object_size(header->value, response);
    if (curl_easy_header(job->easy, "Last-Modified", 0, CURLH_HEADER, -1, &header) ==
        CURLHE_OK) {
        time_t modified = curl_getdate(header->value, NULL);

        response->last_modified = modified > 0 ? modified : 0;
    }
    if (curl_easy_header(job->easy, "x-amz-object-lock-mode", 0, CURLH_HEADER, -1, &header) ==
        CURLHE_OK)
        snprintf(response->object_lock_mode, sizeof response->object_lock_mode, "%s",
                 header->value);
    if (curl_easy_header(job->easy, "x-amz-object-lock-retain-until-date", 0, CURLH_HEADER, -1,
                         &header) == CURLHE_OK)
        snprintf(response->object_lock_retain_until, sizeof response->object_lock_retain_until,
                 "%s", header->value);
    if (curl_easy_header(job->easy, "x-amz-bucket-region", 0, CURLH_HEADER, -1, &header) ==
        CURLHE_OK)
        snprintf(response->bucket_region, sizeof response->bucket_region, "%s", header->value);
}

/* Parses the AWS error in the body the attempt kept. Returns 0 when found. */
static int parse_error_body(struct http_job *job)
{
    const stow_buf *body = job->destination != NULL ? job->destination : &job->response.body;

    return aws_xml_parse_error(body->data, body->len, &job->error);
}

static enum attempt_outcome judge_attempt(struct http_job *job, CURLcode code)
{
    long status = job->response.status;

    if (code != CURLE_OK)
        return job->limit_exceeded || !http_curl_is_retryable(code) ? OUTCOME_FAIL : OUTCOME_RETRY;

    if (status >= 200 && status < 300) {
        if (!job->error_in_success_body || parse_error_body(job) != 0) {
            job->result = 0;
            return OUTCOME_DONE;
        }
    } else {
        parse_error_body(job);
        if (status == 404 && job->accept_not_found &&
            strcmp(job->error.code, "NoSuchBucket") != 0) {
            job->result = HTTP_RESULT_NOT_FOUND;
            return OUTCOME_DONE;
        }
        if (status == 412 && job->accept_conflict) {
            job->result = HTTP_RESULT_CONFLICT;
            return OUTCOME_DONE;
        }
    }

    if (aws_error_is_expired_token(job->error.code))
        aws_credentials_provider_invalidate(job->credentials);
    return aws_error_is_retryable(status, job->error.code) ? OUTCOME_RETRY : OUTCOME_FAIL;
}

static void describe_failure(const struct http_job *job, CURLcode code, char *out, size_t size)
{
    if (code != CURLE_OK)
        describe_curl_failure(job, code, out, size);
    else if (job->error.code[0] != '\0')
        snprintf(out, size, "HTTP %ld %s: %s", job->response.status, job->error.code,
                 job->error.message);
    else
        snprintf(out, size, "HTTP %ld", job->response.status);
}

static void record_failure(struct http_job *job, CURLcode code)
{
    struct aws_failure failure = {job->service, job->operation,
                                  job->subject[0] ? job->subject : NULL, job->response.status,
                                  &job->error, job->attempts};

    job->result = -1;
    if (job->error.region[0] == '\0')
        snprintf(job->error.region, sizeof job->error.region, "%s", job->response.bucket_region);
    if (job->limit_exceeded)
        stow_fail(&job->err, STOW_EXIT_FAILURE,
                  "%s %s failed%s%s: the response exceeds the limit of %zu bytes", job->service,
                  job->operation, subject_separator(job), job->subject, job->destination->max);
    else if (code != CURLE_OK)
        http_fail_curl(&job->err, job, code);
    else
        aws_xml_fail_response(&job->err, &failure);
}

static void schedule_retry(struct http_engine *engine, struct http_job *job, CURLcode code)
{
    unsigned delay = http_backoff_ms(job->settings, job->attempts);
    char reason[AWS_ERROR_MESSAGE_MAX + CURL_ERROR_SIZE + 64];

    describe_failure(job, code, reason, sizeof reason);
    metrics_count_retry();
    stow_log_warn("%s %s (%s)%s%s: attempt %d of %d failed (%s); retrying in %u ms",
                  job->service, job->operation, job->method, subject_separator(job),
                  job->subject, job->attempts, job->settings->max_attempts, reason, delay);
    job->due_ms = now_ms() + delay;
    list_append(&engine->waiting, job);
}

static void finish_attempt(struct http_engine *engine, struct http_job *job, CURLcode code)
{
    enum attempt_outcome outcome;

    read_response_headers(job);
    curl_multi_remove_handle(engine->multi, job->easy);
    curl_easy_cleanup(job->easy);
    job->easy = NULL;
    curl_slist_free_all(job->headers);
    job->headers = NULL;
    list_remove(&engine->active, job);

    outcome = judge_attempt(job, code);
    if (outcome == OUTCOME_RETRY && job->attempts < job->settings->max_attempts) {
        schedule_retry(engine, job, code);
        return;
    }
    if (outcome != OUTCOME_DONE)
        record_failure(job, code);
    list_append(&engine->done, job);
}

/* --- engine -------------------------------------------------------------- */

int http_engine_new(struct http_engine **out, stow_error *err)
{
    struct http_engine *engine;

    *out = NULL;
    pthread_once(&global_once, init_globals);
    if (global_init_failed)
        return stow_fail(err, STOW_EXIT_FAILURE, "libcurl or libsodium failed to initialise");

    engine = calloc(1, sizeof *engine);
    if (engine == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory creating an HTTP engine");
    engine->multi = curl_multi_init();
    if (engine->multi == NULL) {
        free(engine);
        return stow_fail(err, STOW_EXIT_FAILURE, "libcurl could not create a multi handle");
    }
    *out = engine;
    return 0;
}

/* Stops the transfer of job, if any, and frees its request headers. */
static void release_transfer(struct http_engine *engine, struct http_job *job)
{
    if (job->easy != NULL) {
        curl_multi_remove_handle(engine->multi, job->easy);
        curl_easy_cleanup(job->easy);
        job->easy = NULL;
    }
    curl_slist_free_all(job->headers);
    job->headers = NULL;
}

/* Stops job and moves it to the done list as failed; job->err is filled
 * by the caller. */
static void end_job(struct http_engine *engine, struct http_job *job)
{
    release_transfer(engine, job);
    job->result = -1;
    list_append(&engine->done, job);
}

static void cancel_job(struct http_engine *engine, struct http_job *job)
{
    stow_fail(&job->err, STOW_EXIT_FAILURE, "%s %s%s%s: cancelled", job->service, job->operation,
              subject_separator(job), job->subject);
    end_job(engine, job);
}

/* Ends the jobs of list that were queued before SIGINT or SIGTERM and may
 * end early (ends_on_interrupt), so that a stalled transfer does not hold
 * up the exit until its timeout. Writes whose outcome the run must know,
 * such as a manifest, and jobs queued after the signal, such as aborting
 * an upload, run as usual. */
static void end_interrupted_in(struct http_engine *engine, struct http_job **list)
{
    struct http_job **link = list;
    char step[96];

    while (*link != NULL) {
        struct http_job *job = *link;

        if (!job->before_interrupt || !job->ends_on_interrupt) {
            link = &job->next;
            continue;
        }
        *link = job->next;
        snprintf(step, sizeof step, "%s %s", job->service, job->operation);
        stow_fail_interrupted(&job->err, step);
        end_job(engine, job);
    }
}

static void end_interrupted_jobs(struct http_engine *engine)
{
    if (!stow_interrupted())
        return;
    end_interrupted_in(engine, &engine->active);
    end_interrupted_in(engine, &engine->waiting);
}

/* Moves every unfinished job to the done list as cancelled. */
static void cancel_all(struct http_engine *engine)
{
    struct http_job *job;

    while ((job = list_pop(&engine->active)) != NULL)
        cancel_job(engine, job);
    while ((job = list_pop(&engine->waiting)) != NULL)
        cancel_job(engine, job);
}

void http_engine_free(struct http_engine *engine)
{
    struct http_job *job;

    if (engine == NULL)
        return;
    cancel_all(engine);
    while ((job = list_pop(&engine->done)) != NULL)
        job->finished = 1;
    curl_multi_cleanup(engine->multi);
    free(engine);
}

static void start_due_jobs(struct http_engine *engine)
{
    uint64_t now = now_ms();
    struct http_job **link = &engine->waiting;

    while (*link != NULL) {
        struct http_job *job = *link;

        if (job->due_ms > now) {
            link = &job->next;
            continue;
        }
        *link = job->next;
        job->next = NULL;
        if (start_attempt(engine, job) != 0) {
            job->result = -1;
            list_append(&engine->done, job);
        }
    }
}

static void collect_finished_transfers(struct http_engine *engine)
{
    CURLMsg *message;
    int queued;

    while ((message = curl_multi_info_read(engine->multi, &queued)) != NULL) {
        CURL *easy = message->easy_handle;
        CURLcode code = message->data.result;
        struct http_job *job = NULL;

        if (message->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&job);
        finish_attempt(engine, job, code);
    }
}

/* Milliseconds to wait before the next retry falls due, at most limit. */
static long next_wait_ms(const struct http_engine *engine, long limit)
{
    uint64_t now = now_ms();
    long wait = limit;

    for (const struct http_job *job = engine->waiting; job != NULL; job = job->next) {
        long until = job->due_ms > now ? (long)(job->due_ms - now) : 0;

        if (until < wait)
            wait = until;
    }
    return wait;
}

static void drive_transfers(struct http_engine *engine)
{
    int running;
    CURLMcode code = curl_multi_perform(engine->multi, &running);

    if (code != CURLM_OK)
        stow_log_warn("libcurl multi interface failed: %s", curl_multi_strerror(code));
    collect_finished_transfers(engine);
}

/* Starts due attempts, moves transfers on, waits up to timeout_ms for
 * progress and returns a finished job, or NULL when none finished. */
static struct http_job *engine_run(struct http_engine *engine, long timeout_ms)
{
    end_interrupted_jobs(engine);
    if (engine->done == NULL) {
        start_due_jobs(engine);
        drive_transfers(engine);
    }
    if (engine->done == NULL) {
        curl_multi_poll(engine->multi, NULL, 0, (int)next_wait_ms(engine, timeout_ms), NULL);
        drive_transfers(engine);
    }
    return list_pop(&engine->done);
}

int http_job_error(const struct http_job *job, stow_error *err)
{
    if (job->result == -1 && err != NULL && !stow_error_is_set(err))
        memcpy(err, &job->err, sizeof *err);
    return job->result;
}

/* Clears the results of an earlier run of job before it is queued. */
static void reset_for_queue(struct http_job *job)
{
    job->finished = 0;
    job->attempts = 0;
    job->prepared = 0;
    job->before_interrupt = !stow_interrupted();
    stow_error_clear(&job->err);
}

int http_engine_perform(struct http_engine *engine, struct http_job *job, stow_error *err)
{
    struct http_job *finished = NULL;

    reset_for_queue(job);
    list_append(&engine->waiting, job);

    while (finished != job) {
        finished = engine_run(engine, HTTP_POLL_MS);
        if (finished != NULL)
            finished->finished = 1;
    }
    return http_job_error(job, err);
}

/* --- worker -------------------------------------------------------------- */

static void mark_finished(struct http_worker *worker, struct http_job *job)
{
    job->finished = 1;
    worker->unfinished--;
    pthread_cond_broadcast(&worker->changed);
}

/* Moves submitted jobs to the engine. Called with the lock held. */
static void move_submitted(struct http_worker *worker)
{
    struct http_job *job;

    while ((job = list_pop(&worker->submitted)) != NULL)
        list_append(&worker->engine->waiting, job);
}

static void *worker_main(void *context)
{
    struct http_worker *worker = context;
    struct http_job *job;

    pthread_mutex_lock(&worker->lock);
    while (!worker->stop) {
        move_submitted(worker);
        pthread_mutex_unlock(&worker->lock);

        job = engine_run(worker->engine, HTTP_POLL_MS);

        pthread_mutex_lock(&worker->lock);
        if (worker->cancel) {
            move_submitted(worker);
            cancel_all(worker->engine);
        }
        for (; job != NULL; job = list_pop(&worker->engine->done))
            mark_finished(worker, job);
        while ((job = list_pop(&worker->engine->done)) != NULL)
            mark_finished(worker, job);
    }

    move_submitted(worker);
    cancel_all(worker->engine);
    while ((job = list_pop(&worker->engine->done)) != NULL)
        mark_finished(worker, job);
    pthread_mutex_unlock(&worker->lock);
    return NULL;
}

int http_worker_new(struct http_worker **out, stow_error *err)
{
    struct http_worker *worker = calloc(1, sizeof *worker);

    *out = NULL;
    if (worker == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory creating a transfer worker");
    if (http_engine_new(&worker->engine, err) != 0) {
        free(worker);
        return -1;
    }
    pthread_mutex_init(&worker->lock, NULL);
    pthread_cond_init(&worker->changed, NULL);

    if (pthread_create(&worker->thread, NULL, worker_main, worker) != 0) {
        http_engine_free(worker->engine);
        pthread_cond_destroy(&worker->changed);
        pthread_mutex_destroy(&worker->lock);
        free(worker);
        return stow_fail(err, STOW_EXIT_FAILURE, "cannot start a transfer worker thread");
    }
    *out = worker;
    return 0;
}

void http_worker_submit(struct http_worker *worker, struct http_job *job)
{
    pthread_mutex_lock(&worker->lock);
    reset_for_queue(job);
    list_append(&worker->submitted, job);
    worker->unfinished++;
    pthread_mutex_unlock(&worker->lock);
    curl_multi_wakeup(worker->engine->multi);
}

void http_worker_wait(struct http_worker *worker, struct http_job *job)
{
    pthread_mutex_lock(&worker->lock);
    while (!job->finished)
        pthread_cond_wait(&worker->changed, &worker->lock);
    pthread_mutex_unlock(&worker->lock);
}

void http_worker_wait_below(struct http_worker *worker, size_t limit)
{
    pthread_mutex_lock(&worker->lock);
    while (worker->unfinished >= limit)
        pthread_cond_wait(&worker->changed, &worker->lock);
    pthread_mutex_unlock(&worker->lock);
}

int http_worker_is_finished(struct http_worker *worker, const struct http_job *job)
{
    int finished;

    pthread_mutex_lock(&worker->lock);
    finished = job->finished;
    pthread_mutex_unlock(&worker->lock);
    return finished;
}

void http_worker_cancel(struct http_worker *worker)
{
    pthread_mutex_lock(&worker->lock);
    worker->cancel = 1;
    pthread_mutex_unlock(&worker->lock);
    curl_multi_wakeup(worker->engine->multi);
}

void http_worker_free(struct http_worker *worker)
{
    if (worker == NULL)
        return;
    pthread_mutex_lock(&worker->lock);
    worker->stop = 1;
    pthread_mutex_unlock(&worker->lock);
    curl_multi_wakeup(worker->engine->multi);

    pthread_join(worker->thread, NULL);
    http_engine_free(worker->engine);
    pthread_cond_destroy(&worker->changed);
    pthread_mutex_destroy(&worker->lock);
    free(worker);
}
