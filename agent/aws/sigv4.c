/* AWS Signature Version 4 signer: canonical request, string to sign,
 * signing key and signature, for headers and for presigned query strings. */
#include "aws/sigv4.h"

#include <openssl/evp.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SIGV4_TEXT_MAX (1024 * 1024)     /* canonical request and its parts */
#define SIGV4_MAX_EXPIRES (7 * 24 * 3600) /* maximum validity of a presigned URL */

/* One header or query parameter in canonical form; index keeps the caller's
 * order among headers of the same name. */
struct canonical_pair {
    char *name;
    char *value;
    size_t index;
};

struct pair_list {
    struct canonical_pair *items;
    size_t count;
    size_t capacity;
};

/* State of one signing: the canonical parts built step by step. */
struct signing {
    const struct sigv4_request *request;
    const struct aws_credentials *credentials;
    int presign;
    unsigned expires_seconds;
    char amz_date[SIGV4_AMZ_DATE_SIZE];
    char scope[256];
    struct pair_list headers;
    struct pair_list params;
    stow_buf signed_headers;
    stow_buf canonical;
};

void sigv4_format_amz_date(time_t time, char out[SIGV4_AMZ_DATE_SIZE])
{
    struct tm utc;

    gmtime_r(&time, &utc);
    strftime(out, SIGV4_AMZ_DATE_SIZE, "%Y%m%dT%H%M%SZ", &utc);
}

void sigv4_sha256(const void *data, size_t len, uint8_t out[32])
{
    EVP_Digest(data, len, out, NULL, EVP_sha256(), NULL);
}

void sigv4_hex(const uint8_t digest[32], char out[SIGV4_HEX_SHA256_SIZE])
{
    sodium_bin2hex(out, SIGV4_HEX_SHA256_SIZE, digest, 32);
}

static int is_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '_' || c == '.' || c == '~';
}

int sigv4_uri_encode(stow_buf *out, const char *text, int keep_slash, stow_error *err)
{
    static const char hex_digits[] = "0123456789ABCDEF";

    for (const unsigned char *p = (const unsigned char *)text; *p != '\0'; p++) {
        char escaped[3] = {'%', hex_digits[*p >> 4], hex_digits[*p & 0x0f]};

        if (is_unreserved(*p) || (keep_slash && *p == '/')) {
            if (stow_buf_append(out, p, 1, err) != 0)
                return -1;
        } else if (stow_buf_append(out, escaped, sizeof escaped, err) != 0) {
            return -1;
        }
    }
    return 0;
}

static void hmac_sha256(const uint8_t *key, size_t key_len, const void *data, size_t len,
                        uint8_t out[32])
{
    crypto_auth_hmacsha256_state state;

    crypto_auth_hmacsha256_init(&state, key, key_len);
    crypto_auth_hmacsha256_update(&state, data, len);
    crypto_auth_hmacsha256_final(&state, out);
    sodium_memzero(&state, sizeof state);
}

/* --- pair lists ---------------------------------------------------------- */

static void pair_list_free(struct pair_list *list)
{
    for (size_t i = 0; i < list->count; i++) {
        free(list->items[i].name);
        free(list->items[i].value);
    }
    free(list->items);
    memset(list, 0, sizeof *list);
}

/* Appends a pair, taking ownership of name and value (freed on failure). */
static int pair_list_take(struct pair_list *list, char *name, char *value, stow_error *err)
{
    if (name == NULL || value == NULL)
        goto fail;

    if (list->count == list->capacity) {
        size_t capacity = list->capacity == 0 ? 16 : list->capacity * 2;
        struct canonical_pair *grown = realloc(list->items, capacity * sizeof *grown);

        if (grown == NULL)
            goto fail;
        list->items = grown;
        list->capacity = capacity;
    }
    list->items[list->count] = (struct canonical_pair){name, value, list->count};
    list->count++;
    return 0;

fail:
    free(name);
    free(value);
    return stow_fail(err, STOW_EXIT_FAILURE, "out of memory building a SigV4 canonical request");
}

static int compare_params(const void *a, const void *b)
{
    const struct canonical_pair *left = a;
    const struct canonical_pair *right = b;
    int order = strcmp(left->name, right->name);

    return order != 0 ? order : strcmp(left->value, right->value);
}

static int compare_headers(const void *a, const void *b)
{
    const struct canonical_pair *left = a;
    const struct canonical_pair *right = b;
    int order = strcmp(left->name, right->name);

    if (order != 0)
        return order;
    return left->index < right->index ? -1 : left->index > right->index;
}

/* --- canonical headers -------------------------------------------------- */

static char *lowercase_copy(const char *text)
{
    char *copy = strdup(text);

    for (char *p = copy; p != NULL && *p != '\0'; p++) {
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    }
    return copy;
}

