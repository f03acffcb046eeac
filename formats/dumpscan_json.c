/* The JSON form of a dump's contents (the manifest's "contents" member),
 * and the name helpers that the scanner and verification share. */
#include "formats/dumpscan.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/dumpscan_internal.h"

/* --- Names and COPY statements --------------------------------------------- */

static int is_plain_identifier(const char *name)
{
    if (name[0] == '\0' || !(islower((unsigned char)name[0]) || name[0] == '_'))
        return 0;
    for (const char *at = name; *at != '\0'; at++)
        if (!(islower((unsigned char)*at) || isdigit((unsigned char)*at) || *at == '_' ||
              *at == '$'))
            return 0;
    return 1;
}

static size_t append_identifier(char *out, size_t size, size_t used, const char *name)
{
    int plain = is_plain_identifier(name);

    if (!plain && used + 1 < size)
        out[used++] = '"';
    for (const char *at = name; *at != '\0' && used + 1 < size; at++) {
        if (!plain && *at == '"' && used + 2 < size)
            out[used++] = '"';
        out[used++] = *at;
    }
    if (!plain && used + 1 < size)
        out[used++] = '"';
    out[used] = '\0';
    return used;
}

void dumpscan_format_name(const char *schema, const char *name, char *out, size_t size)
{
    size_t used;

    if (size == 0)
        return;
    used = append_identifier(out, size, 0, schema != NULL ? schema : "");
    if (used + 1 < size) {
        out[used++] = '.';
        out[used] = '\0';
    }
    append_identifier(out, size, used, name != NULL ? name : "");
}

char *dumpscan_copy_to_stdout(const char *copy)
{
    static const char prefix[] = "COPY ";
    static const char suffix[] = " FROM stdin;";
    static const char replacement[] = " TO STDOUT";
    size_t len = strlen(copy);
    size_t body_len;
    char *out;

    /* pg_dump ends the statement with a newline. */
    while (len > 0 && isspace((unsigned char)copy[len - 1]))
        len--;
    if (len < sizeof prefix - 1 + sizeof suffix - 1 ||
        strncmp(copy, prefix, sizeof prefix - 1) != 0 ||
        strncmp(copy + len - (sizeof suffix - 1), suffix, sizeof suffix - 1) != 0)
        return NULL;

    body_len = len - (sizeof suffix - 1);
    out = malloc(body_len + sizeof replacement);
    if (out == NULL)
        return NULL;
    memcpy(out, copy, body_len);
    memcpy(out + body_len, replacement, sizeof replacement);
    return out;
}

/* --- Ownership ------------------------------------------------------------------ */

static void free_names(char **names, size_t count)
{
    for (size_t i = 0; i < count; i++)
        free(names[i]);
    free(names);
}

void dumpscan_contents_clear(struct dumpscan_contents *contents)
{
    free(contents->archive_version);
    free(contents->database);
    free(contents->server_version);
    free(contents->pg_dump_version);
    free(contents->encoding);
    free(contents->timezone);
    free(contents->bytea_output);
    free_names(contents->schemas, contents->schema_count);
    free_names(contents->extensions, contents->extension_count);
    for (size_t i = 0; i < contents->table_count; i++) {
        free(contents->tables[i].schema);
        free(contents->tables[i].name);
        free(contents->tables[i].copy);
    }
    free(contents->tables);
    for (size_t i = 0; i < contents->sequence_count; i++) {
        free(contents->sequences[i].schema);
        free(contents->sequences[i].name);
    }
    free(contents->sequences);
    memset(contents, 0, sizeof *contents);
}

void dumpscan_contents_free(struct dumpscan_contents *contents)
{
    if (contents == NULL)
        return;
    dumpscan_contents_clear(contents);
    free(contents);
}

/* --- Writing ------------------------------------------------------------------------ */

static json_t *string_or_null(const char *value)
{
    return value != NULL ? json_string(value) : json_null();
}

static json_t *tables_to_json(const struct dumpscan_contents *contents)
{
    json_t *tables = json_array();

    for (size_t i = 0; i < contents->table_count; i++) {
        const struct dumpscan_table *table = &contents->tables[i];
        int has_data = table->copy != NULL;

        json_array_append_new(
            tables, json_pack("{s:s, s:s, s:o, s:o, s:o}", "schema", table->schema, "name",
                              table->name, "copy", string_or_null(table->copy), "rows",
                              has_data ? json_integer((json_int_t)table->rows) : json_null(),
                              "digest", has_data ? json_string(table->digest) : json_null()));
    }
    return tables;
}

static json_t *sequences_to_json(const struct dumpscan_contents *contents)
{
    json_t *sequences = json_array();

    for (size_t i = 0; i < contents->sequence_count; i++) {
        const struct dumpscan_sequence *sequence = &contents->sequences[i];

        json_array_append_new(
            sequences,
            json_pack("{s:s, s:s, s:o, s:o}", "schema", sequence->schema, "name",
                      sequence->name, "value",
                      sequence->has_value ? json_integer(sequence->value) : json_null(),
                      "is_called",
                      sequence->has_value ? json_boolean(sequence->is_called) : json_null()));
    }
    return sequences;
}

