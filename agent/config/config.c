/* Reading the configuration file with libinih into sections of entries. */
#include "config/config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ini.h>

#include "catalog.h"
#include "common/log.h"

/* State of one parse: the reader's position in the text and the handler's
 * results. inih reads one line ahead of no handler call, so the reader's
 * line count is the line of the current handler call. */
struct parse_state {
    const char *text;
    size_t len;
    size_t offset;
    int line;
    int continued;             /* the current line starts with blanks */
    const char *label;
    struct config *config;
    stow_error *err;
    const char *last_key;      /* key of the previous handler call */
    int error_line;            /* line of the handler's error; 0: none */
    long section_index;        /* section of the last header; -1: none yet */
    int key_in_section;        /* a key followed the last header */
    char header[INI_MAX_LINE]; /* text of the last header, between [ and ] */
};

static int fail_at(struct parse_state *state, const char *fmt, const char *a, const char *b)
{
    char message[STOW_ERROR_MESSAGE_MAX / 2];

    snprintf(message, sizeof message, fmt, a, b);
    state->error_line = state->line;
    return stow_fail(state->err, STOW_EXIT_USAGE, "%s:%d: %s", state->label, state->line,
                     message);
}

static int enter_header(struct parse_state *state, const char *header);

/* Finds the text between [ and ] when line is a section header as inih
 * reads it: first non-blank '[', unless the line is indented after a key,
 * which makes it a continuation line. */
static int find_header(const struct parse_state *state, char *line, char **header)
{
    char *start = line + strspn(line, " \t\r\f\v");
    char *end;

    if (*start != '[' || (start > line && state->key_in_section))
        return 0;
    end = strchr(start + 1, ']');
    if (end == NULL)
        return 0; /* inih reports the syntax error */
    *end = '\0';
    *header = start + 1;
    return 1;
}

/* Records a section header from the raw line, because inih passes the
 * handler a copy cut to 49 characters (MAX_SECTION 50 in inih release
 * 55), which would cut a long database name or merge two names that share
 * a prefix. */
static int note_header(struct parse_state *state, const char *line, size_t len)
{
    char copy[INI_MAX_LINE];
    char *header;

    if (len >= sizeof copy)
        return 0; /* then current_section reports the header inih read */
    memcpy(copy, line, len + 1);
    /* inih skips a UTF-8 byte order mark at the start of the file. */
    if (state->line == 1 && strncmp(copy, "\xEF\xBB\xBF", 3) == 0)
        memmove(copy, copy + 3, len - 2);
    if (!find_header(state, copy, &header))
        return 0;
    snprintf(state->header, sizeof state->header, "%s", header);
    state->key_in_section = 0;
    return enter_header(state, state->header);
}

/* inih's reader: one line at a time, so that the line number is known.
 * inih (Debian's build) has a 200-byte line buffer and would split a
 * longer line into two, so such a line is an error here. */
static char *read_line(char *line, int size, void *stream)
{
    struct parse_state *state = stream;
    const char *start = state->text + state->offset;
    size_t remaining = state->len - state->offset;
    const char *newline;
    size_t len;

    if (remaining == 0 || stow_error_is_set(state->err))
        return NULL;
    newline = memchr(start, '\n', remaining);
    len = newline != NULL ? (size_t)(newline - start) + 1 : remaining;
    state->line++;
    if (len >= (size_t)size) {
        stow_fail(state->err, STOW_EXIT_USAGE, "%s:%d: line is longer than %d characters",
                  state->label, state->line, size - 2);
        stow_error_hint(state->err, "continue a long value on the next line, indented");
        return NULL;
    }
    memcpy(line, start, len);
    line[len] = '\0';
    state->offset += len;
    state->continued = start[0] == ' ' || start[0] == '\t';
    if (note_header(state, line, len) != 0)
        return NULL;
    return line;
}

static struct config_section *find_section(struct config *config, const char *name)
{
    for (size_t i = 0; i < config->count; i++) {
        const char *existing = config->sections[i].name;

        if ((name == NULL && existing == NULL) ||
            (name != NULL && existing != NULL && strcmp(name, existing) == 0))
            return &config->sections[i];
    }
    return NULL;
}

