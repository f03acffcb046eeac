/* Backup manifests: the JSON document that makes a backup exist.
 *
 * A manifest is written last, after its data object is complete, so its
 * presence is the commit point of a backup. The document is kept as a
 * jansson tree; the fields that commands use are also parsed into the
 * struct below by manifest_parse, which validates them (required fields,
 * types, a part list that tiles the object exactly). The schema is
 * specified in formats/FORMAT.md. */
#ifndef STOWAGE_MANIFEST_H
#define STOWAGE_MANIFEST_H

#include <jansson.h>
#include <stdint.h>
#include <time.h>

#include "common/buf.h"
#include "common/error.h"
#include "storage/storage.h"

#define MANIFEST_FORMAT "stowage-manifest"
/* Version 2 records the archive digest as plaintext.sha256, version 1 as
 * plaintext.blake2b_256 (formats/archive_hash.h). Readers take both. */
#define MANIFEST_VERSION 2
#define MANIFEST_VERSION_OLDEST 1
/* Snapshot manifests (kind "snapshot") have their own version. */
#define MANIFEST_SNAPSHOT_VERSION 1
#define MANIFEST_MAX_BYTES (64u * 1024 * 1024)
#define MANIFEST_NAME_MAX 63

/* Catalog layout, relative to the repository prefix. */
#define CATALOG_BACKUPS_DIR "backups"
#define CATALOG_DATA_FILE "data.stow"
#define CATALOG_MANIFEST_FILE "manifest.json"
#define CATALOG_VERIFICATIONS_DIR "verifications"

struct manifest_recipient {
    const char *key_id;       /* borrowed from the document */
    const char *wrapped_key;  /* sealed data key, base64 */
};

struct manifest {
    json_t *document;         /* owned */
    int format_version;       /* MANIFEST_VERSION_OLDEST to MANIFEST_VERSION */
    const char *id;           /* fields below are borrowed from document */
    const char *name;
    const char *database;
    const char *object_key;
    time_t started_at;
    time_t finished_at;
    long started_at_us;       /* microseconds past started_at; 0 in older manifests */
    long finished_at_us;      /* microseconds past finished_at; 0 in older manifests */
    uint64_t stored_bytes;
    uint64_t plain_bytes;
    int encrypted;
    struct manifest_recipient *recipients;  /* owned array */
    size_t recipient_count;
    struct storage_part_list parts;         /* owned */
    enum storage_lock_mode lock_mode;       /* member object_lock; NONE when absent */
    time_t lock_retain_until;               /* 0 when absent */
};

/* Parses and validates a manifest read from key. Fails with
 * STOW_EXIT_VERIFY naming key and the first problem found, except for a
 * format_version above MANIFEST_VERSION: a newer stowage wrote it, and that
 * fails with STOW_EXIT_USAGE and a hint to upgrade. */
int manifest_parse(const char *key, const char *text, size_t len, struct manifest *out,
                   stow_error *err);
void manifest_free(struct manifest *manifest);

/* Serialises document for storage (indented, sorted as built). */
char *manifest_serialise(json_t *document, stow_error *err);

/* Builds "backups/NAME/ID/FILE". */
int catalog_key(char *out, size_t size, const char *name, const char *id, const char *file);

/* Checks a catalog name: 1..63 of [A-Za-z0-9._-], not starting with '.'. */
int catalog_check_name(const char *name, stow_error *err);

/* Writes a new backup id "YYYYMMDDTHHMMSSZ-xxxxxx" for time when. */
void catalog_new_backup_id(time_t when, char out[32]);

/* Formats and parses RFC 3339 UTC times ("2026-12-04T20:00:00Z"); the parser
 * also accepts numeric offsets ("+02:00") and a date alone. */
void manifest_format_time(time_t when, char out[32]);
int manifest_parse_time(const char *text, time_t *out);

/* Formats when plus microseconds as "2026-12-04T20:00:00.123456Z". */
void manifest_format_time_us(time_t when, long microseconds, char out[32]);

/* Returns the fraction of a second in a time that manifest_parse_time
 * accepted, in microseconds (digits past the sixth are ignored). */
long manifest_time_microseconds(const char *text);

/* Returns when as an RFC 3339 UTC JSON string, or JSON null for 0 (a time
 * that is not known). A new reference. */
json_t *manifest_time_json(time_t when);

/* Hex helpers shared by the catalog code. */
void manifest_hex(const uint8_t *bytes, size_t len, char *out);
int manifest_unhex(const char *hex, uint8_t *out, size_t len);

/* The object_lock member: {"mode": "GOVERNANCE"|"COMPLIANCE",
 * "retain_until": RFC 3339 UTC}. */
json_t *manifest_object_lock_to_json(const struct storage_object_lock *lock);

/* JSON form of a part list: [{"number","offset","size","sha256"}...]. */
json_t *manifest_parts_to_json(const struct storage_part_list *parts);

/* SHA-256 over the concatenated part digests, as hex with "-COUNT" appended:
 * the form S3 reports as a multipart object's composite checksum. */
void manifest_composite_sha256(const struct storage_part_list *parts, char out[80]);

#endif
