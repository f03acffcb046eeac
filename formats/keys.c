/* Recipient and signing key files, key ids, sealed-box wrapping of data
 * keys, Ed25519 signatures, and the passphrase reader for protected secret
 * key files. */
#include "formats/keys.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "common/interrupt.h"
#include "common/prompt_suspend.h"

/* Milliseconds to wait for SIGHUP after a read from a closed terminal. */
#define TERMINAL_HANGUP_WAIT_MS 500

#define PUBLIC_MAGIC "stowage-public-key-v1"
#define SECRET_MAGIC "stowage-secret-key-v1"
#define SIGNING_PUBLIC_MAGIC "stowage-signing-public-key-v1"
#define SIGNING_SECRET_MAGIC "stowage-signing-secret-key-v1"
#define PROTECTION_NONE "none"
#define PROTECTION_ARGON2ID "argon2id"

/* Key files are one short line; anything longer is not a key file. */
#define KEY_FILE_MAX 4096
#define KEY_FILE_FIELDS_MAX 8

/* Argon2id cost for new files: libsodium's MODERATE limits (3 passes,
 * 256 MiB), because a stolen secret key file opens every backup and the
 * cost is paid only when a key is generated or a restore starts. */
#define PWHASH_OPSLIMIT crypto_pwhash_OPSLIMIT_MODERATE
#define PWHASH_MEMLIMIT crypto_pwhash_MEMLIMIT_MODERATE
/* Largest costs accepted from a file, so a crafted file cannot demand
 * unbounded time or memory; libsodium's SENSITIVE limits are 4 and 1 GiB. */
#define PWHASH_OPSLIMIT_MAX 16ULL
#define PWHASH_MEMLIMIT_MAX (4ULL * 1024 * 1024 * 1024)

#define WRAPPED_KEY_MAX 256   /* bytes of a data key that keys_wrap accepts */

_Static_assert(KEYS_PUBLIC_BYTES == crypto_box_PUBLICKEYBYTES, "X25519 public key size");
_Static_assert(KEYS_SECRET_BYTES == crypto_box_SECRETKEYBYTES, "X25519 secret key size");
_Static_assert(KEYS_SECRET_BYTES == crypto_secretbox_KEYBYTES, "secretbox key size");
_Static_assert(KEYS_PUBLIC_BYTES == crypto_sign_PUBLICKEYBYTES, "Ed25519 public key size");
_Static_assert(KEYS_SECRET_BYTES == crypto_sign_SEEDBYTES, "Ed25519 seed size");
_Static_assert(KEYS_SIGNATURE_BYTES == crypto_sign_BYTES, "Ed25519 signature size");

/* The two kinds of key pair share the file formats. They differ in the
 * first field of their files and in how the public key follows from the 32
 * secret bytes: an X25519 scalar for a recipient, an Ed25519 seed for a
 * signing key. */
struct key_kind {
    const char *noun;   /* "recipient" or "signing", for messages */
    const char *public_magic;
    const char *secret_magic;
    void (*derive_public)(uint8_t public_key[KEYS_PUBLIC_BYTES],
                          const uint8_t secret[KEYS_SECRET_BYTES]);
};

static void recipient_derive_public(uint8_t public_key[KEYS_PUBLIC_BYTES],
                                    const uint8_t secret[KEYS_SECRET_BYTES])
{
    crypto_scalarmult_base(public_key, secret);
}

static void signing_derive_public(uint8_t public_key[KEYS_PUBLIC_BYTES],
                                  const uint8_t seed[KEYS_SECRET_BYTES])
{
    uint8_t expanded[crypto_sign_SECRETKEYBYTES];

    crypto_sign_seed_keypair(public_key, expanded, seed);
    sodium_memzero(expanded, sizeof expanded);
}

static const struct key_kind recipient_kind = {"recipient", PUBLIC_MAGIC, SECRET_MAGIC,
                                               recipient_derive_public};
static const struct key_kind signing_kind = {"signing", SIGNING_PUBLIC_MAGIC,
                                             SIGNING_SECRET_MAGIC, signing_derive_public};

/* Lives in sodium_malloc'ed memory, which sodium_free wipes. For a signing
 * key, key is the Ed25519 seed. */
struct keys_secret {
    uint8_t key[KEYS_SECRET_BYTES];
    struct keys_public public;
};

/* A signing key with libsodium's expanded Ed25519 secret key (seed and
 * public key), in sodium_malloc'ed memory. */
struct keys_signing_secret {
    struct keys_secret seed;
    uint8_t expanded[crypto_sign_SECRETKEYBYTES];
    struct keys_signing_public public;
};

/* A key file split into fields. The text is in sodium_malloc'ed memory
 * because a secret key file contains key material. */
struct key_file {
    char *text;
    char *fields[KEY_FILE_FIELDS_MAX];
    size_t count;
};

/* --- Small helpers ------------------------------------------------------ */

static int sodium_ready(stow_error *err)
{
    if (sodium_init() < 0)
        return stow_fail(err, STOW_EXIT_FAILURE, "libsodium failed to initialize");
    return 0;
}

/* Fills public->id: hex of the first 8 bytes of BLAKE2b-256(public->key). */
static void key_id_compute(struct keys_public *public)
{
    uint8_t digest[32];

    crypto_generichash(digest, sizeof digest, public->key, sizeof public->key, NULL, 0);
    sodium_bin2hex(public->id, sizeof public->id, digest, KEYS_ID_CHARS / 2);
}

int keys_id_valid(const char *text)
{
    if (strlen(text) != KEYS_ID_CHARS)
        return 0;
    for (size_t i = 0; i < KEYS_ID_CHARS; i++) {
        if (!((text[i] >= '0' && text[i] <= '9') || (text[i] >= 'a' && text[i] <= 'f')))
            return 0;
    }
    return 1;
}

