/* AWS Signature Version 4: signs a request with an Authorization header or
 * presigns it in its query string, for any service (S3, RDS, STS).
 *
 * The signer is a pure function of its arguments: it opens no connection,
 * keeps no state and reads the clock only through request->time, so tests
 * fix the time and compare exact signatures. All strings are UTF-8.
 *
 * Encoding rules (AWS SigV4):
 *   - Query names and values are percent-encoded except for the unreserved
 *     characters A-Z a-z 0-9 - _ . ~, with uppercase hex digits, then sorted
 *     by encoded name and then by encoded value.
 *   - The path is encoded the same way, keeping '/'. For S3 the canonical
 *     URI is the path encoded once, exactly as sent. Every other service
 *     encodes the already encoded path a second time for the canonical URI.
 *     NOTE: paths are not normalised (no removal of "." segments or of
 *     repeated slashes), which S3 forbids and the other services' callers
 *     here never need because they use the path "/".
 *   - Header names are lowercased; values are trimmed and each run of
 *     blanks inside them becomes one space. Headers with the same name are
 *     joined with ',' in the order given.
 *
 * The signer adds host and x-amz-date to the signed headers, and
 * x-amz-security-token (header signing) or X-Amz-Security-Token (query
 * signing) when the credentials carry a session token. Callers send the
 * same values: the Host header exactly as request->host, and the headers
 * returned in struct sigv4_signature. */
#ifndef STOWAGE_AWS_SIGV4_H
#define STOWAGE_AWS_SIGV4_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "aws/credentials.h"
#include "common/buf.h"
#include "common/error.h"

#define SIGV4_ALGORITHM "AWS4-HMAC-SHA256"
#define SIGV4_UNSIGNED_PAYLOAD "UNSIGNED-PAYLOAD"
/* Hex SHA-256 of the empty string, the payload hash of a request without a body. */
#define SIGV4_EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

#define SIGV4_AUTHORIZATION_MAX 2048
#define SIGV4_AMZ_DATE_SIZE 17   /* "20150830T123600Z" and its NUL */
#define SIGV4_HEX_SHA256_SIZE 65 /* 64 hex digits and a NUL */

struct sigv4_header {
    const char *name;
    const char *value;
};

/* One query parameter, not yet percent-encoded. value may be "". */
struct sigv4_param {
    const char *name;
    const char *value;
};

struct sigv4_request {
    const char *service;     /* "s3", "rds", "sts" */
    const char *region;      /* "us-east-1" */
    const char *method;      /* "GET", "PUT", "POST" */
    const char *host;        /* Host header value: "host" or "host:port" */
    const char *path;        /* not yet encoded, starting with '/' */
    const struct sigv4_param *params;
    size_t param_count;
    const struct sigv4_header *headers; /* headers to sign besides the ones the signer adds */
    size_t header_count;
    const char *payload_hash; /* hex SHA-256 of the body, or SIGV4_UNSIGNED_PAYLOAD */
    time_t time;              /* signing time, UTC seconds */
};

struct sigv4_signature {
    char authorization[SIGV4_AUTHORIZATION_MAX]; /* value of the Authorization header */
    char amz_date[SIGV4_AMZ_DATE_SIZE];          /* value of the X-Amz-Date header */
    char signature[SIGV4_HEX_SHA256_SIZE];       /* hex signature, also inside authorization */
};

/* Signs request for the Authorization header. The caller sends
 * out->authorization, X-Amz-Date: out->amz_date and, when
 * credentials->session_token is set, X-Amz-Security-Token. */
int sigv4_sign(const struct sigv4_request *request, const struct aws_credentials *credentials,
               struct sigv4_signature *out, stow_error *err);

/* Presigns request: writes into query (reset first) the complete encoded
 * query string, request->params included, that follows '?' in the URL. The
 * URL is valid for expires_seconds (1 to 604800). Anyone holding the URL can
 * make the request, so callers never log it. */
int sigv4_presign(const struct sigv4_request *request, const struct aws_credentials *credentials,
                  unsigned expires_seconds, stow_buf *query, stow_error *err);

/* Writes the canonical request for header signing into out (reset first),
 * with x-amz-date set to amz_date. For tests and debug logs. */
int sigv4_canonical_request(const struct sigv4_request *request,
                            const struct aws_credentials *credentials, const char *amz_date,
                            stow_buf *out, stow_error *err);

/* Appends text percent-encoded by the SigV4 rules, keeping '/' when
 * keep_slash is 1. */
int sigv4_uri_encode(stow_buf *out, const char *text, int keep_slash, stow_error *err);

/* Formats time as "YYYYMMDDTHHMMSSZ". */
void sigv4_format_amz_date(time_t time, char out[SIGV4_AMZ_DATE_SIZE]);

/* Writes the SHA-256 of data (OpenSSL, hardware-accelerated where the CPU
 * allows) as 32 bytes. */
void sigv4_sha256(const void *data, size_t len, uint8_t out[32]);

/* Writes 32 bytes as 64 lowercase hex digits and a NUL. */
void sigv4_hex(const uint8_t digest[32], char out[SIGV4_HEX_SHA256_SIZE]);

#endif