/* Parses "defaults" or "database NAME" into *name (NULL for defaults). */
static int parse_section_name(struct parse_state *state, const char *section, const char **name)
{
    const char *rest;

    if (strcmp(section, "defaults") == 0) {
        *name = NULL;
        return 0;
    }
    if (strncmp(section, "database", 8) != 0 || (section[8] != ' ' && section[8] != '\t')) {
        fail_at(state, "unknown section [%s]%s", section, "");
        stow_error_hint(state->err, "use [defaults] or [database NAME]");
        return -1;
    }
    rest = section + 8;
    rest += strspn(rest, " \t");
    if (catalog_check_name(rest, NULL) != 0) {
        fail_at(state, "invalid database name \"%s\" in section [%s]", rest, section);
        stow_error_hint(state->err, "a name has 1 to %d letters, digits, '.', '_' or '-', and "
                                    "does not start with '.'", MANIFEST_NAME_MAX);
        return -1;
    }
    *name = rest;
    return 0;
}

/* Makes the section of a header line current, adding it when it is new,
 * so that a section without keys exists too. */
static int enter_header(struct parse_state *state, const char *header)
{
    struct config *config = state->config;
    struct config_section *found;
    const char *database;

    if (parse_section_name(state, header, &database) != 0)
        return -1;
    found = find_section(config, database);
    if (found != NULL) {
        state->section_index = found - config->sections;
        return 0;
    }

    if (config->count == config->capacity) {
        size_t capacity = config->capacity == 0 ? 4 : config->capacity * 2;
        struct config_section *grown = realloc(config->sections, capacity * sizeof *grown);

        if (grown == NULL)
            return stow_fail(state->err, STOW_EXIT_FAILURE, "out of memory");
        config->sections = grown;
        config->capacity = capacity;
    }
    found = &config->sections[config->count];
    memset(found, 0, sizeof *found);
    found->line = state->line;
    if (database != NULL && (found->name = strdup(database)) == NULL)
        return stow_fail(state->err, STOW_EXIT_FAILURE, "out of memory");
    state->section_index = (long)config->count++;
    return 0;
}

/* Returns the section of the last header, which inih's copy (section_text)
 * must begin, or NULL for a key before any header (err filled). */
static struct config_section *current_section(struct parse_state *state,
                                              const char *section_text, const char *name)
{
    if (section_text[0] == '\0' || state->section_index < 0) {
        fail_at(state, "key %s is outside a section%s", name, "");
        stow_error_hint(state->err, "put keys under [defaults] or [database NAME]");
        return NULL;
    }
    if (strncmp(state->header, section_text, strlen(section_text)) != 0) {
        fail_at(state, "libinih read the section header [%s] as [%s]", state->header,
                section_text);
        stow_error_hint(state->err, "write the section header on a line of its own");
        return NULL;
    }
    return &state->config->sections[state->section_index];
}

static struct config_entry *find_entry(struct config_section *section, const char *key)
{
    for (size_t i = section->count; i > 0; i--) {
        if (strcmp(section->entries[i - 1].key, key) == 0)
            return &section->entries[i - 1];
    }
    return NULL;
}

static int add_entry(struct config_section *section, const char *key, const char *value,
                     int line)
{
    struct config_entry *entry;

    if (section->count == section->capacity) {
        size_t capacity = section->capacity == 0 ? 8 : section->capacity * 2;
        struct config_entry *grown = realloc(section->entries, capacity * sizeof *grown);

        if (grown == NULL)
            return -1;
        section->entries = grown;
        section->capacity = capacity;
    }
    entry = &section->entries[section->count];
    entry->key = strdup(key);
    entry->value = strdup(value);
    entry->line = line;
    if (entry->key == NULL || entry->value == NULL) {
        free(entry->key);
        free(entry->value);
        return -1;
    }
    section->count++;
    return 0;
}

/* Joins an indented continuation line to the value of a one-value key. */
static int continue_entry(struct config_entry *entry, const char *value)
{
    size_t len = strlen(entry->value) + 1 + strlen(value) + 1;
    char *joined = malloc(len);

    if (joined == NULL)
        return -1;
    snprintf(joined, len, "%s %s", entry->value, value);
    free(entry->value);
    entry->value = joined;
    return 0;
}

static void note_secret(struct parse_state *state, const char *value)
{
    char *copy = strdup(value);

    if (copy == NULL)
        return;
    stow_redact_passwords(copy);
    if (strcmp(copy, value) != 0 && state->config->secret_line == 0)
        state->config->secret_line = state->line;
    free(copy);
}

static int check_entry(struct parse_state *state, const struct config_key *key,
                       struct config_section *section, const char *value)
{
    struct config_entry *earlier = find_entry(section, key->name);
    char line[16];