/* Copies value without leading and trailing blanks, each inner run of
 * blanks replaced by one space. */
static char *normalized_value_copy(const char *value)
{
    char *copy = malloc(strlen(value) + 1);
    char *out = copy;
    int pending_space = 0;

    if (copy == NULL)
        return NULL;
    for (const char *p = value; *p != '\0'; p++) {
        if (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') {
            pending_space = out != copy;
            continue;
        }
        if (pending_space)
            *out++ = ' ';
        pending_space = 0;
        *out++ = *p;
    }
    *out = '\0';
    return copy;
}

static int add_header(struct signing *signing, const char *name, const char *value,
                      stow_error *err)
{
    return pair_list_take(&signing->headers, lowercase_copy(name), normalized_value_copy(value),
                          err);
}

static int collect_headers(struct signing *signing, stow_error *err)
{
    const struct sigv4_request *request = signing->request;
    const char *token = signing->credentials->session_token;

    if (add_header(signing, "host", request->host, err) != 0)
        return -1;
    if (!signing->presign && add_header(signing, "x-amz-date", signing->amz_date, err) != 0)
        return -1;
    if (!signing->presign && token[0] != '\0' &&
        add_header(signing, "x-amz-security-token", token, err) != 0)
        return -1;

    for (size_t i = 0; i < request->header_count; i++) {
        if (add_header(signing, request->headers[i].name, request->headers[i].value, err) != 0)
            return -1;
    }
    if (signing->headers.count > 1)
        qsort(signing->headers.items, signing->headers.count, sizeof *signing->headers.items,
              compare_headers);
    return 0;
}

static int join_signed_headers(struct signing *signing, stow_error *err)
{
    const struct pair_list *headers = &signing->headers;

    for (size_t i = 0; i < headers->count; i++) {
        if (i > 0 && strcmp(headers->items[i].name, headers->items[i - 1].name) == 0)
            continue;
        if (i > 0 && stow_buf_append_str(&signing->signed_headers, ";", err) != 0)
            return -1;
        if (stow_buf_append_str(&signing->signed_headers, headers->items[i].name, err) != 0)
            return -1;
    }
    return 0;
}

/* Appends "name:value[,value...]\n" for each distinct header name. */
static int write_canonical_headers(struct signing *signing, stow_error *err)
{
    const struct pair_list *headers = &signing->headers;
    stow_buf *out = &signing->canonical;
    int rc = 0;

    for (size_t i = 0; i < headers->count && rc == 0; i++) {
        const struct canonical_pair *header = &headers->items[i];
        int continues = i > 0 && strcmp(header->name, headers->items[i - 1].name) == 0;
        int last = i + 1 == headers->count || strcmp(header->name, headers->items[i + 1].name) != 0;

        if (continues)
            rc = stow_buf_printf(out, err, ",%s", header->value);
        else
            rc = stow_buf_printf(out, err, "%s:%s", header->name, header->value);
        if (rc == 0 && last)
            rc = stow_buf_append_str(out, "\n", err);
    }
    return rc;
}

/* --- canonical query ----------------------------------------------------- */

static char *encoded_copy(const char *text, stow_error *err)
{
    stow_buf encoded;
    char *copy = NULL;

    stow_buf_init(&encoded, SIGV4_TEXT_MAX);
    if (stow_buf_append_str(&encoded, "", err) == 0 &&
        sigv4_uri_encode(&encoded, text, 0, err) == 0)
        copy = strdup((const char *)encoded.data);
    stow_buf_free(&encoded);
    return copy;
}

static int add_param(struct signing *signing, const char *name, const char *value,
                     stow_error *err)
{
    return pair_list_take(&signing->params, encoded_copy(name, err), encoded_copy(value, err),
                          err);
}

/* Adds the X-Amz-* parameters that carry a presigned URL's authentication. */
static int add_presign_params(struct signing *signing, stow_error *err)
{
    const struct aws_credentials *credentials = signing->credentials;
    char credential[AWS_ACCESS_KEY_ID_MAX + sizeof signing->scope + 2];
    char expires[16];

    snprintf(credential, sizeof credential, "%s/%s", credentials->access_key_id, signing->scope);
    snprintf(expires, sizeof expires, "%u", signing->expires_seconds);

    if (add_param(signing, "X-Amz-Algorithm", SIGV4_ALGORITHM, err) != 0 ||
        add_param(signing, "X-Amz-Credential", credential, err) != 0 ||
        add_param(signing, "X-Amz-Date", signing->amz_date, err) != 0 ||
        add_param(signing, "X-Amz-Expires", expires, err) != 0 ||
        add_param(signing, "X-Amz-SignedHeaders", (const char *)signing->signed_headers.data,
                  err) != 0)
        return -1;
    if (credentials->session_token[0] != '\0')
        return add_param(signing, "X-Amz-Security-Token", credentials->session_token, err);
    return 0;
}