/* Decodes standard padded base64 that must yield exactly len bytes. */
static int base64_decode_exact(const char *text, uint8_t *out, size_t len)
{
    size_t decoded = 0;

    if (sodium_base642bin(out, len, text, strlen(text), NULL, &decoded, NULL,
                          sodium_base64_VARIANT_ORIGINAL) != 0)
        return -1;
    return decoded == len ? 0 : -1;
}

/* Parses a decimal number without sign, spaces or leading zeros. */
static int parse_u64(const char *text, unsigned long long *value)
{
    size_t len = strlen(text);

    if (len == 0 || len > 19 || (len > 1 && text[0] == '0'))
        return -1;
    *value = 0;
    for (size_t i = 0; i < len; i++) {
        if (text[i] < '0' || text[i] > '9')
            return -1;
        *value = *value * 10 + (unsigned long long)(text[i] - '0');
    }
    return 0;
}

/* --- Writing key files -------------------------------------------------- */

static int write_all(int fd, const char *data, size_t len)
{
    ssize_t written;

    while (len > 0) {
        written = write(fd, data, len);
        if (written < 0 && errno == EINTR)
            continue;
        if (written < 0)
            return -1;
        data += written;
        len -= (size_t)written;
    }
    return 0;
}

/* Creates path with mode (it must not exist), writes text and syncs it. A
 * partly written file is removed. */
static int write_new_file(const char *path, mode_t mode, const char *text, const char *kind,
                          stow_error *err)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);

    if (fd < 0 && errno == EEXIST)
        return stow_fail(err, STOW_EXIT_USAGE, "%s %s already exists; it is never overwritten",
                         kind, path);
    if (fd < 0)
        return stow_fail_errno(err, STOW_EXIT_FAILURE, errno, "creating", path);

    if (write_all(fd, text, strlen(text)) != 0 || fsync(fd) != 0) {
        stow_fail_errno(err, STOW_EXIT_FAILURE, errno, "writing", path);
        close(fd);
        unlink(path);
        return -1;
    }
    if (close(fd) != 0) {
        stow_fail_errno(err, STOW_EXIT_FAILURE, errno, "closing", path);
        unlink(path);
        return -1;
    }
    return 0;
}

/* Formats "MAGIC ID BASE64\n" into line (256 bytes). */
static void public_line_format(const struct key_kind *kind, const struct keys_public *public,
                               char *line, size_t size)
{
    char key64[sodium_base64_ENCODED_LEN(KEYS_PUBLIC_BYTES, sodium_base64_VARIANT_ORIGINAL)];

    sodium_bin2base64(key64, sizeof key64, public->key, sizeof public->key,
                      sodium_base64_VARIANT_ORIGINAL);
    snprintf(line, size, "%s %s %s\n", kind->public_magic, public->id, key64);
}

/* Formats the line of an unprotected secret key file into line. */
static void secret_line_plain(const struct key_kind *kind, const struct keys_secret *secret,
                              char *line, size_t size)
{
    char key64[sodium_base64_ENCODED_LEN(KEYS_SECRET_BYTES, sodium_base64_VARIANT_ORIGINAL)];

    sodium_bin2base64(key64, sizeof key64, secret->key, sizeof secret->key,
                      sodium_base64_VARIANT_ORIGINAL);
    snprintf(line, size, "%s %s %s %s\n", kind->secret_magic, secret->public.id,
             PROTECTION_NONE, key64);
    sodium_memzero(key64, sizeof key64);
}

/* Formats the line of a passphrase-protected secret key file into line:
 * the secret key in a secretbox under a key derived by Argon2id. */
