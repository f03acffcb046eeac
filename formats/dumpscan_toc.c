/* Collection of the TOC entries that a dump's contents are made of. */
#include "formats/dumpscan_internal.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct raw_table {
    char *schema;
    char *name;
    char *copy;          /* TABLE DATA only */
    int is_data;         /* 1: TABLE DATA entry, 0: TABLE entry */
    int has_data;        /* TABLE DATA with a data block */
    size_t data_slot;    /* index of its data entry when has_data */
};

struct raw_sequence {
    char *schema;
    char *name;
    int is_set;          /* 1: SEQUENCE SET entry, 0: SEQUENCE entry */
    int64_t value;
    int is_called;
};

/* --- Growable arrays ----------------------------------------------------- */

static int grow(void **items, size_t *cap, size_t count, size_t size, stow_error *err)
{
    size_t new_cap;
    void *grown;

    if (count < *cap)
        return 0;
    new_cap = *cap == 0 ? 16 : *cap * 2;
    grown = realloc(*items, new_cap * size);
    if (grown == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory collecting the dump's TOC");
    *items = grown;
    *cap = new_cap;
    return 0;
}

static int append_name(char ***names, size_t *count, const char *name, stow_error *err)
{
    char **grown = realloc(*names, (*count + 1) * sizeof **names);

    if (grown == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory collecting the dump's TOC");
    *names = grown;
    grown[*count] = strdup(name);
    if (grown[*count] == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory collecting the dump's TOC");
    (*count)++;
    return 0;
}

static int add_data_entry(struct toc_collector *toc, const struct toc_entry_facts *facts,
                          enum data_kind kind, stow_error *err)
{
    struct data_entry *entry;

    if (grow((void **)&toc->data, &toc->data_cap, toc->data_count, sizeof *toc->data,
             err) != 0)
        return -1;

    entry = &toc->data[toc->data_count++];
    memset(entry, 0, sizeof *entry);
    entry->dump_id = facts->dump_id;
    entry->kind = kind;
    return 0;
}

/* --- setval() and client_encoding ---------------------------------------- */

static const char *skip_space(const char *at)
{
    while (*at != '\0' && isspace((unsigned char)*at))
        at++;
    return at;
}

static const char *skip_word(const char *at, const char *word)
{
    size_t len = strlen(word);

    return strncmp(at, word, len) == 0 ? at + len : NULL;
}

/* Skips a string literal: '...' with '' for a quote, as appendStringLiteral
 * in pg_dump writes it (it also doubles backslashes when
 * standard_conforming_strings is off, which needs no special handling
 * here). E'...', where a backslash escapes the next character, is accepted
 * too. */
static const char *skip_literal(const char *at)
{
    int escapes = 0;

    if (*at == 'E') {
        escapes = 1;
        at++;
    }
    if (*at++ != '\'')
        return NULL;

    for (;;) {
        if (*at == '\0')
            return NULL;
        if (escapes && *at == '\\' && at[1] != '\0') {
            at += 2;
        } else if (*at == '\'' && at[1] == '\'') {
            at += 2;
        } else if (*at == '\'') {
            return at + 1;
        } else {
            at++;
        }
    }
}

static const char *parse_int64(const char *at, int64_t *value)
{
    char *end;
    long long parsed;

    if (*at != '-' && !isdigit((unsigned char)*at))
        return NULL;
    errno = 0;
    parsed = strtoll(at, &end, 10);
    if (errno != 0 || end == at)
        return NULL;
    *value = parsed;
    return end;
}

/* Accepts only the form that dumpSequenceData() in pg_dump 15 writes:
 *   SELECT pg_catalog.setval('<qualified name>', <last_value>, <true|false>);
 * followed by a newline. The name comes from the TOC entry, so the literal
 * is only checked for syntax. Any other form fails rather than being
 * guessed at, so a pg_dump that writes another form is noticed. */
int dumpscan_parse_setval(const char *defn, int64_t *value, int *is_called)
{
    const char *at = skip_space(defn);

    at = skip_word(at, "SELECT pg_catalog.setval(");
    if (at != NULL)
        at = skip_literal(skip_space(at));
    if (at != NULL)
        at = skip_word(skip_space(at), ",");
    if (at != NULL)
        at = parse_int64(skip_space(at), value);
    if (at != NULL)
        at = skip_word(skip_space(at), ",");
    if (at == NULL)
        return -1;

    at = skip_space(at);
    if (strncmp(at, "true", 4) == 0) {
        *is_called = 1;
        at += 4;
    } else if (strncmp(at, "false", 5) == 0) {
        *is_called = 0;
        at += 5;
    } else {
        return -1;
    }

    at = skip_word(skip_space(at), ")");
    if (at != NULL)
        at = skip_word(skip_space(at), ";");
    return at != NULL && *skip_space(at) == '\0' ? 0 : -1;
}

/* "SET client_encoding = 'UTF8';": the name between the quotes, as
 * pg_restore's processEncodingEntry reads it. */
static int parse_encoding(const char *defn, char **out, stow_error *err)
{
    const char *start = defn != NULL ? strchr(defn, '\'') : NULL;
    const char *end = start != NULL ? strchr(start + 1, '\'') : NULL;

    if (end == NULL || end == start + 1)
        return stow_fail(err, STOW_EXIT_FAILURE, "invalid ENCODING entry: %s",
                         defn != NULL ? defn : "(null)");

    free(*out);
    *out = strndup(start + 1, (size_t)(end - start - 1));
    if (*out == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory");
    return 0;
}

static int is_copy_statement(const char *copy)
{
    char *to_stdout = copy != NULL ? dumpscan_copy_to_stdout(copy) : NULL;
    int valid = to_stdout != NULL;

    free(to_stdout);
    return valid;
}

/* Copies a COPY statement without pg_dump's closing newline. */
static char *copy_statement_dup(const char *copy)
{
    size_t len = strlen(copy);

    while (len > 0 && isspace((unsigned char)copy[len - 1]))
        len--;
    return strndup(copy, len);
}

/* --- Entries ---------------------------------------------------------------- */

static int add_raw_table(struct toc_collector *toc, const struct toc_entry_facts *facts,
                         int is_data, stow_error *err)
{
    struct raw_table *table;

    if (is_data && facts->had_dumper && !is_copy_statement(facts->copy))
        return stow_fail(err, STOW_EXIT_FAILURE,
                         "table data without a COPY ... FROM stdin statement; stowage runs "
                         "pg_dump without --inserts");

    if (grow((void **)&toc->tables, &toc->table_cap, toc->table_count, sizeof *toc->tables,
             err) != 0)
        return -1;
    table = &toc->tables[toc->table_count];
    memset(table, 0, sizeof *table);
    table->is_data = is_data;
    table->has_data = is_data && facts->had_dumper;
    table->schema = strdup(facts->namespace);
    table->name = strdup(facts->tag);
    table->copy = table->has_data ? copy_statement_dup(facts->copy) : NULL;
    toc->table_count++;
    if (table->schema == NULL || table->name == NULL || (table->has_data && table->copy == NULL))
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory collecting the dump's TOC");

    if (!table->has_data)
        return 0;
    table->data_slot = toc->data_count;
    return add_data_entry(toc, facts, DATA_TABLE, err);
}

static int add_raw_sequence(struct toc_collector *toc, const struct toc_entry_facts *facts,
                            int is_set, stow_error *err)
{
    struct raw_sequence *sequence;
    int64_t value = 0;
    int is_called = 0;

    if (is_set && (facts->defn == NULL ||
                   dumpscan_parse_setval(facts->defn, &value, &is_called) != 0))
        return stow_fail(err, STOW_EXIT_FAILURE,
                         "SEQUENCE SET is not a pg_catalog.setval(name, value, is_called) "
                         "call: %s", facts->defn != NULL ? facts->defn : "(null)");

    if (grow((void **)&toc->sequences, &toc->sequence_cap, toc->sequence_count,
             sizeof *toc->sequences, err) != 0)
        return -1;
    sequence = &toc->sequences[toc->sequence_count++];
    memset(sequence, 0, sizeof *sequence);
    sequence->is_set = is_set;
    sequence->value = value;
    sequence->is_called = is_called;
    sequence->schema = strdup(facts->namespace);
    sequence->name = strdup(facts->tag);
    if (sequence->schema == NULL || sequence->name == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory collecting the dump's TOC");
    return 0;
}

static int is_one_of(const char *desc, const char *const *names)
{
    for (; *names != NULL; names++)
        if (strcmp(desc, *names) == 0)
            return 1;
    return 0;
}

int toc_collector_add(struct toc_collector *toc, struct dumpscan_contents *contents,
                      const struct toc_entry_facts *facts, stow_error *err)
{
    static const char *const in_schema[] = {"TABLE", "TABLE DATA", "SEQUENCE",
                                            "SEQUENCE SET", NULL};
    const char *desc = facts->desc;

    if (desc == NULL || facts->tag == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE, "TOC entry without a type or a name");
    if (is_one_of(desc, in_schema) && (facts->namespace == NULL || facts->namespace[0] == '\0'))
        return stow_fail(err, STOW_EXIT_FAILURE, "%s entry without a schema", desc);

    if (strcmp(desc, "SCHEMA") == 0)
        return append_name(&contents->schemas, &contents->schema_count, facts->tag, err);
    if (strcmp(desc, "EXTENSION") == 0)
        return append_name(&contents->extensions, &contents->extension_count, facts->tag, err);
    if (strcmp(desc, "ENCODING") == 0)
        return parse_encoding(facts->defn, &contents->encoding, err);
    if (strcmp(desc, "TABLE") == 0 || strcmp(desc, "TABLE DATA") == 0)
        return add_raw_table(toc, facts, strcmp(desc, "TABLE DATA") == 0, err);
    if (strcmp(desc, "SEQUENCE") == 0 || strcmp(desc, "SEQUENCE SET") == 0)
        return add_raw_sequence(toc, facts, strcmp(desc, "SEQUENCE SET") == 0, err);
    if (strcmp(desc, "BLOBS") == 0 && facts->had_dumper)
        return add_data_entry(toc, facts, DATA_LARGE_OBJECTS, err);
    if (facts->had_dumper)
        return add_data_entry(toc, facts, DATA_OTHER, err);
    return 0;
}

/* --- Resolution --------------------------------------------------------------- */

static int compare_names(const char *schema_a, const char *name_a, const char *schema_b,
                         const char *name_b)
{
    int order = strcmp(schema_a, schema_b);

    return order != 0 ? order : strcmp(name_a, name_b);
}

static int compare_raw_tables(const void *left, const void *right)
{
    const struct raw_table *a = left;
    const struct raw_table *b = right;
    int order = compare_names(a->schema, a->name, b->schema, b->name);

    return order != 0 ? order : a->is_data - b->is_data;
}

static int compare_raw_sequences(const void *left, const void *right)
{
    const struct raw_sequence *a = left;
    const struct raw_sequence *b = right;
    int order = compare_names(a->schema, a->name, b->schema, b->name);

    return order != 0 ? order : a->is_set - b->is_set;
}

static int compare_strings(const void *left, const void *right)
{
    return strcmp(*(char *const *)left, *(char *const *)right);
}

/* qsort() must not see the NULL of an empty array. */
static void sort(void *items, size_t count, size_t size,
                 int (*compare)(const void *, const void *))
{
    if (count > 1)
        qsort(items, count, size, compare);
}

static int fail_twice(const char *object_kind, const char *schema, const char *name, stow_error *err)
{
    char qualified[256];

    dumpscan_format_name(schema, name, qualified, sizeof qualified);
    return stow_fail(err, STOW_EXIT_FAILURE, "invalid pg_dump archive: the TOC lists %s %s twice",
                     object_kind, qualified);
}

/* Sorts the raw entries and merges each TABLE with its TABLE DATA. */
static int resolve_tables(struct toc_collector *toc, struct dumpscan_contents *contents,
                          stow_error *err)
{
    size_t count = 0;

    sort(toc->tables, toc->table_count, sizeof *toc->tables, compare_raw_tables);
    contents->tables = calloc(toc->table_count + 1, sizeof *contents->tables);
    if (contents->tables == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory collecting the dump's TOC");

    for (size_t i = 0; i < toc->table_count; i++) {
        struct raw_table *raw = &toc->tables[i];
        struct dumpscan_table *last = count > 0 ? &contents->tables[count - 1] : NULL;
        int same = last != NULL &&
                   compare_names(last->schema, last->name, raw->schema, raw->name) == 0;

        /* Sorting puts a TABLE entry before the TABLE DATA of its name. */
        if (same && (!raw->is_data || last->copy != NULL))
            return fail_twice(raw->is_data ? "the data of table" : "table", raw->schema,
                              raw->name, err);
        if (!same) {
            last = &contents->tables[count++];
            contents->table_count = count;
            last->schema = raw->schema;
            last->name = raw->name;
            raw->schema = raw->name = NULL;
        }
        if (raw->has_data) {
            last->copy = raw->copy;
            raw->copy = NULL;
            toc->data[raw->data_slot].table = last;
        }
    }
    return 0;
}

static int resolve_sequences(struct toc_collector *toc, struct dumpscan_contents *contents,
                             stow_error *err)
{
    size_t count = 0;

    sort(toc->sequences, toc->sequence_count, sizeof *toc->sequences, compare_raw_sequences);
    contents->sequences = calloc(toc->sequence_count + 1, sizeof *contents->sequences);
    if (contents->sequences == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory collecting the dump's TOC");

    for (size_t i = 0; i < toc->sequence_count; i++) {
        struct raw_sequence *raw = &toc->sequences[i];
        struct dumpscan_sequence *last = count > 0 ? &contents->sequences[count - 1] : NULL;
        int same = last != NULL &&
                   compare_names(last->schema, last->name, raw->schema, raw->name) == 0;

        if (same && (!raw->is_set || last->has_value))
            return fail_twice(raw->is_set ? "the value of sequence" : "sequence", raw->schema,
                              raw->name, err);
        if (!same) {
            last = &contents->sequences[count++];
            last->schema = raw->schema;
            last->name = raw->name;
            raw->schema = raw->name = NULL;
        }
        contents->sequence_count = count;
        if (raw->is_set) {
            last->has_value = 1;
            last->value = raw->value;
            last->is_called = raw->is_called;
        }
    }
    return 0;
}

int toc_collector_resolve(struct toc_collector *toc, struct dumpscan_contents *contents,
                          stow_error *err)
{
    if (resolve_tables(toc, contents, err) != 0 || resolve_sequences(toc, contents, err) != 0)
        return -1;

    sort(contents->schemas, contents->schema_count, sizeof *contents->schemas,
         compare_strings);
    sort(contents->extensions, contents->extension_count, sizeof *contents->extensions,
         compare_strings);
    return 0;
}

struct data_entry *toc_collector_find_data(struct toc_collector *toc, int64_t dump_id)
{
    /* pg_dump writes the blocks in TOC order, so the expected one is
     * almost always next. */
    if (toc->cursor < toc->data_count && toc->data[toc->cursor].dump_id == dump_id)
        return &toc->data[toc->cursor++];

    for (size_t i = 0; i < toc->data_count; i++) {
        if (toc->data[i].dump_id == dump_id) {
            toc->cursor = i + 1;
            return &toc->data[i];
        }
    }
    return NULL;
}

struct data_entry *toc_collector_first_unseen(struct toc_collector *toc)
{
    for (size_t i = 0; i < toc->data_count; i++)
        if (!toc->data[i].seen)
            return &toc->data[i];
    return NULL;
}

void toc_collector_free(struct toc_collector *toc)
{
    for (size_t i = 0; i < toc->table_count; i++) {
        free(toc->tables[i].schema);
        free(toc->tables[i].name);
        free(toc->tables[i].copy);
    }
    for (size_t i = 0; i < toc->sequence_count; i++) {
        free(toc->sequences[i].schema);
        free(toc->sequences[i].name);
    }
    free(toc->tables);
    free(toc->sequences);
    free(toc->data);
    memset(toc, 0, sizeof *toc);
}