static int collect_params(struct signing *signing, stow_error *err)
{
    const struct sigv4_request *request = signing->request;

    for (size_t i = 0; i < request->param_count; i++) {
        if (add_param(signing, request->params[i].name, request->params[i].value, err) != 0)
            return -1;
    }
    if (signing->presign && add_presign_params(signing, err) != 0)
        return -1;
    if (signing->params.count > 1)
        qsort(signing->params.items, signing->params.count, sizeof *signing->params.items,
              compare_params);
    return 0;
}

/* Appends the sorted "name=value&..." string. */
static int write_canonical_query(const struct signing *signing, stow_buf *out, stow_error *err)
{
    const struct pair_list *params = &signing->params;

    for (size_t i = 0; i < params->count; i++) {
        if (stow_buf_printf(out, err, "%s%s=%s", i > 0 ? "&" : "", params->items[i].name,
                            params->items[i].value) != 0)
            return -1;
    }
    return 0;
}

/* --- canonical request and signature ------------------------------------ */

/* Appends the canonical URI: the path encoded once for S3, twice elsewhere. */
static int write_canonical_uri(const struct signing *signing, stow_buf *out, stow_error *err)
{
    const struct sigv4_request *request = signing->request;
    stow_buf once;
    int rc;

    if (strcmp(request->service, "s3") == 0)
        return sigv4_uri_encode(out, request->path, 1, err);

    stow_buf_init(&once, SIGV4_TEXT_MAX);
    rc = stow_buf_append_str(&once, "", err);
    if (rc == 0)
        rc = sigv4_uri_encode(&once, request->path, 1, err);
    if (rc == 0)
        rc = sigv4_uri_encode(out, (const char *)once.data, 1, err);
    stow_buf_free(&once);
    return rc;
}

static int write_canonical_request(struct signing *signing, stow_error *err)
{
    const struct sigv4_request *request = signing->request;
    stow_buf *out = &signing->canonical;

    if (stow_buf_printf(out, err, "%s\n", request->method) != 0 ||
        write_canonical_uri(signing, out, err) != 0 || stow_buf_append_str(out, "\n", err) != 0 ||
        write_canonical_query(signing, out, err) != 0 || stow_buf_append_str(out, "\n", err) != 0 ||
        write_canonical_headers(signing, err) != 0)
        return -1;
    return stow_buf_printf(out, err, "\n%s\n%s", (const char *)signing->signed_headers.data,
                           request->payload_hash);
}

/* Derives the signing key and signs the string to sign. */
static void compute_signature(const struct signing *signing, char out[SIGV4_HEX_SHA256_SIZE])
{
    const struct sigv4_request *request = signing->request;
    uint8_t secret[4 + AWS_SECRET_ACCESS_KEY_MAX + 1];
    uint8_t key[32];
    uint8_t digest[32];
    char canonical_hash[SIGV4_HEX_SHA256_SIZE];
    char string_to_sign[512];
    size_t secret_len = strlen(signing->credentials->secret_access_key);
    int string_len;

    sigv4_sha256(signing->canonical.data, signing->canonical.len, digest);
    sigv4_hex(digest, canonical_hash);
    string_len = snprintf(string_to_sign, sizeof string_to_sign, "%s\n%s\n%s\n%s",
                          SIGV4_ALGORITHM, signing->amz_date, signing->scope, canonical_hash);

    memcpy(secret, "AWS4", 4);
    memcpy(secret + 4, signing->credentials->secret_access_key, secret_len);
    hmac_sha256(secret, 4 + secret_len, signing->amz_date, 8, key);
    hmac_sha256(key, sizeof key, request->region, strlen(request->region), key);
    hmac_sha256(key, sizeof key, request->service, strlen(request->service), key);
    hmac_sha256(key, sizeof key, "aws4_request", strlen("aws4_request"), key);
    hmac_sha256(key, sizeof key, string_to_sign, (size_t)string_len, digest);
    sigv4_hex(digest, out);

    sodium_memzero(secret, sizeof secret);
    sodium_memzero(key, sizeof key);
}

static int check_request(const struct sigv4_request *request,
                         const struct aws_credentials *credentials, stow_error *err)
{
    if (request->service == NULL || request->region == NULL || request->method == NULL ||
        request->host == NULL || request->path == NULL || request->payload_hash == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE, "SigV4 request lacks a required field");
    if (request->path[0] != '/')
        return stow_fail(err, STOW_EXIT_FAILURE, "SigV4 request path %s does not start with '/'",
                         request->path);
    if (strlen(request->service) + strlen(request->region) > 200)
        return stow_fail(err, STOW_EXIT_FAILURE, "SigV4 service or region name is too long");
    if (credentials->access_key_id[0] == '\0' || credentials->secret_access_key[0] == '\0')
        return stow_fail(err, STOW_EXIT_STORAGE, "AWS credentials are empty");
    return 0;
}