json_t *dumpscan_contents_to_json(const struct dumpscan_contents *contents)
{
    json_t *schemas = json_array();
    json_t *extensions = json_array();

    for (size_t i = 0; i < contents->schema_count; i++)
        json_array_append_new(schemas, json_string(contents->schemas[i]));
    for (size_t i = 0; i < contents->extension_count; i++)
        json_array_append_new(extensions, json_pack("{s:s}", "name", contents->extensions[i]));

    return json_pack(
        "{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:s, s:o, s:o, s:{s:I, s:I}}",
        "archive_version", string_or_null(contents->archive_version),
        "database", string_or_null(contents->database),
        "server_version", string_or_null(contents->server_version),
        "pg_dump_version", string_or_null(contents->pg_dump_version),
        "encoding", string_or_null(contents->encoding),
        "timezone", string_or_null(contents->timezone),
        "bytea_output", string_or_null(contents->bytea_output),
        "schemas", schemas,
        "extensions", extensions,
        "table_digest_algorithm", rowdigest_algorithm_name(contents->table_digest_algorithm),
        "tables", tables_to_json(contents),
        "sequences", sequences_to_json(contents),
        "large_objects",
        "count", (json_int_t)contents->large_object_count,
        "bytes", (json_int_t)contents->large_object_bytes);
}

/* --- Reading ---------------------------------------------------------------------- */

static int invalid(stow_error *err, const char *field, const char *problem)
{
    return stow_fail(err, STOW_EXIT_VERIFY, "invalid dump contents in the manifest: %s %s",
                     field, problem);
}

/* Copies a string member; a null or missing member is allowed only when
 * optional is set. */