static int secret_line_protected(const struct key_kind *kind, const struct keys_secret *secret,
                                 const char *passphrase, char *line, size_t size,
                                 stow_error *err)
{
    uint8_t salt[crypto_pwhash_SALTBYTES];
    uint8_t nonce[crypto_secretbox_NONCEBYTES];
    uint8_t box[crypto_secretbox_MACBYTES + KEYS_SECRET_BYTES];
    char salt64[sodium_base64_ENCODED_LEN(sizeof salt, sodium_base64_VARIANT_ORIGINAL)];
    char nonce64[sodium_base64_ENCODED_LEN(sizeof nonce, sodium_base64_VARIANT_ORIGINAL)];
    char box64[sodium_base64_ENCODED_LEN(sizeof box, sodium_base64_VARIANT_ORIGINAL)];
    uint8_t *box_key = sodium_malloc(crypto_secretbox_KEYBYTES);
    int rc = -1;

    if (box_key == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory for a key");

    randombytes_buf(salt, sizeof salt);
    randombytes_buf(nonce, sizeof nonce);
    if (crypto_pwhash(box_key, crypto_secretbox_KEYBYTES, passphrase, strlen(passphrase), salt,
                      PWHASH_OPSLIMIT, PWHASH_MEMLIMIT, crypto_pwhash_ALG_ARGON2ID13) != 0) {
        stow_fail(err, STOW_EXIT_FAILURE, "Argon2id key derivation ran out of memory (%zu bytes)",
                  (size_t)PWHASH_MEMLIMIT);
        goto done;
    }
    crypto_secretbox_easy(box, secret->key, sizeof secret->key, nonce, box_key);

    sodium_bin2base64(salt64, sizeof salt64, salt, sizeof salt, sodium_base64_VARIANT_ORIGINAL);
    sodium_bin2base64(nonce64, sizeof nonce64, nonce, sizeof nonce,
                      sodium_base64_VARIANT_ORIGINAL);
    sodium_bin2base64(box64, sizeof box64, box, sizeof box, sodium_base64_VARIANT_ORIGINAL);
    snprintf(line, size, "%s %s %s %llu %zu %s %s %s\n", kind->secret_magic, secret->public.id,
             PROTECTION_ARGON2ID, (unsigned long long)PWHASH_OPSLIMIT, (size_t)PWHASH_MEMLIMIT,
             salt64, nonce64, box64);
    rc = 0;

done:
    sodium_free(box_key);
    return rc;
}

/* Writes the secret key file and then the public one; removes the secret
 * file again when the public one cannot be written. */
static int key_files_write(const struct key_kind *kind, const char *path,
                           const struct keys_secret *secret, const char *passphrase, char *line,
                           size_t size, stow_error *err)
{
    char public_path[4096];
    char public_line[256];
    char secret_noun[64];
    char public_noun[64];

    if (snprintf(public_path, sizeof public_path, "%s.pub", path) >= (int)sizeof public_path)
        return stow_fail(err, STOW_EXIT_USAGE, "key file path is too long: %s", path);

    if (passphrase == NULL)
        secret_line_plain(kind, secret, line, size);
    else if (secret_line_protected(kind, secret, passphrase, line, size, err) != 0)
        return -1;

    snprintf(secret_noun, sizeof secret_noun, "%s secret key file", kind->noun);
    snprintf(public_noun, sizeof public_noun, "%s public key file", kind->noun);
    if (write_new_file(path, 0600, line, secret_noun, err) != 0)
        return -1;

    public_line_format(kind, &secret->public, public_line, sizeof public_line);
    if (write_new_file(public_path, 0644, public_line, public_noun, err) != 0) {
        unlink(path);
        return -1;
    }
    return 0;
}

/* Generates 32 random secret bytes, derives the public key and writes both
 * files of kind. */
static int generate_pair(const struct key_kind *kind, const char *path, const char *passphrase,
                         struct keys_public *public_out, stow_error *err)
{
    const size_t line_size = 512;
    struct keys_secret *secret = NULL;
    char *line = NULL;
    int rc = -1;

    if (sodium_ready(err) != 0)
        return -1;
    if (passphrase != NULL && passphrase[0] == '\0')
        return stow_fail(err, STOW_EXIT_USAGE, "the passphrase for %s is empty", path);

    secret = sodium_malloc(sizeof *secret);
    line = sodium_malloc(line_size);
    if (secret == NULL || line == NULL) {
        stow_fail(err, STOW_EXIT_FAILURE, "out of memory for a key");
        goto done;
    }

    randombytes_buf(secret->key, sizeof secret->key);
    kind->derive_public(secret->public.key, secret->key);
    key_id_compute(&secret->public);
    if (key_files_write(kind, path, secret, passphrase, line, line_size, err) != 0)
        goto done;

    if (public_out != NULL)
        *public_out = secret->public;
    rc = 0;

done:
    sodium_free(line);
    sodium_free(secret);
    return rc;
}

int keys_generate(const char *path, const char *passphrase, struct keys_public *public_out,
                  stow_error *err)
{
    return generate_pair(&recipient_kind, path, passphrase, public_out, err);
}

int keys_signing_generate(const char *path, const char *passphrase,
                          struct keys_signing_public *public_out, stow_error *err)
{
    struct keys_public public;

    if (generate_pair(&signing_kind, path, passphrase, &public, err) != 0)
        return -1;
    if (public_out != NULL) {
        memcpy(public_out->key, public.key, sizeof public_out->key);
        memcpy(public_out->id, public.id, sizeof public_out->id);
    }
    return 0;
}

/* --- Reading key files -------------------------------------------------- */

static void key_file_free(struct key_file *file)
{
    sodium_free(file->text);
    file->text = NULL;
    file->count = 0;
}

/* Splits text (one line, an optional final newline) at single spaces. */
static int key_file_split(struct key_file *file, size_t len, const char *path, stow_error *err)
{
    char *text = file->text;

    if (len > 0 && text[len - 1] == '\n')
        text[--len] = '\0';

    for (size_t i = 0; i < len; i++) {
        if (text[i] < 0x20 || text[i] > 0x7E)
            return stow_fail(err, STOW_EXIT_USAGE,
                             "%s is not a Stowage key file (byte %zu is not printable ASCII, "
                             "or the file has more than one line)",
                             path, i);
    }

    for (char *field = text; file->count < KEY_FILE_FIELDS_MAX;) {
        char *space = strchr(field, ' ');

        file->fields[file->count++] = field;
        if (space == NULL)
            return 0;
        *space = '\0';
        field = space + 1;
    }
    return stow_fail(err, STOW_EXIT_USAGE, "%s is not a Stowage key file (too many fields)",
                     path);
}

/* Reads the open file fd (at most KEY_FILE_MAX bytes) and splits it. */
static int key_file_read(int fd, const char *path, struct key_file *file, stow_error *err)
{
    size_t len = 0;
    ssize_t got;

    file->text = sodium_malloc(KEY_FILE_MAX + 1);
    if (file->text == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory reading %s", path);

    do {
        got = read(fd, file->text + len, KEY_FILE_MAX + 1 - len);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            return stow_fail_errno(err, STOW_EXIT_USAGE, errno, "reading", path);
        len += (size_t)got;
    } while (got > 0 && len <= KEY_FILE_MAX);

    if (len > KEY_FILE_MAX)
        return stow_fail(err, STOW_EXIT_USAGE,
                         "%s is not a Stowage key file (larger than %d bytes)", path,
                         KEY_FILE_MAX);
    file->text[len] = '\0';
    return key_file_split(file, len, path, err);
}

static int key_file_open(const char *path, const char *operation, int *fd, stow_error *err)
{
    struct stat st;

    *fd = open(path, O_RDONLY | O_CLOEXEC);
    if (*fd < 0)
        return stow_fail_errno(err, STOW_EXIT_USAGE, errno, operation, path);
    if (fstat(*fd, &st) != 0)
        return stow_fail_errno(err, STOW_EXIT_USAGE, errno, operation, path);
    if (!S_ISREG(st.st_mode))
        return stow_fail(err, STOW_EXIT_USAGE, "%s is not a regular file", path);
    return 0;
}

/* The key files, to name one that was passed in the wrong place. */
static const struct {
    const char *magic;
    const char *description;
} key_file_kinds[] = {
    {PUBLIC_MAGIC, "recipient public key file"},
    {SECRET_MAGIC, "recipient secret key file"},
    {SIGNING_PUBLIC_MAGIC, "signing public key file"},
    {SIGNING_SECRET_MAGIC, "signing secret key file"},
};

static const char *key_file_description(const char *magic)
{
    for (size_t i = 0; i < sizeof key_file_kinds / sizeof key_file_kinds[0]; i++) {
        if (strcmp(magic, key_file_kinds[i].magic) == 0)
            return key_file_kinds[i].description;
    }
    return NULL;
}

/* Names the option that takes a key file of kind magic, for a file of the
 * other family (recipient or signing) passed in its place. */
static void key_file_hint_mix_up(const char *magic, stow_error *err)
{
    if (strcmp(magic, SECRET_MAGIC) == 0)
        stow_error_hint(err, "--key takes the recipient secret key (the keygen --out file, "
                             "without .sign); the .sign file goes to backup --signing-key");
    else if (strcmp(magic, SIGNING_SECRET_MAGIC) == 0)
        stow_error_hint(err, "--signing-key takes the signing secret key (the keygen file "
                             "ending in .sign); the recipient secret key goes to --key");
    else if (strcmp(magic, PUBLIC_MAGIC) == 0)
        stow_error_hint(err, "--recipient takes the recipient public key (the .pub file "
                             "without .sign); the .sign.pub file goes to --trusted-key");
    else if (strcmp(magic, SIGNING_PUBLIC_MAGIC) == 0)
        stow_error_hint(err, "--trusted-key takes the signing public key (the file ending in "
                             ".sign.pub); the recipient public key goes to --recipient");
}

/* Checks the first field against magic and names the likely mix-ups. */
static int key_file_check_kind(const struct key_file *file, const char *magic,
                               const char *path, stow_error *err)
{
    const char *first = file->count > 0 ? file->fields[0] : "";
    const char *found = key_file_description(first);
    int want_public = strcmp(magic, PUBLIC_MAGIC) == 0;
    int want_signing = strcmp(magic, SIGNING_PUBLIC_MAGIC) == 0 ||
                       strcmp(magic, SIGNING_SECRET_MAGIC) == 0;

    if (strcmp(first, magic) == 0)
        return 0;
    if (want_public && strcmp(first, SECRET_MAGIC) == 0)
        return stow_fail(err, STOW_EXIT_USAGE,
                         "%s is a secret key file; a public key file is expected here (its "
                         "name ends in .pub)",
                         path);
    if (strcmp(magic, SECRET_MAGIC) == 0 && strcmp(first, PUBLIC_MAGIC) == 0) {
        stow_fail(err, STOW_EXIT_USAGE,
                  "%s is a public key file; a secret key file is expected here", path);
        stow_error_hint(err, "pass the secret key file that stowage keygen wrote next to it "
                             "(the same name without .pub); public keys go to --recipient");
        return -1;
    }
    if (found != NULL) {
        stow_fail(err, STOW_EXIT_USAGE, "%s is a %s; a %s is expected here", path, found,
                  key_file_description(magic));
        key_file_hint_mix_up(magic, err);
        return -1;
    }
    if (strncmp(first, magic, strlen(magic) - 1) == 0)
        return stow_fail(err, STOW_EXIT_USAGE,
                         "%s has unsupported key file version \"%.40s\" (this build reads %s)",
                         path, first, magic);
    return stow_fail(err, STOW_EXIT_USAGE, "%s is not a Stowage %s%s key file", path,
                     want_signing ? "signing " : "",
                     strstr(magic, "public") != NULL ? "public" : "secret");
}

static int public_parse(const struct key_kind *kind, const struct key_file *file,
                        const char *path, struct keys_public *out, stow_error *err)
{
    struct keys_public computed;

    if (key_file_check_kind(file, kind->public_magic, path, err) != 0)
        return -1;
    if (file->count != 3)
        return stow_fail(err, STOW_EXIT_USAGE,
                         "%s is not a valid public key file (%zu fields, expected 3)", path,
                         file->count);
    if (!keys_id_valid(file->fields[1]))
        return stow_fail(err, STOW_EXIT_USAGE,
                         "%s has an invalid key id (expected %d lowercase hex digits)", path,
                         KEYS_ID_CHARS);
    if (base64_decode_exact(file->fields[2], computed.key, sizeof computed.key) != 0)
        return stow_fail(err, STOW_EXIT_USAGE,
                         "%s has an invalid public key (expected base64 of %d bytes)", path,
                         KEYS_PUBLIC_BYTES);

    key_id_compute(&computed);
    if (strcmp(computed.id, file->fields[1]) != 0)
        return stow_fail(err, STOW_EXIT_USAGE,
                         "%s is corrupted: its key id %s does not match its key (id %s)", path,
                         file->fields[1], computed.id);
    *out = computed;
    return 0;
}

static int public_load(const struct key_kind *kind, const char *path, struct keys_public *out,
                       stow_error *err)
{
    struct key_file file = {0};
    int fd = -1;
    int rc = -1;

    if (sodium_ready(err) != 0)
        return -1;

    if (key_file_open(path, "opening public key file", &fd, err) != 0 ||
        key_file_read(fd, path, &file, err) != 0 ||
        public_parse(kind, &file, path, out, err) != 0)
        goto done;
    rc = 0;

done:
    if (fd >= 0)
        close(fd);
    key_file_free(&file);
    return rc;
}

int keys_public_load(const char *path, struct keys_public *out, stow_error *err)
{
    return public_load(&recipient_kind, path, out, err);
}

int keys_signing_public_load(const char *path, struct keys_signing_public *out, stow_error *err)
{
    struct keys_public public;

    if (public_load(&signing_kind, path, &public, err) != 0)
        return -1;
    memcpy(out->key, public.key, sizeof out->key);
    memcpy(out->id, public.id, sizeof out->id);
    return 0;
}

/* --- Secret key files --------------------------------------------------- */

/* Rejects a file of secrets (noun: "secret key file", "passphrase file")
 * that group or others may read or write. Only regular files are checked:
 * a pipe such as bash's <(...) has no meaningful mode. */
static int check_private_mode(int fd, const char *path, const char *noun, stow_error *err)
{
    struct stat st;
    unsigned mode;

    if (fstat(fd, &st) != 0)
        return stow_fail_errno(err, STOW_EXIT_USAGE, errno, "checking", path);
    if (!S_ISREG(st.st_mode))
        return 0;

    mode = (unsigned)(st.st_mode & 07777);
    if ((mode & (S_IRGRP | S_IROTH)) != 0)
        return stow_fail(err, STOW_EXIT_USAGE,
                         "%s %s is readable by group or others (mode %04o); run chmod 600 %s",
                         noun, path, mode, path);
    if ((mode & (S_IWGRP | S_IWOTH)) != 0)
        return stow_fail(err, STOW_EXIT_USAGE,
                         "%s %s is writable by group or others (mode %04o); run chmod 600 %s",
                         noun, path, mode, path);
    return 0;
}


/* Checks that the key id in the file belongs to the secret key. */
static int secret_check_id(const struct key_kind *kind, struct keys_secret *secret,
                           const char *file_id, const char *path, stow_error *err)
{
    kind->derive_public(secret->public.key, secret->key);
    key_id_compute(&secret->public);
    if (strcmp(secret->public.id, file_id) != 0)
        return stow_fail(err, STOW_EXIT_USAGE,
                         "%s is corrupted: its key id %s does not match its secret key (id %s)",
                         path, file_id, secret->public.id);
    return 0;
}

/* The fields of an argon2id line after the protection name. */
struct protected_fields {
    unsigned long long opslimit;
    unsigned long long memlimit;
    uint8_t salt[crypto_pwhash_SALTBYTES];
    uint8_t nonce[crypto_secretbox_NONCEBYTES];
    uint8_t box[crypto_secretbox_MACBYTES + KEYS_SECRET_BYTES];
};

static int protected_parse(const struct key_file *file, const char *path,
                           struct protected_fields *out, stow_error *err)
{
    if (file->count != 8)
        return stow_fail(err, STOW_EXIT_USAGE,
                         "%s is not a valid secret key file (%zu fields, expected 8 for an "
                         "argon2id key)",
                         path, file->count);

    if (parse_u64(file->fields[3], &out->opslimit) != 0 || out->opslimit < 1 ||
        out->opslimit > PWHASH_OPSLIMIT_MAX)
        return stow_fail(err, STOW_EXIT_USAGE,
                         "%s has an invalid Argon2id opslimit \"%.24s\" (expected 1 to %llu)",
                         path, file->fields[3], PWHASH_OPSLIMIT_MAX);

    if (parse_u64(file->fields[4], &out->memlimit) != 0 ||
        out->memlimit < crypto_pwhash_MEMLIMIT_MIN || out->memlimit > PWHASH_MEMLIMIT_MAX)
        return stow_fail(err, STOW_EXIT_USAGE,
                         "%s has an invalid Argon2id memlimit \"%.24s\" (expected %u to %llu "
                         "bytes)",
                         path, file->fields[4], (unsigned)crypto_pwhash_MEMLIMIT_MIN,
                         PWHASH_MEMLIMIT_MAX);

    if (base64_decode_exact(file->fields[5], out->salt, sizeof out->salt) != 0 ||
        base64_decode_exact(file->fields[6], out->nonce, sizeof out->nonce) != 0 ||
        base64_decode_exact(file->fields[7], out->box, sizeof out->box) != 0)
        return stow_fail(err, STOW_EXIT_USAGE,
                         "%s has an invalid salt, nonce or encrypted key (expected base64 of "
                         "%zu, %zu and %zu bytes)",
                         path, sizeof out->salt, sizeof out->nonce, sizeof out->box);
    return 0;
}

/* Derives the box key from the passphrase and opens the secret key. */
static int protected_open(const struct protected_fields *fields, const char *passphrase,
                          struct keys_secret *secret, const char *path, stow_error *err)
{
    uint8_t *box_key = sodium_malloc(crypto_secretbox_KEYBYTES);
    int rc = -1;

    if (box_key == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory for a key");

    if (crypto_pwhash(box_key, crypto_secretbox_KEYBYTES, passphrase, strlen(passphrase),
                      fields->salt, fields->opslimit, (size_t)fields->memlimit,
                      crypto_pwhash_ALG_ARGON2ID13) != 0) {
        stow_fail(err, STOW_EXIT_FAILURE,
                  "Argon2id key derivation for %s ran out of memory (%llu bytes)", path,
                  fields->memlimit);
        goto done;
    }
    if (crypto_secretbox_open_easy(secret->key, fields->box, sizeof fields->box, fields->nonce,
                                   box_key) != 0) {
        stow_fail(err, STOW_EXIT_KEY, "wrong passphrase for %s", path);
        stow_error_hint(err, "give the passphrase that protected %s when it was made: the "
                             "first line of --passphrase-file (--signing-passphrase-file for a "
                             "signing key), or type it at the prompt",
                        path);
        goto done;
    }
    rc = 0;

done:
    sodium_free(box_key);
    return rc;
}

static int protected_load(const struct key_file *file, const char *path,
                          keys_passphrase_fn passphrase_fn, void *context,
                          struct keys_secret *secret, stow_error *err)
{
    struct protected_fields fields;
    char *passphrase = NULL;
    int rc = -1;

    if (protected_parse(file, path, &fields, err) != 0)
        return -1;
    if (passphrase_fn == NULL)
        return stow_fail(err, STOW_EXIT_USAGE,
                         "%s is protected by a passphrase, and no passphrase source was given",
                         path);

    if (passphrase_fn(context, path, &passphrase, err) != 0)
        goto done;
    if (passphrase == NULL || passphrase[0] == '\0') {
        stow_fail(err, STOW_EXIT_USAGE, "the passphrase for %s is empty", path);
        goto done;
    }
    rc = protected_open(&fields, passphrase, secret, path, err);

done:
    keys_passphrase_free(passphrase);
    return rc;
}

static int secret_parse(const struct key_kind *kind, const struct key_file *file,
                        const char *path, keys_passphrase_fn passphrase_fn, void *context,
                        struct keys_secret *secret, stow_error *err)
{
    const char *protection;

    if (key_file_check_kind(file, kind->secret_magic, path, err) != 0)
        return -1;
    if (file->count < 4 || !keys_id_valid(file->fields[1]))
        return stow_fail(err, STOW_EXIT_USAGE,
                         "%s is not a valid secret key file (expected a key id of %d lowercase "
                         "hex digits and a protection name)",
                         path, KEYS_ID_CHARS);

    protection = file->fields[2];
    if (strcmp(protection, PROTECTION_NONE) == 0) {
        if (file->count != 4 ||
            base64_decode_exact(file->fields[3], secret->key, sizeof secret->key) != 0)
            return stow_fail(err, STOW_EXIT_USAGE,
                             "%s has an invalid secret key (expected base64 of %d bytes)", path,
                             KEYS_SECRET_BYTES);
    } else if (strcmp(protection, PROTECTION_ARGON2ID) == 0) {
        if (protected_load(file, path, passphrase_fn, context, secret, err) != 0)
            return -1;
    } else {
        return stow_fail(err, STOW_EXIT_USAGE,
                         "%s has unknown protection \"%.24s\" (expected none or argon2id)", path,
                         protection);
    }
    return secret_check_id(kind, secret, file->fields[1], path, err);
}

/* Reads a secret key file of kind into secret, which the caller allocated
 * with sodium_malloc. */
static int secret_read(const struct key_kind *kind, const char *path,
                       keys_passphrase_fn passphrase_fn, void *context,
                       struct keys_secret *secret, stow_error *err)
{
    struct key_file file = {0};
    int fd = -1;
    int rc = -1;

    /* The kind comes before the mode check, so that a public key file passed
     * by mistake (mode 0644 by design) is named as such. */
    if (key_file_open(path, "opening secret key file", &fd, err) == 0 &&
        key_file_read(fd, path, &file, err) == 0 &&
        key_file_check_kind(&file, kind->secret_magic, path, err) == 0 &&
        check_private_mode(fd, path, "secret key file", err) == 0 &&
        secret_parse(kind, &file, path, passphrase_fn, context, secret, err) == 0)
        rc = 0;

    if (fd >= 0)
        close(fd);
    key_file_free(&file);
    return rc;
}

int keys_secret_load(const char *path, keys_passphrase_fn passphrase_fn, void *context,
                     struct keys_secret **out, stow_error *err)
{
    struct keys_secret *secret = NULL;

    *out = NULL;
    if (sodium_ready(err) != 0)
        return -1;

    secret = sodium_malloc(sizeof *secret);
    if (secret == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory for a key");
    if (secret_read(&recipient_kind, path, passphrase_fn, context, secret, err) != 0) {
        keys_secret_free(secret);
        return -1;
    }
    *out = secret;
    return 0;
}

const struct keys_public *keys_secret_public(const struct keys_secret *secret)
{
    return &secret->public;
}

void keys_secret_free(struct keys_secret *secret)
{
    sodium_free(secret);
}

/* --- Signing keys -------------------------------------------------------- */

int keys_signing_secret_load(const char *path, keys_passphrase_fn passphrase_fn, void *context,
                             struct keys_signing_secret **out, stow_error *err)
{
    struct keys_signing_secret *secret = NULL;
    uint8_t public_key[crypto_sign_PUBLICKEYBYTES];

    *out = NULL;
    if (sodium_ready(err) != 0)
        return -1;

    secret = sodium_malloc(sizeof *secret);
    if (secret == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory for a key");
    if (secret_read(&signing_kind, path, passphrase_fn, context, &secret->seed, err) != 0) {
        keys_signing_secret_free(secret);
        return -1;
    }

    crypto_sign_seed_keypair(public_key, secret->expanded, secret->seed.key);
    memcpy(secret->public.key, public_key, sizeof secret->public.key);
    memcpy(secret->public.id, secret->seed.public.id, sizeof secret->public.id);
    *out = secret;
    return 0;
}

const struct keys_signing_public *keys_signing_secret_public(
    const struct keys_signing_secret *secret)
{
    return &secret->public;
}

void keys_signing_secret_free(struct keys_signing_secret *secret)
{
    if (secret != NULL)
        sodium_free(secret);
}

void keys_sign(const struct keys_signing_secret *secret, const uint8_t *message, size_t len,
               uint8_t signature[KEYS_SIGNATURE_BYTES])
{
    crypto_sign_detached(signature, NULL, message, len, secret->expanded);
}

int keys_signature_valid(const struct keys_signing_public *signer, const uint8_t *message,
                         size_t len, const uint8_t signature[KEYS_SIGNATURE_BYTES])
{
    return crypto_sign_verify_detached(signature, message, len, signer->key) == 0;
}

/* --- Wrapping data keys ------------------------------------------------- */

int keys_wrap(const struct keys_public *recipient, const uint8_t *data_key, size_t key_len,
              char **out, stow_error *err)
{
    uint8_t sealed[crypto_box_SEALBYTES + WRAPPED_KEY_MAX];
    size_t sealed_len = crypto_box_SEALBYTES + key_len;
    size_t text_len;

    *out = NULL;
    if (sodium_ready(err) != 0)
        return -1;
    if (key_len == 0 || key_len > WRAPPED_KEY_MAX)
        return stow_fail(err, STOW_EXIT_FAILURE, "cannot wrap a data key of %zu bytes", key_len);

    if (crypto_box_seal(sealed, data_key, key_len, recipient->key) != 0)
        return stow_fail(err, STOW_EXIT_FAILURE, "sealing the data key for key id %s failed",
                         recipient->id);

    text_len = sodium_base64_ENCODED_LEN(sealed_len, sodium_base64_VARIANT_ORIGINAL);
    *out = malloc(text_len);
    if (*out == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory wrapping a data key");
    sodium_bin2base64(*out, text_len, sealed, sealed_len, sodium_base64_VARIANT_ORIGINAL);
    return 0;
}

int keys_unwrap(const struct keys_secret *secret, const char *wrapped, uint8_t *data_key,
                size_t key_len, stow_error *err)
{
    uint8_t sealed[crypto_box_SEALBYTES + WRAPPED_KEY_MAX];
    size_t sealed_len = crypto_box_SEALBYTES + key_len;

    if (sodium_ready(err) != 0)
        return -1;
    if (key_len == 0 || key_len > WRAPPED_KEY_MAX)
        return stow_fail(err, STOW_EXIT_FAILURE, "cannot unwrap a data key of %zu bytes",
                         key_len);

    if (base64_decode_exact(wrapped, sealed, sealed_len) != 0)
        return stow_fail(err, STOW_EXIT_VERIFY,
                         "the wrapped data key is invalid (expected base64 of %zu bytes)",
                         sealed_len);

    if (crypto_box_seal_open(data_key, sealed, sealed_len, secret->public.key, secret->key) != 0) {
        sodium_memzero(data_key, key_len);
        stow_fail(err, STOW_EXIT_KEY, "the data key is not sealed for key id %s",
                  secret->public.id);
        stow_error_hint(err, "a wrapped key that was changed after sealing fails the same way");
        return -1;
    }
    return 0;
}

/* --- Passphrases -------------------------------------------------------- */

void keys_passphrase_free(char *passphrase)
{
    if (passphrase == NULL)
        return;
    sodium_memzero(passphrase, strlen(passphrase));
    free(passphrase);
}

/* Copies the first line of buffer (len bytes) into a new string. */
static int passphrase_take_line(char *buffer, size_t len, const char *source, char **out,
                                stow_error *err)
{
    char *newline = memchr(buffer, '\n', len);

    if (newline != NULL)
        len = (size_t)(newline - buffer);
    if (len > 0 && buffer[len - 1] == '\r')
        len--;
    if (len == 0) {
        stow_fail(err, STOW_EXIT_USAGE, "the passphrase from %s is empty", source);
        stow_error_hint(err, "give a passphrase of one or more characters; keys without a "
                             "passphrase are made without --passphrase");
        return -1;
    }
    if (len > KEYS_PASSPHRASE_MAX || memchr(buffer, '\0', len) != NULL)
        return stow_fail(err, STOW_EXIT_USAGE,
                         "the passphrase from %s is longer than %d bytes or contains a NUL byte",
                         source, KEYS_PASSPHRASE_MAX);

    *out = malloc(len + 1);
    if (*out == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory for a passphrase");
    memcpy(*out, buffer, len);
    (*out)[len] = '\0';
    return 0;
}

/* Reads from fd until a newline, end of file or a full buffer. Returns -1
 * with errno EINTR after SIGINT or SIGTERM (a Ctrl-C at a prompt), whose
 * signal thread interrupts the read every 100 ms. */
static ssize_t read_line(int fd, char *buffer, size_t size)
{
    size_t len = 0;
    ssize_t got;

    while (len < size) {
        got = read(fd, buffer + len, size - len);
        if (got < 0 && errno == EINTR && stow_interrupted() != 0)
            return -1;
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            return -1;
        if (got == 0)
            break;
        len += (size_t)got;
        if (memchr(buffer + len - (size_t)got, '\n', (size_t)got) != NULL)
            break;
    }
    return (ssize_t)len;
}

static int passphrase_from_file(const char *path, char **out, stow_error *err)
{
    char buffer[KEYS_PASSPHRASE_MAX + 3];
    ssize_t len;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    int rc = -1;

    if (fd < 0)
        return stow_fail_errno(err, STOW_EXIT_USAGE, errno, "opening passphrase file", path);
    if (check_private_mode(fd, path, "passphrase file", err) != 0) {
        close(fd);
        return -1;
    }

    len = read_line(fd, buffer, sizeof buffer);
    if (len < 0)
        stow_fail_errno(err, STOW_EXIT_USAGE, errno, "reading passphrase file", path);
    else
        rc = passphrase_take_line(buffer, (size_t)len, path, out, err);

    sodium_memzero(buffer, sizeof buffer);
    close(fd);
    return rc;
}

/* Waits up to TERMINAL_HANGUP_WAIT_MS for the SIGHUP of a closed terminal.
 * The read fails with EIO or returns EOF, often before the signal thread
 * has recorded the signal, and the run should report the hangup (exit
 * 130), not an I/O error or an empty passphrase. */
static void wait_for_hangup(void)
{
    const struct timespec step = {0, 10 * 1000 * 1000};

    for (int waited = 0; waited < TERMINAL_HANGUP_WAIT_MS && stow_interrupted() == 0;
         waited += 10)
        nanosleep(&step, NULL);
}

/* Returns 1 when the terminal fd was hung up. A read there returns EOF
 * or fails with EIO. A Ctrl-D also gives EOF, but only the hangup makes
 * tcgetattr fail with EIO. */
static int terminal_gone(int fd)
{
    struct termios settings;

    return tcgetattr(fd, &settings) != 0 && errno == EIO;
}

/* Reads one line from the terminal fd with echo off, then restores the
 * terminal settings. */
static int passphrase_from_terminal(int fd, const char *prompt, char **out, stow_error *err)
{
    char buffer[KEYS_PASSPHRASE_MAX + 3];
    struct termios saved;
    struct termios quiet;
    ssize_t len;
    int read_errno;
    int hung_up;
    int rc = -1;

    if (tcgetattr(fd, &saved) != 0)
        return stow_fail_errno(err, STOW_EXIT_USAGE, errno, "reading the settings of",
                               "/dev/tty");
    quiet = saved;
    quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);

    /* SIGINT, SIGTERM, SIGQUIT and SIGHUP end the read below, which
     * restores echo. A Ctrl-Z restores it for the time of the stop
     * (prompt_suspend.h). Only a SIGKILL here leaves it off (the shell's
     * `stty echo` restores it). */
    /* Echo goes off before the prompt appears: TCSAFLUSH drops what was
     * typed before it, and must not drop an answer typed after it. */
    prompt_suspend_begin(fd, &saved, &quiet, prompt);
    if (tcsetattr(fd, TCSAFLUSH, &quiet) != 0 || write_all(fd, prompt, strlen(prompt)) != 0) {
        prompt_suspend_end();
        tcsetattr(fd, TCSAFLUSH, &saved);
        return stow_fail_errno(err, STOW_EXIT_USAGE, errno, "preparing", "/dev/tty");
    }

    len = read_line(fd, buffer, sizeof buffer);
    read_errno = errno;
    hung_up = (len < 0 && read_errno == EIO) || (len == 0 && terminal_gone(fd));
    prompt_suspend_end();
    tcsetattr(fd, TCSAFLUSH, &saved);
    write_all(fd, "\n", 1);
    if (hung_up)
        wait_for_hangup();
    errno = read_errno;

    /* A hangup whose signal the signal thread has not recorded within the
     * wait (a starved thread) still ends the run as interrupted. */
    if (stow_interrupted() != 0)
        stow_fail_interrupted(err, "the passphrase prompt");
    else if (hung_up)
        stow_fail(err, STOW_EXIT_INTERRUPTED, "the terminal was closed during the passphrase "
                                              "prompt");
    else if (len < 0)
        stow_fail_errno(err, STOW_EXIT_USAGE, errno, "reading the passphrase from", "/dev/tty");
    else
        rc = passphrase_take_line(buffer, (size_t)len, "the terminal", out, err);
    sodium_memzero(buffer, sizeof buffer);
    return rc;
}

/* Reads a passphrase from file_path, else from the terminal. option and
 * key_path name the option that gives the file and the key that needs it,
 * for the error without a terminal. */
static int read_passphrase(const char *file_path, const char *option, const char *key_path,
                           const char *prompt, char **out, stow_error *err)
{
    int fd;
    int rc;

    *out = NULL;
    if (file_path != NULL)
        return passphrase_from_file(file_path, out, err);

    fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) {
        if (key_path != NULL)
            stow_fail(err, STOW_EXIT_USAGE, "no terminal to read the passphrase of %s from",
                      key_path);
        else
            stow_fail(err, STOW_EXIT_USAGE, "no terminal to read a passphrase from");
        stow_error_hint(err, "give the passphrase in a file with %s FILE (in a configuration "
                             "file: %s = FILE)",
                        option, option + 2);
        return -1;
    }
    rc = passphrase_from_terminal(fd, prompt, out, err);
    close(fd);
    return rc;
}

int keys_passphrase_read(const char *file_path, const char *prompt, char **out, stow_error *err)
{
    return read_passphrase(file_path, "--passphrase-file", NULL, prompt, out, err);
}

int keys_passphrase_from_source(void *context, const char *key_path, char **passphrase,
                                stow_error *err)
{
    const struct keys_passphrase_source *source = context;
    char prompt[4200];

    snprintf(prompt, sizeof prompt, "Passphrase for %s: ", key_path);
    return read_passphrase(source != NULL ? source->file_path : NULL,
                           source != NULL && source->option != NULL ? source->option
                                                                    : "--passphrase-file",
                           key_path, prompt, passphrase, err);
}
