/* Manifest parsing and validation, catalog keys, ids and times. */
#include "manifest.h"

#include <ctype.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void manifest_hex(const uint8_t *bytes, size_t len, char *out)
{
    sodium_bin2hex(out, len * 2 + 1, bytes, len);
}

int manifest_unhex(const char *hex, uint8_t *out, size_t len)
{
    size_t decoded = 0;

    if (hex == NULL || strlen(hex) != len * 2)
        return -1;
    if (sodium_hex2bin(out, len, hex, len * 2, NULL, &decoded, NULL) != 0 || decoded != len)
        return -1;
    return 0;
}

void manifest_format_time(time_t when, char out[32])
{
    struct tm utc;

    gmtime_r(&when, &utc);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &utc);
}

void manifest_format_time_us(time_t when, long microseconds, char out[32])
{
    struct tm utc;

    gmtime_r(&when, &utc);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &utc);
    snprintf(out + strlen(out), 32 - strlen(out), ".%06ldZ", microseconds);
}

long manifest_time_microseconds(const char *text)
{
    const char *fraction = strchr(text, '.');
    long microseconds = 0;
    int digits = 0;

    if (fraction == NULL)
        return 0;
    for (fraction++; digits < 6; digits++) {
        int digit = isdigit((unsigned char)*fraction) ? *fraction++ - '0' : 0;

        microseconds = microseconds * 10 + digit;
    }
    return microseconds;
}

json_t *manifest_time_json(time_t when)
{
    char text[32];

    if (when == 0)
        return json_null();
    manifest_format_time(when, text);
    return json_string(text);
}

/* Parses "YYYY-MM-DD", "YYYY-MM-DDTHH:MM[:SS][.fff](Z|+HH:MM|-HH:MM)", with a
 * space allowed in place of 'T'. A time without zone is taken as UTC. */
int manifest_parse_time(const char *text, time_t *out)
{
    struct tm parts = {0};
    int year, month, day, hour = 0, minute = 0, second = 0, consumed = 0;
    const char *rest;
    long offset_seconds = 0;

    if (sscanf(text, "%4d-%2d-%2d%n", &year, &month, &day, &consumed) != 3)
        return -1;
    rest = text + consumed;
    if (*rest == 'T' || *rest == 't' || *rest == ' ') {
        int taken = 0;

        if (sscanf(rest + 1, "%2d:%2d%n", &hour, &minute, &taken) != 2)
            return -1;
        rest += 1 + taken;
        if (*rest == ':') {
            if (sscanf(rest + 1, "%2d%n", &second, &taken) != 1)
                return -1;
            rest += 1 + taken;
        }
        if (*rest == '.') {
            /* RFC 3339: a fraction has at least one digit. */
            if (!isdigit((unsigned char)rest[1]))
                return -1;
            for (rest++; isdigit((unsigned char)*rest); rest++)
                ;
        }
    }
    if (*rest == 'Z' || *rest == 'z') {
        rest++;
    } else if (*rest == '+' || *rest == '-') {
        int offset_hours, offset_minutes = 0, taken = 0;
        int sign = *rest == '-' ? -1 : 1;

        if (sscanf(rest + 1, "%2d%n", &offset_hours, &taken) != 1)
            return -1;
        rest += 1 + taken;
        if (*rest == ':')
            rest++;
        if (isdigit((unsigned char)*rest)) {
            if (sscanf(rest, "%2d%n", &offset_minutes, &taken) != 1)
                return -1;
            rest += taken;
        }
        if (offset_hours > 23 || offset_minutes > 59)
            return -1;
        offset_seconds = sign * (offset_hours * 3600L + offset_minutes * 60L);
    }
    if (*rest != '\0' || month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 ||
        minute > 59 || second > 59)
        return -1;

    parts.tm_year = year - 1900;
    parts.tm_mon = month - 1;
    parts.tm_mday = day;
    parts.tm_hour = hour;
    parts.tm_min = minute;
    parts.tm_sec = second;
    *out = timegm(&parts);

    /* timegm normalises February 30 into March 2: reject such dates. */
    {
        struct tm check;

        gmtime_r(out, &check);
        if (check.tm_mday != day || check.tm_mon != month - 1 || check.tm_sec != second)
            return -1;
    }
    *out -= offset_seconds;
    return 0;
}

int catalog_check_name(const char *name, stow_error *err)
{
    size_t len = strlen(name);

    if (len == 0 || len > MANIFEST_NAME_MAX || name[0] == '.')
        goto invalid;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];

        if (!isalnum(c) && c != '.' && c != '_' && c != '-')
            goto invalid;
    }
    return 0;