static int copy_string(const json_t *object, const char *key, int optional, char **out,
                       const char *where, stow_error *err)
{
    const json_t *value = json_object_get(object, key);
    char field[128];

    snprintf(field, sizeof field, "%s%s", where, key);
    if ((value == NULL || json_is_null(value)) && optional)
        return 0;
    if (!json_is_string(value))
        return invalid(err, field, "is not a string");

    *out = strdup(json_string_value(value));
    if (*out == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory");
    return 0;
}

static int read_count(const json_t *object, const char *key, uint64_t *out, const char *where,
                      stow_error *err)
{
    const json_t *value = json_object_get(object, key);
    char field[128];

    snprintf(field, sizeof field, "%s%s", where, key);
    if (!json_is_integer(value) || json_integer_value(value) < 0)
        return invalid(err, field, "is not a count");
    *out = (uint64_t)json_integer_value(value);
    return 0;
}

static int read_names(const json_t *array, const char *key, char ***out, size_t *count,
                      stow_error *err)
{
    const json_t *item;
    size_t index;

    if (!json_is_array(array))
        return invalid(err, key, "is not an array");
    *out = calloc(json_array_size(array) + 1, sizeof **out);
    if (*out == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory");

    json_array_foreach(array, index, item) {
        const json_t *name = json_is_object(item) ? json_object_get(item, "name") : item;

        if (!json_is_string(name))
            return invalid(err, key, "has an entry without a name");
        (*out)[index] = strdup(json_string_value(name));
        if ((*out)[index] == NULL)
            return stow_fail(err, STOW_EXIT_FAILURE, "out of memory");
        *count = index + 1;
    }
    return 0;
}

static int read_table(const json_t *item, struct dumpscan_table *table,
                      rowdigest_algorithm algorithm, stow_error *err)
{
    const json_t *digest = json_object_get(item, "digest");
    size_t digits = rowdigest_hex_length(algorithm);
    char problem[64];
    char *to_stdout;

    if (!json_is_object(item))
        return invalid(err, "tables", "has an entry that is not an object");
    if (copy_string(item, "schema", 0, &table->schema, "tables[].", err) != 0 ||
        copy_string(item, "name", 0, &table->name, "tables[].", err) != 0 ||
        copy_string(item, "copy", 1, &table->copy, "tables[].", err) != 0)
        return -1;
    if (table->copy == NULL)
        return 0;

    to_stdout = dumpscan_copy_to_stdout(table->copy);
    if (to_stdout == NULL)
        return invalid(err, "tables[].copy", "is not a COPY ... FROM stdin statement");
    free(to_stdout);
    if (read_count(item, "rows", &table->rows, "tables[].", err) != 0)
        return -1;
    if (!json_is_string(digest) || strlen(json_string_value(digest)) != digits ||
        strspn(json_string_value(digest), "0123456789abcdef") != digits) {
        snprintf(problem, sizeof problem, "is not %zu lower-case hex digits", digits);
        return invalid(err, "tables[].digest", problem);
    }
    memcpy(table->digest, json_string_value(digest), digits + 1);
    return 0;
}

static int read_sequence(const json_t *item, struct dumpscan_sequence *sequence,
                         stow_error *err)
{
    const json_t *value = json_object_get(item, "value");
    const json_t *is_called = json_object_get(item, "is_called");

    if (!json_is_object(item))
        return invalid(err, "sequences", "has an entry that is not an object");
    if (copy_string(item, "schema", 0, &sequence->schema, "sequences[].", err) != 0 ||
        copy_string(item, "name", 0, &sequence->name, "sequences[].", err) != 0)
        return -1;
    if ((value == NULL || json_is_null(value)) && (is_called == NULL || json_is_null(is_called)))
        return 0;

    if (!json_is_integer(value))
        return invalid(err, "sequences[].value", "is not an integer");
    if (!json_is_boolean(is_called))
        return invalid(err, "sequences[].is_called", "is not a boolean");
    sequence->has_value = 1;
    sequence->value = json_integer_value(value);
    sequence->is_called = json_is_true(is_called);
    return 0;
}

/* Manifests written before the algorithm was recorded used BLAKE2b-256. */
static int read_digest_algorithm(const json_t *json, struct dumpscan_contents *contents,
                                 stow_error *err)
{
    const json_t *name = json_object_get(json, "table_digest_algorithm");

    if (name == NULL) {
        contents->table_digest_algorithm = ROWDIGEST_SUM256_BLAKE2B;
        return 0;
    }
    if (!json_is_string(name))
        return invalid(err, "table_digest_algorithm", "is not a string");
    contents->table_digest_algorithm = rowdigest_algorithm_from_name(json_string_value(name));
    if (contents->table_digest_algorithm == 0) {
        stow_fail(err, STOW_EXIT_VERIFY,
                  "invalid dump contents in the manifest: table_digest_algorithm \"%s\" is "
                  "unknown to this version of stowage (it knows \"%s\" and \"%s\")",
                  json_string_value(name), rowdigest_algorithm_name(ROWDIGEST_SUM128_SIPHASH),
                  rowdigest_algorithm_name(ROWDIGEST_SUM256_BLAKE2B));
        stow_error_hint(err, "verify this backup with the stowage version that wrote it, "
                             "or a newer one");
        return -1;
    }
    return 0;
}

static int read_tables(const json_t *json, struct dumpscan_contents *contents, stow_error *err)
{
    const json_t *tables = json_object_get(json, "tables");
    const json_t *item;
    size_t index;

    if (!json_is_array(tables))
        return invalid(err, "tables", "is not an array");
    contents->tables = calloc(json_array_size(tables) + 1, sizeof *contents->tables);
    if (contents->tables == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory");

    json_array_foreach(tables, index, item) {
        contents->table_count = index + 1;
        if (read_table(item, &contents->tables[index], contents->table_digest_algorithm,
                       err) != 0)
            return -1;
    }
    return 0;
}

static int read_sequences(const json_t *json, struct dumpscan_contents *contents,
                          stow_error *err)
{
    const json_t *sequences = json_object_get(json, "sequences");
    const json_t *item;
    size_t index;

    if (!json_is_array(sequences))
        return invalid(err, "sequences", "is not an array");
    contents->sequences = calloc(json_array_size(sequences) + 1, sizeof *contents->sequences);
    if (contents->sequences == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory");

    json_array_foreach(sequences, index, item) {
        contents->sequence_count = index + 1;
        if (read_sequence(item, &contents->sequences[index], err) != 0)
            return -1;
    }
    return 0;
}

static int read_contents(const json_t *json, struct dumpscan_contents *contents,
                         stow_error *err)
{
    const json_t *objects = json_object_get(json, "large_objects");

    if (!json_is_object(json))
        return invalid(err, "contents", "is not an object");

    if (copy_string(json, "archive_version", 1, &contents->archive_version, "", err) != 0 ||
        copy_string(json, "database", 1, &contents->database, "", err) != 0 ||
        copy_string(json, "server_version", 1, &contents->server_version, "", err) != 0 ||
        copy_string(json, "pg_dump_version", 1, &contents->pg_dump_version, "", err) != 0 ||
        copy_string(json, "encoding", 0, &contents->encoding, "", err) != 0 ||
        copy_string(json, "timezone", 0, &contents->timezone, "", err) != 0 ||
        copy_string(json, "bytea_output", 0, &contents->bytea_output, "", err) != 0)
        return -1;

    if (read_digest_algorithm(json, contents, err) != 0 ||
        read_names(json_object_get(json, "schemas"), "schemas", &contents->schemas,
                   &contents->schema_count, err) != 0 ||
        read_names(json_object_get(json, "extensions"), "extensions", &contents->extensions,
                   &contents->extension_count, err) != 0 ||
        read_tables(json, contents, err) != 0 || read_sequences(json, contents, err) != 0)
        return -1;

    if (!json_is_object(objects))
        return invalid(err, "large_objects", "is not an object");
    if (read_count(objects, "count", &contents->large_object_count, "large_objects.", err) != 0 ||
        read_count(objects, "bytes", &contents->large_object_bytes, "large_objects.", err) != 0)
        return -1;
    return 0;
}

int dumpscan_contents_from_json(const json_t *json, struct dumpscan_contents **out,
                                stow_error *err)
{
    struct dumpscan_contents *contents = calloc(1, sizeof *contents);

    *out = NULL;
    if (contents == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory");

    if (read_contents(json, contents, err) != 0) {
        dumpscan_contents_free(contents);
        return -1;
    }
    *out = contents;
    return 0;
}