    if (value[0] == '\0')
        return fail_at(state, "key %s has no value%s", key->name, "");
    if (section->name != NULL && config_key_defaults_only(key)) {
        fail_at(state, "key %s is set in [database %s]", key->name, section->name);
        stow_error_hint(state->err, "set it in [defaults]: one run keeps one state file for "
                                    "all databases");
        return -1;
    }
    if (earlier != NULL && key->kind != CONFIG_LIST) {
        snprintf(line, sizeof line, "%d", earlier->line);
        return fail_at(state, "key %s is set again (first on line %s)", key->name, line);
    }
    if (config_check_value(key, value, state->err) != 0) {
        stow_error_prefix(state->err, "%s:%d", state->label, state->line);
        return -1;
    }
    return 0;
}

/* inih's handler: returns 1 to go on, 0 on an error (kept in state->err). */
static int handle_entry(void *user, const char *section_text, const char *name, const char *value)
{
    struct parse_state *state = user;
    struct config_section *section;
    const struct config_key *key;
    const char *previous = state->last_key;

    state->last_key = NULL;
    if (stow_error_is_set(state->err))
        return 0;
    section = current_section(state, section_text, name);
    if (section == NULL)
        return 0;
    state->key_in_section = 1;
    key = config_key_find(name);
    if (key == NULL) {
        fail_at(state, "unknown key \"%s\" in [%s]", name, state->header);
        stow_error_hint(state->err, "keys are the long option names of the commands without "
                                    "\"--\"; see docs/CONFIG.md");
        return 0;
    }
    note_secret(state, value);

    /* inih reports an indented line as the previous key again. */
    if (state->continued && previous != NULL && key->kind != CONFIG_LIST &&
        find_entry(section, name) != NULL) {
        if (continue_entry(find_entry(section, name), value) != 0)
            return stow_fail(state->err, STOW_EXIT_FAILURE, "out of memory"), 0;
        state->last_key = find_entry(section, name)->key;
        return 1;
    }
    if (check_entry(state, key, section, value) != 0)
        return 0;
    if (add_entry(section, name, value, state->line) != 0)
        return stow_fail(state->err, STOW_EXIT_FAILURE, "out of memory"), 0;
    state->last_key = section->entries[section->count - 1].key;
    return 1;
}

/* Checks the values that continuation lines completed. */
static int check_completed_values(const struct config *config, const char *label,
                                  stow_error *err)
{
    for (size_t i = 0; i < config->count; i++) {
        const struct config_section *section = &config->sections[i];

        for (size_t j = 0; j < section->count; j++) {
            const struct config_entry *entry = &section->entries[j];

            if (config_check_value(config_key_find(entry->key), entry->value, err) != 0) {
                stow_error_prefix(err, "%s:%d", label, entry->line);
                return -1;
            }
        }
    }
    return 0;
}

int config_parse_text(const char *text, size_t len, const char *label, struct config *out,
                      stow_error *err)
{
    struct parse_state state;
    int rc;

    memset(out, 0, sizeof *out);
    memset(&state, 0, sizeof state);
    state.text = text;
    state.len = len;
    state.label = label;
    state.config = out;
    state.err = err;
    state.section_index = -1;

    if (memchr(text, '\0', len) != NULL) {
        stow_fail(err, STOW_EXIT_USAGE, "%s: the file contains a NUL byte; it is not a text "
                                        "file", label);
        return -1;
    }
    rc = ini_parse_stream(read_line, &state, handle_entry, &state);
    /* inih reports its own syntax errors only at the end, by line. */
    if (rc > 0 && state.error_line > rc)
        stow_error_clear(err);
    if (rc != 0 && !stow_error_is_set(err)) {
        stow_fail(err, STOW_EXIT_USAGE, "%s:%d: syntax error: expected [section], key = value "
                                        "or a comment", label, rc > 0 ? rc : state.line);
        stow_error_hint(err, "see docs/CONFIG.md for the file's format");
    }
    if (!stow_error_is_set(err))
        check_completed_values(out, label, err);
    if (stow_error_is_set(err)) {
        config_free(out);
        return -1;
    }
    return 0;
}

void config_free(struct config *config)
{
    for (size_t i = 0; i < config->count; i++) {
        struct config_section *section = &config->sections[i];

        for (size_t j = 0; j < section->count; j++) {
            free(section->entries[j].key);
            free(section->entries[j].value);
        }
        free(section->entries);
        free(section->name);
    }
    free(config->sections);
    free(config->path);
    memset(config, 0, sizeof *config);
}

const struct config_section *config_database(const struct config *config, const char *name)
{
    if (name == NULL)
        return NULL;
    for (size_t i = 0; i < config->count; i++) {
        if (config->sections[i].name != NULL && strcmp(config->sections[i].name, name) == 0)
            return &config->sections[i];
    }
    return NULL;
}