/* Builds everything up to the canonical request. amz_date may be NULL for
 * the request's own time. */
static int signing_begin(struct signing *signing, const struct sigv4_request *request,
                         const struct aws_credentials *credentials, const char *amz_date,
                         stow_error *err)
{
    if (check_request(request, credentials, err) != 0)
        return -1;
    if (sodium_init() < 0)
        return stow_fail(err, STOW_EXIT_FAILURE, "libsodium failed to initialise");

    signing->request = request;
    signing->credentials = credentials;
    if (amz_date != NULL)
        snprintf(signing->amz_date, sizeof signing->amz_date, "%s", amz_date);
    else
        sigv4_format_amz_date(request->time, signing->amz_date);
    snprintf(signing->scope, sizeof signing->scope, "%.8s/%s/%s/aws4_request",
             signing->amz_date, request->region, request->service);

    if (collect_headers(signing, err) != 0 || join_signed_headers(signing, err) != 0 ||
        collect_params(signing, err) != 0 || write_canonical_request(signing, err) != 0)
        return -1;
    return 0;
}

static void signing_init(struct signing *signing, int presign, unsigned expires_seconds)
{
    memset(signing, 0, sizeof *signing);
    signing->presign = presign;
    signing->expires_seconds = expires_seconds;
    stow_buf_init(&signing->signed_headers, SIGV4_TEXT_MAX);
    stow_buf_init(&signing->canonical, SIGV4_TEXT_MAX);
}

static void signing_free(struct signing *signing)
{
    pair_list_free(&signing->headers);
    pair_list_free(&signing->params);
    stow_buf_free(&signing->signed_headers);
    stow_buf_free(&signing->canonical);
}

int sigv4_canonical_request(const struct sigv4_request *request,
                            const struct aws_credentials *credentials, const char *amz_date,
                            stow_buf *out, stow_error *err)
{
    struct signing signing;
    int rc;

    signing_init(&signing, 0, 0);
    stow_buf_reset(out);
    rc = signing_begin(&signing, request, credentials, amz_date, err);
    if (rc == 0)
        rc = stow_buf_append(out, signing.canonical.data, signing.canonical.len, err);
    signing_free(&signing);
    return rc;
}

int sigv4_sign(const struct sigv4_request *request, const struct aws_credentials *credentials,
               struct sigv4_signature *out, stow_error *err)
{
    struct signing signing;
    int written;
    int rc;

    memset(out, 0, sizeof *out);
    signing_init(&signing, 0, 0);
    rc = signing_begin(&signing, request, credentials, NULL, err);
    if (rc != 0)
        goto done;

    compute_signature(&signing, out->signature);
    memcpy(out->amz_date, signing.amz_date, sizeof out->amz_date);
    written = snprintf(out->authorization, sizeof out->authorization,
                       "%s Credential=%s/%s, SignedHeaders=%s, Signature=%s", SIGV4_ALGORITHM,
                       credentials->access_key_id, signing.scope,
                       (const char *)signing.signed_headers.data, out->signature);
    if (written < 0 || (size_t)written >= sizeof out->authorization)
        rc = stow_fail(err, STOW_EXIT_FAILURE,
                       "SigV4 Authorization header exceeds %d bytes (too many signed headers)",
                       SIGV4_AUTHORIZATION_MAX);

done:
    signing_free(&signing);
    return rc;
}

int sigv4_presign(const struct sigv4_request *request, const struct aws_credentials *credentials,
                  unsigned expires_seconds, stow_buf *query, stow_error *err)
{
    struct signing signing;
    char signature[SIGV4_HEX_SHA256_SIZE];
    int rc;

    stow_buf_reset(query);
    if (expires_seconds == 0 || expires_seconds > SIGV4_MAX_EXPIRES)
        return stow_fail(err, STOW_EXIT_USAGE,
                         "presigned URL expiry of %u seconds is outside 1 to %d", expires_seconds,
                         SIGV4_MAX_EXPIRES);

    signing_init(&signing, 1, expires_seconds);
    rc = signing_begin(&signing, request, credentials, NULL, err);
    if (rc == 0) {
        compute_signature(&signing, signature);
        rc = write_canonical_query(&signing, query, err);
    }
    if (rc == 0)
        rc = stow_buf_printf(query, err, "&X-Amz-Signature=%s", signature);
    signing_free(&signing);
    return rc;
}
