/* Conversion of AWS XML error bodies into Stowage errors, and libxml2
 * helpers for the response parsers of the AWS clients. */
#include "aws/aws_xml.h"

#include <libxml/parser.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Hints for well-known error codes. exit_code is the class of the failure;
 * a NULL hint marks a wrong region, whose hint advise_region writes. */
struct code_advice {
    const char *code;
    int exit_code;
    const char *hint;
};

static const struct code_advice code_advice[] = {
    {"NoSuchBucket", STOW_EXIT_STORAGE, "create the bucket or fix --repo"},
    {"InvalidBucketName", STOW_EXIT_STORAGE, "fix the bucket name in --repo"},
    {"AccessDenied", STOW_EXIT_STORAGE,
     "grant the IAM permission for this operation on the bucket and prefix, or check which "
     "AWS credentials are in use"},
    {"AllAccessDisabled", STOW_EXIT_STORAGE, "access to the bucket is disabled by its owner"},
    {"AccountProblem", STOW_EXIT_STORAGE, "the AWS account cannot use this service; check it"},
    {"InvalidAccessKeyId", STOW_EXIT_STORAGE,
     "check the AWS credentials (AWS_ACCESS_KEY_ID, AWS_PROFILE, the shared credentials file)"},
    {"SignatureDoesNotMatch", STOW_EXIT_STORAGE,
     "check the AWS credentials (the secret access key does not belong to the access key id)"},
    {"InvalidClientTokenId", STOW_EXIT_STORAGE,
     "check the AWS credentials (AWS_ACCESS_KEY_ID, AWS_PROFILE, the shared credentials file)"},
    {"InvalidToken", STOW_EXIT_STORAGE,
     "check AWS_SESSION_TOKEN or renew the temporary credentials"},
    {"ExpiredToken", STOW_EXIT_STORAGE, "renew the temporary AWS credentials"},
    {"RequestTimeTooSkewed", STOW_EXIT_STORAGE, "synchronise the system clock (NTP)"},
    {"PermanentRedirect", STOW_EXIT_STORAGE, NULL},
    {"AuthorizationHeaderMalformed", STOW_EXIT_STORAGE, NULL},
    {"NoSuchUpload", STOW_EXIT_FAILURE,
     "the multipart upload was aborted or completed by someone else; run the command again"},
    {"SlowDown", STOW_EXIT_FAILURE,
     "the bucket is throttling requests: retry later, or upload fewer parts at once"},
};

static const char *const retryable_codes[] = {
    "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException",
    "TooManyRequestsException", "ProvisionedThroughputExceededException",
    "TransactionInProgressException", "RequestLimitExceeded", "BandwidthLimitExceeded",
    "LimitExceededException", "RequestThrottled", "SlowDown", "PriorRequestNotComplete",
    "EC2ThrottledException", "RequestTimeout", "RequestTimeoutException", "InternalError",
    "InternalFailure", "ServiceUnavailable", "ExpiredToken", "ExpiredTokenException",
    "RequestExpired", "IDPCommunicationError", "TokenRefreshRequired",
};

static pthread_once_t xml_once = PTHREAD_ONCE_INIT;

static void init_libxml(void)
{
    xmlInitParser();
}