int config_check_database(const struct config *config, const char *name, stow_error *err)
{
    char sections[STOW_ERROR_HINT_MAX / 2] = "";
    size_t used = 0;

    if (config == NULL || config->path == NULL || config_database(config, name) != NULL)
        return 0;
    for (size_t i = 0; i < config->count; i++) {
        const char *section = config->sections[i].name;

        if (section != NULL && used < sizeof sections)
            used += (size_t)snprintf(sections + used, sizeof sections - used, "%s%s",
                                     used > 0 ? ", " : "", section);
    }
    if (used == 0)
        return 0;
    stow_fail(err, STOW_EXIT_USAGE, "no [database %s] section in %s", name, config->path);
    stow_error_hint(err, "the file has [database NAME] sections for: %s; correct --name or "
                         "add the section", sections);
    return -1;
}

/* Returns the first entry of key in section and counts them all. */
static const struct config_entry *section_lookup(const struct config_section *section,
                                                 const char *key, size_t *count)
{
    const struct config_entry *first = NULL;

    *count = 0;
    if (section == NULL)
        return NULL;
    for (size_t i = 0; i < section->count; i++) {
        if (strcmp(section->entries[i].key, key) != 0)
            continue;
        if (first == NULL)
            first = &section->entries[i];
        (*count)++;
    }
    return first;
}

const struct config_entry *config_lookup(const struct config *config, const char *name,
                                         const char *key, size_t *count)
{
    const struct config_entry *found;
    const struct config_section *defaults = NULL;

    *count = 0;
    if (config == NULL)
        return NULL;
    found = section_lookup(config_database(config, name), key, count);
    if (found != NULL)
        return found;
    for (size_t i = 0; i < config->count; i++) {
        if (config->sections[i].name == NULL)
            defaults = &config->sections[i];
    }
    return section_lookup(defaults, key, count);
}

/* Rejects a configuration that contains a password and that others may
 * read, as key files are rejected, and warns when only its group may. */
static int check_file_mode(const char *path, const struct stat *st, const struct config *config,
                           stow_error *err)
{
    unsigned mode = (unsigned)(st->st_mode & 07777);

    if ((mode & S_IWOTH) != 0) {
        stow_fail(err, STOW_EXIT_USAGE, "configuration file %s is writable by others (mode "
                                        "%04o)", path, mode);
        stow_error_hint(err, "run chmod o-w %s", path);
        return -1;
    }
    if (config->secret_line == 0)
        return 0;
    if ((mode & S_IROTH) != 0) {
        stow_fail(err, STOW_EXIT_USAGE, "configuration file %s is readable by others (mode "
                                        "%04o) and line %d contains a password",
                  path, mode, config->secret_line);
        stow_error_hint(err, "run chmod 600 %s, or move the password to a .pgpass file "
                             "(PGPASSFILE)", path);
        return -1;
    }
    if ((mode & S_IRGRP) != 0)
        stow_log_warn("configuration file %s is readable by its group (mode %04o) and line %d "
                      "contains a password; consider chmod 600 or a .pgpass file",
                      path, mode, config->secret_line);
    return 0;
}

static int read_file(const char *path, char **text, size_t *len, struct stat *st,
                     stow_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t got;

    if (fd < 0)
        return stow_fail_errno(err, STOW_EXIT_USAGE, errno, "opening configuration file", path);
    if (fstat(fd, st) != 0 || !S_ISREG(st->st_mode) || st->st_size > CONFIG_FILE_MAX) {
        close(fd);
        return stow_fail(err, STOW_EXIT_USAGE, "configuration file %s is not a regular file "
                                               "of at most %d bytes", path, CONFIG_FILE_MAX);
    }
    *text = malloc((size_t)st->st_size + 1);
    if (*text == NULL) {
        close(fd);
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory");
    }
    *len = 0;
    while ((got = read(fd, *text + *len, (size_t)st->st_size - *len)) > 0)
        *len += (size_t)got;
    close(fd);
    if (got < 0) {
        free(*text);
        return stow_fail_errno(err, STOW_EXIT_USAGE, errno, "reading configuration file", path);
    }
    (*text)[*len] = '\0';
    return 0;
}

int config_load_file(const char *path, struct config *out, stow_error *err)
{
    struct stat st;
    char *text = NULL;
    size_t len = 0;
    int rc;

    memset(out, 0, sizeof *out);
    if (read_file(path, &text, &len, &st, err) != 0)
        return -1;
    rc = config_parse_text(text, len, path, out, err);
    free(text);
    if (rc != 0)
        return -1;
    if (check_file_mode(path, &st, out, err) != 0 || (out->path = strdup(path)) == NULL) {
        config_free(out);
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory");
    }
    return 0;
}
