/* restore --create: the restore goes into a new database under a
 * temporary name, which is renamed to the requested name only once the
 * restore (and its verification) succeeded. Under the requested name there
 * is either nothing or a complete database, also with --jobs N > 1, whose
 * connections cannot share one transaction.
 *
 * The temporary database is called stowage_restore_ and 12 hex digits, and
 * its comment names the backup and the requested name. A failed or
 * interrupted restore drops it. A restore whose process was killed leaves
 * it behind, and the comment describes it. */
#ifndef STOWAGE_NEW_DATABASE_H
#define STOWAGE_NEW_DATABASE_H

#include "common/buf.h"
#include "common/error.h"

#define NEW_DATABASE_PREFIX "stowage_restore_"

struct new_database {
    const char *conninfo;   /* --target: names the database to create */
    char name[64];          /* the requested name */
    char staging[64];       /* the temporary name, while created */
    stow_buf staging_conninfo;
    int created;            /* the temporary database exists */
    int published;          /* renamed to name */
};

/* Reads the requested name from conninfo (its dbname, else PGDATABASE) and
 * checks on the server's maintenance database (postgres, else template1)
 * that no database has that name yet (else STOW_EXIT_USAGE). */
int new_database_check(struct new_database *db, const char *conninfo, stow_error *err);

/* A database's locale: datcollate and datctype, and with the ICU or
 * builtin provider (PostgreSQL 15 and 17 on) that provider's locale and
 * ICU's tailoring rules (16 on). provider NULL or "libc": collate and
 * ctype alone; locale and icu_rules may be NULL. */
struct database_locale {
    const char *collate;
    const char *ctype;
    const char *provider;
    const char *locale;
    const char *icu_rules;
};

/* Returns 1 when provider names a locale provider that takes a locale of
 * its own: "icu" or "builtin". */
int new_database_provider_has_locale(const char *provider);

/* Creates the temporary database from template0 with encoding (NULL or
 * empty: the server's default) and locale (NULL: the server's default).
 * When the server rejects the locale, it falls back to the source's libc
 * locale without the provider, then to the server's default and then to
 * C. Fills db->staging_conninfo, the --target connection string with the
 * temporary name. */
int new_database_create(struct new_database *db, const char *encoding,
                        const struct database_locale *locale, const char *backup_id,
                        stow_error *err);

/* Renames the temporary database to the requested name. Every connection
 * to it must be closed. */
int new_database_publish(struct new_database *db, stow_error *err);

/* Drops the temporary database unless it was published, and frees db.
 * Logs what it did or could not do. */
void new_database_finish(struct new_database *db);

#endif