xmlDoc *aws_xml_read(const void *body, size_t len)
{
    if (body == NULL || len == 0 || len > (size_t)0x7fffffff)
        return NULL;
    pthread_once(&xml_once, init_libxml);
    return xmlReadMemory(body, (int)len, NULL, NULL,
                         XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
}

int aws_xml_is(const xmlNode *node, const char *name)
{
    return node != NULL && node->type == XML_ELEMENT_NODE &&
           strcmp((const char *)node->name, name) == 0;
}

xmlNode *aws_xml_child(const xmlNode *parent, const char *name)
{
    if (parent == NULL)
        return NULL;
    for (xmlNode *child = parent->children; child != NULL; child = child->next) {
        if (aws_xml_is(child, name))
            return child;
    }
    return NULL;
}

int aws_xml_child_text(const xmlNode *parent, const char *name, char *out, size_t size)
{
    xmlNode *child = aws_xml_child(parent, name);
    xmlChar *text;
    int rc = -1;

    out[0] = '\0';
    if (child == NULL)
        return -1;
    text = xmlNodeGetContent(child);
    if (text != NULL && strlen((const char *)text) < size) {
        memcpy(out, text, strlen((const char *)text) + 1);
        rc = 0;
    }
    xmlFree(text);
    return rc;
}

char *aws_xml_child_strdup(const xmlNode *parent, const char *name)
{
    xmlNode *child = aws_xml_child(parent, name);
    xmlChar *text;
    char *copy;

    if (child == NULL)
        return NULL;
    text = xmlNodeGetContent(child);
    copy = text != NULL ? strdup((const char *)text) : strdup("");
    xmlFree(text);
    return copy;
}

int aws_xml_parse_time(const char *text, time_t *out)
{
    struct tm tm;
    const char *rest;

    memset(&tm, 0, sizeof tm);
    rest = strptime(text, "%Y-%m-%dT%H:%M:%S", &tm);
    if (rest == NULL)
        return -1;
    *out = timegm(&tm);
    return 0;
}

/* Copies the text of child element name into out, cut to fit. */
static void copy_truncated_text(const xmlNode *parent, const char *name, char *out, size_t size)
{
    char *text = aws_xml_child_strdup(parent, name);

    snprintf(out, size, "%s", text != NULL ? text : "");
    free(text);
}

/* Finds the element that carries Code in one of the AWS error shapes. */
static const xmlNode *find_error_element(const xmlNode *root)
{
    const xmlNode *errors;

    if (aws_xml_is(root, "Error"))
        return root;
    if (!aws_xml_is(root, "ErrorResponse") && !aws_xml_is(root, "Response"))
        return NULL;
    if (aws_xml_child(root, "Error") != NULL)
        return aws_xml_child(root, "Error");
    errors = aws_xml_child(root, "Errors");
    return aws_xml_child(errors, "Error");
}

int aws_xml_parse_error(const void *body, size_t len, struct aws_error_body *out)
{
    xmlDoc *doc;
    const xmlNode *root;
    const xmlNode *error;
    int rc = -1;

    memset(out, 0, sizeof *out);
    doc = aws_xml_read(body, len);
    if (doc == NULL)
        return -1;

    root = xmlDocGetRootElement(doc);
    error = find_error_element(root);
    if (error != NULL && aws_xml_child_text(error, "Code", out->code, sizeof out->code) == 0 &&
        out->code[0] != '\0') {
        copy_truncated_text(error, "Message", out->message, sizeof out->message);
        if (aws_xml_child_text(error, "RequestId", out->request_id, sizeof out->request_id) != 0)
            aws_xml_child_text(root, "RequestId", out->request_id, sizeof out->request_id);
        if (aws_xml_child_text(error, "Region", out->region, sizeof out->region) != 0)
            out->region[0] = '\0';
        if (aws_xml_child_text(error, "Endpoint", out->endpoint, sizeof out->endpoint) != 0)
            out->endpoint[0] = '\0';
        rc = 0;
    } else {
        memset(out, 0, sizeof *out);
    }
    xmlFreeDoc(doc);
    return rc;
}

int aws_error_is_expired_token(const char *code)
{
    return code != NULL && (strcmp(code, "ExpiredToken") == 0 ||
                            strcmp(code, "ExpiredTokenException") == 0 ||
                            strcmp(code, "RequestExpired") == 0 ||
                            strcmp(code, "TokenRefreshRequired") == 0);
}

int aws_error_is_retryable(long status, const char *code)
{
    if (status == 429 || status == 500 || status == 502 || status == 503 || status == 504)
        return 1;
    if (code == NULL)
        return 0;
    for (size_t i = 0; i < sizeof retryable_codes / sizeof retryable_codes[0]; i++) {
        if (strcmp(code, retryable_codes[i]) == 0)
            return 1;
    }
    return 0;
}

static const struct code_advice *find_advice(const char *code)
{
    for (size_t i = 0; i < sizeof code_advice / sizeof code_advice[0]; i++) {
        if (strcmp(code, code_advice[i].code) == 0)
            return &code_advice[i];
    }
    return NULL;
}

/* Chooses the exit code and hint for a failure without a known code. */
/* Sets the exit code and hint of a failure that no advice covers. A 4xx
 * without an AWS error code usually comes from a server that is not the
 * AWS service, a web server at --endpoint, say. HEAD responses are left
 * out, because they never carry an error body. */
static void advise_by_status(stow_error *err, long status, const struct aws_failure *failure)
{
    const char *service = failure->service;
    int has_code = failure->error != NULL && failure->error->code[0] != '\0';

    if (!has_code && status >= 400 && status < 500 && status != 401 && status != 403 &&
        strncmp(failure->operation, "Head", 4) != 0) {
        err->exit_code = STOW_EXIT_STORAGE;
        stow_error_hint(err, "check that --endpoint names the %s service: an AWS service "
                             "answers a failed request with an error code", service);
    } else if (status == 401 || status == 403) {
        err->exit_code = STOW_EXIT_STORAGE;
        stow_error_hint(err, "check the AWS credentials and the IAM permissions for %s",
                        service);
    } else if (status == 301 || status == 307) {
        err->exit_code = STOW_EXIT_STORAGE;
    }
}

/* Sets the hint of a request sent to the wrong region, naming the bucket's
 * region or endpoint when S3 sent them. */
static void advise_region(stow_error *err, const struct aws_error_body *error)
{
    if (error != NULL && error->region[0] != '\0')
        stow_error_hint(err, "the bucket is in region %s: set --region %s (or AWS_REGION)",
                        error->region, error->region);
    else if (error != NULL && error->endpoint[0] != '\0')
        stow_error_hint(err, "S3 names the endpoint %s for the bucket: set --region to the "
                             "region in that name",
                        error->endpoint);
    else
        stow_error_hint(err, "set --region to the bucket's region (see the bucket's properties "
                             "in the S3 console, or aws s3api get-bucket-location)");
}

/* Writes " (after N attempts, request id R)", or the part of it that applies. */
static void describe_attempts(const struct aws_failure *failure, char *out, size_t size)
{
    const char *request_id = failure->error != NULL ? failure->error->request_id : "";

    if (failure->attempts > 1 && request_id[0] != '\0')
        snprintf(out, size, " (after %d attempts, request id %s)", failure->attempts, request_id);
    else if (failure->attempts > 1)
        snprintf(out, size, " (after %d attempts)", failure->attempts);
    else if (request_id[0] != '\0')
        snprintf(out, size, " (request id %s)", request_id);
    else
        out[0] = '\0';
}

int aws_xml_fail_response(stow_error *err, const struct aws_failure *failure)
{
    const struct aws_error_body *error = failure->error;
    const char *code = error != NULL ? error->code : "";
    const char *message = error != NULL ? error->message : "";
    const struct code_advice *advice = find_advice(code);
    char after[AWS_REQUEST_ID_MAX + 64];

    if (stow_error_is_set(err))
        return -1;
    describe_attempts(failure, after, sizeof after);

    if (code[0] != '\0')
        stow_fail(err, STOW_EXIT_FAILURE, "%s %s failed%s%s: HTTP %ld %s: %s%s", failure->service,
                  failure->operation, failure->subject ? " for " : "",
                  failure->subject ? failure->subject : "", failure->status, code,
                  message[0] ? message : "(no message)", after);
    else
        stow_fail(err, STOW_EXIT_FAILURE, "%s %s failed%s%s: HTTP %ld without an AWS error code%s",
                  failure->service, failure->operation, failure->subject ? " for " : "",
                  failure->subject ? failure->subject : "", failure->status, after);

    if (err == NULL)
        return -1;
    if (advice != NULL) {
        err->exit_code = advice->exit_code;
        if (advice->hint != NULL)
            stow_error_hint(err, "%s", advice->hint);
    } else {
        advise_by_status(err, failure->status, failure);
    }
    if ((advice != NULL && advice->hint == NULL) ||
        (advice == NULL && (failure->status == 301 || failure->status == 307)))
        advise_region(err, error);
    return -1;
}