invalid:
    stow_fail(err, STOW_EXIT_USAGE, "invalid backup name \"%s\"", name);
    stow_error_hint(err, "use 1 to %d letters, digits, '.', '_' or '-', not starting "
                         "with '.'; set it with --name", MANIFEST_NAME_MAX);
    return -1;
}

int catalog_key(char *out, size_t size, const char *name, const char *id, const char *file)
{
    int len = snprintf(out, size, "%s/%s/%s/%s", CATALOG_BACKUPS_DIR, name, id, file);

    return len < 0 || (size_t)len >= size ? -1 : 0;
}

void catalog_new_backup_id(time_t when, char out[32])
{
    struct tm utc;
    char stamp[20];

    gmtime_r(&when, &utc);
    strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &utc);
    snprintf(out, 32, "%s-%06x", stamp, randombytes_uniform(0x1000000));
}

json_t *manifest_parts_to_json(const struct storage_part_list *parts)
{
    json_t *array = json_array();

    for (size_t i = 0; i < parts->count; i++) {
        const struct storage_part *part = &parts->parts[i];
        char hex[65];

        manifest_hex(part->sha256, 32, hex);
        json_array_append_new(array, json_pack("{s:I, s:I, s:I, s:s}", "number",
                                               (json_int_t)part->number, "offset",
                                               (json_int_t)part->offset, "size",
                                               (json_int_t)part->size, "sha256", hex));
    }
    return array;
}

json_t *manifest_object_lock_to_json(const struct storage_object_lock *lock)
{
    char until[32];

    manifest_format_time(lock->retain_until, until);
    return json_pack("{s:s, s:s}", "mode", storage_lock_mode_name(lock->mode), "retain_until",
                     until);
}

void manifest_composite_sha256(const struct storage_part_list *parts, char out[80])
{
    crypto_hash_sha256_state state;
    uint8_t digest[32];
    char hex[65];

    crypto_hash_sha256_init(&state);
    for (size_t i = 0; i < parts->count; i++)
        crypto_hash_sha256_update(&state, parts->parts[i].sha256, 32);
    crypto_hash_sha256_final(&state, digest);
    manifest_hex(digest, 32, hex);
    snprintf(out, 80, "%s-%zu", hex, parts->count);
}

char *manifest_serialise(json_t *document, stow_error *err)
{
    char *text = json_dumps(document, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

    if (text == NULL)
        stow_fail(err, STOW_EXIT_FAILURE, "could not serialise the manifest");
    return text;
}

/* --- Validation ----------------------------------------------------------- */

struct parse_context {
    const char *key;
    stow_error *err;
};

static int invalid(struct parse_context *context, const char *what)
{
    return stow_fail(context->err, STOW_EXIT_VERIFY, "manifest %s is invalid: %s",
                     context->key, what);
}

static const char *required_string(struct parse_context *context, json_t *object,
                                   const char *path_name, const char *field)
{
    json_t *value = json_object_get(object, field);
    char what[160];

    if (json_is_string(value))
        return json_string_value(value);
    snprintf(what, sizeof what, "field %s%s is missing or not a string", path_name, field);
    invalid(context, what);
    return NULL;
}

static int required_uint(struct parse_context *context, json_t *object, const char *path_name,
                         const char *field, uint64_t *out)
{
    json_t *value = json_object_get(object, field);
    char what[160];

    if (json_is_integer(value) && json_integer_value(value) >= 0) {
        *out = (uint64_t)json_integer_value(value);
        return 0;
    }
    snprintf(what, sizeof what, "field %s%s is missing or not a non-negative integer",
             path_name, field);
    return invalid(context, what);
}

static int required_time(struct parse_context *context, json_t *object, const char *field,
                         time_t *out, long *microseconds)
{
    const char *text = required_string(context, object, "", field);
    char what[160];

    if (text == NULL)
        return -1;
    if (manifest_parse_time(text, out) == 0) {
        *microseconds = manifest_time_microseconds(text);
        return 0;
    }
    snprintf(what, sizeof what, "field %s is not an RFC 3339 time: \"%s\"", field, text);
    return invalid(context, what);
}

static int parse_part(struct parse_context *context, json_t *entry, size_t index,
                      uint64_t expected_offset, struct storage_part *part)
{
    uint64_t number = 0;
    char what[200];
    const char *sha;

    if (!json_is_object(entry))
        return invalid(context, "an entry of object.parts is not an object");
    if (required_uint(context, entry, "object.parts[].", "number", &number) != 0 ||
        required_uint(context, entry, "object.parts[].", "offset", &part->offset) != 0 ||
        required_uint(context, entry, "object.parts[].", "size", &part->size) != 0)
        return -1;
    sha = required_string(context, entry, "object.parts[].", "sha256");
    if (sha == NULL)
        return -1;

    part->number = (uint32_t)number;
    if (number != index + 1) {
        snprintf(what, sizeof what, "part %zu has number %llu", index + 1,
                 (unsigned long long)number);
        return invalid(context, what);
    }
    if (part->offset != expected_offset) {
        snprintf(what, sizeof what, "part %llu starts at offset %llu, expected %llu",
                 (unsigned long long)number, (unsigned long long)part->offset,
                 (unsigned long long)expected_offset);
        return invalid(context, what);
    }
    if (manifest_unhex(sha, part->sha256, 32) != 0) {
        snprintf(what, sizeof what, "part %llu has an invalid sha256", (unsigned long long)number);
        return invalid(context, what);
    }
    return 0;
}

static int parse_parts(struct parse_context *context, json_t *object, struct manifest *out)
{
    json_t *parts = json_object_get(object, "parts");
    size_t count;
    uint64_t offset = 0;
    char what[200];

    if (!json_is_array(parts))
        return invalid(context, "field object.parts is missing or not an array");
    count = json_array_size(parts);
    if (count > STORAGE_MAX_PARTS)
        return invalid(context, "object.parts has more than 10000 entries");
    out->parts.parts = count == 0 ? NULL : calloc(count, sizeof *out->parts.parts);
    if (count > 0 && out->parts.parts == NULL)
        return stow_fail(context->err, STOW_EXIT_FAILURE, "out of memory");
    out->parts.count = count;

    for (size_t i = 0; i < count; i++) {
        struct storage_part *part = &out->parts.parts[i];

        if (parse_part(context, json_array_get(parts, i), i, offset, part) != 0)
            return -1;
        offset += part->size;
    }
    out->parts.total_size = offset;
    if (offset != out->stored_bytes) {
        snprintf(what, sizeof what,
                 "the parts add up to %llu bytes but object.stored_bytes is %llu",
                 (unsigned long long)offset, (unsigned long long)out->stored_bytes);
        return invalid(context, what);
    }
    return 0;
}

static int parse_recipients(struct parse_context *context, json_t *encryption,
                            struct manifest *out)
{
    const char *algorithm = required_string(context, encryption, "encryption.", "algorithm");
    json_t *recipients;
    size_t count;

    if (algorithm == NULL)
        return -1;
    out->encrypted = strcmp(algorithm, "none") != 0;
    if (!out->encrypted)
        return 0;

    recipients = json_object_get(encryption, "recipients");
    count = json_array_size(recipients);
    if (!json_is_array(recipients) || count == 0)
        return invalid(context, "an encrypted backup lists no encryption.recipients");
    out->recipients = calloc(count, sizeof *out->recipients);
    if (out->recipients == NULL)
        return stow_fail(context->err, STOW_EXIT_FAILURE, "out of memory");
    out->recipient_count = count;

    for (size_t i = 0; i < count; i++) {
        json_t *entry = json_array_get(recipients, i);

        out->recipients[i].key_id =
            required_string(context, entry, "encryption.recipients[].", "key_id");
        out->recipients[i].wrapped_key =
            required_string(context, entry, "encryption.recipients[].", "wrapped_key");
        if (out->recipients[i].key_id == NULL || out->recipients[i].wrapped_key == NULL)
            return -1;
    }
    return 0;
}

/* A newer format is not damage, so it fails as a usage error with a hint
 * to upgrade, not as a verification failure. */
static int fail_newer_version(struct parse_context *context, json_int_t version)
{
    stow_fail(context->err, STOW_EXIT_USAGE,
              "manifest %s was written by a newer stowage: it has format_version %lld, and "
              "this stowage reads format_version %d to %d",
              context->key, (long long)version, MANIFEST_VERSION_OLDEST, MANIFEST_VERSION);
    stow_error_hint(context->err, "upgrade stowage to a version that reads format_version %lld",
                    (long long)version);
    return -1;
}

static int parse_header_fields(struct parse_context *context, struct manifest *out)
{
    json_t *doc = out->document;
    const char *format = required_string(context, doc, "", "format");
    json_t *version = json_object_get(doc, "format_version");
    char what[160];

    if (format == NULL)
        return -1;
    if (strcmp(format, MANIFEST_FORMAT) != 0)
        return invalid(context, "field format is not \"" MANIFEST_FORMAT "\"");
    if (json_is_integer(version) && json_integer_value(version) > MANIFEST_VERSION)
        return fail_newer_version(context, json_integer_value(version));
    if (version == NULL)
        return invalid(context, "field format_version is missing");
    if (!json_is_integer(version))
        return invalid(context, "field format_version is not an integer");
    if (json_integer_value(version) < MANIFEST_VERSION_OLDEST) {
        snprintf(what, sizeof what,
                 "format_version %lld is not supported (this stowage reads format_version %d "
                 "to %d)",
                 (long long)json_integer_value(version), MANIFEST_VERSION_OLDEST,
                 MANIFEST_VERSION);
        return invalid(context, what);
    }
    out->format_version = (int)json_integer_value(version);

    out->id = required_string(context, doc, "", "id");
    out->name = required_string(context, doc, "", "name");
    out->database = required_string(context, doc, "", "database");
    if (out->id == NULL || out->name == NULL || out->database == NULL)
        return -1;
    if (required_time(context, doc, "started_at", &out->started_at, &out->started_at_us) != 0 ||
        required_time(context, doc, "finished_at", &out->finished_at, &out->finished_at_us) != 0)
        return -1;
    return 0;
}

/* Parses the optional object_lock member. */
static int parse_object_lock(struct parse_context *context, struct manifest *out)
{
    json_t *lock = json_object_get(out->document, "object_lock");
    const char *mode;
    const char *until;
    char what[160];

    if (lock == NULL)
        return 0;
    if (!json_is_object(lock))
        return invalid(context, "field object_lock is not an object");
    mode = required_string(context, lock, "object_lock.", "mode");
    until = required_string(context, lock, "object_lock.", "retain_until");
    if (mode == NULL || until == NULL)
        return -1;
    if (manifest_parse_time(until, &out->lock_retain_until) != 0) {
        snprintf(what, sizeof what, "object_lock.retain_until is not an RFC 3339 time: \"%.40s\"",
                 until);
        return invalid(context, what);
    }
    if (strcmp(mode, "GOVERNANCE") == 0) {
        out->lock_mode = STORAGE_LOCK_GOVERNANCE;
    } else if (strcmp(mode, "COMPLIANCE") == 0) {
        out->lock_mode = STORAGE_LOCK_COMPLIANCE;
    } else {
        snprintf(what, sizeof what, "object_lock.mode \"%.40s\" is not GOVERNANCE or COMPLIANCE",
                 mode);
        return invalid(context, what);
    }
    return 0;
}

static int parse_document(struct parse_context *context, struct manifest *out)
{
    json_t *object;
    json_t *encryption;
    json_t *plaintext;

    if (parse_header_fields(context, out) != 0)
        return -1;

    object = json_object_get(out->document, "object");
    if (!json_is_object(object))
        return invalid(context, "field object is missing");
    out->object_key = required_string(context, object, "object.", "key");
    if (out->object_key == NULL ||
        required_uint(context, object, "object.", "stored_bytes", &out->stored_bytes) != 0 ||
        parse_parts(context, object, out) != 0)
        return -1;

    plaintext = json_object_get(out->document, "plaintext");
    if (!json_is_object(plaintext) ||
        required_uint(context, plaintext, "plaintext.", "bytes", &out->plain_bytes) != 0)
        return invalid(context, "field plaintext.bytes is missing");

    encryption = json_object_get(out->document, "encryption");
    if (!json_is_object(encryption))
        return invalid(context, "field encryption is missing");
    if (parse_object_lock(context, out) != 0)
        return -1;
    return parse_recipients(context, encryption, out);
}

int manifest_parse(const char *key, const char *text, size_t len, struct manifest *out,
                   stow_error *err)
{
    struct parse_context context = {key, err};
    json_error_t json_err;

    memset(out, 0, sizeof *out);
    out->document = json_loadb(text, len, JSON_REJECT_DUPLICATES, &json_err);
    if (out->document == NULL || !json_is_object(out->document)) {
        stow_fail(err, STOW_EXIT_VERIFY, "manifest %s is not valid JSON: %s (line %d)", key,
                  out->document == NULL ? json_err.text : "not an object", json_err.line);
        manifest_free(out);
        return -1;
    }
    if (parse_document(&context, out) != 0) {
        manifest_free(out);
        return -1;
    }
    return 0;
}

void manifest_free(struct manifest *manifest)
{
    if (manifest == NULL)
        return;
    free(manifest->recipients);
    storage_part_list_free(&manifest->parts);
    json_decref(manifest->document);
    memset(manifest, 0, sizeof *manifest);
}
