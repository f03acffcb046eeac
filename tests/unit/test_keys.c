/* Tests for formats/keys.c: key files, passphrase protection, wrapping of
 * data keys, and the passphrase reader. */
#include "unit.h"

#include <libgen.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "formats/keys.h"

#define PASSPHRASE "correct horse battery staple"

static char temp_dir[] = "/tmp/stowage-test-keys-XXXXXX";

static void temp_path(const char *name, char *path, size_t size)
{
    snprintf(path, size, "%s/%s", temp_dir, name);
}

static void write_text(const char *path, const char *text, mode_t mode)
{
    FILE *file = fopen(path, "w");

    fputs(text, file);
    fclose(file);
    chmod(path, mode);
}

static char *read_text(const char *path)
{
    static char text[8192];
    FILE *file = fopen(path, "r");
    size_t len = 0;

    text[0] = '\0';
    if (file == NULL)
        return text;
    len = fread(text, 1, sizeof text - 1, file);
    text[len] = '\0';
    fclose(file);
    return text;
}

/* A keys_passphrase_fn returning the string in context. */
static int passphrase_constant(void *context, const char *key_path, char **passphrase,
                               stow_error *err)
{
    *passphrase = strdup(context);
    return 0;
}

static int passphrase_fail(void *context, const char *key_path, char **passphrase,
                           stow_error *err)
{
    *passphrase = NULL;
    return stow_fail(err, STOW_EXIT_USAGE, "no passphrase typed");
}

/* Generates a key pair named name in the temporary folder. */
static void generate(const char *name, const char *passphrase, char *path, size_t size,
                     struct keys_public *public_key)
{
    stow_error err;

    stow_error_clear(&err);
    temp_path(name, path, size);
    CHECK_INT_EQ(0, keys_generate(path, passphrase, public_key, &err));
    CHECK_STR_EQ("", err.message);
}

/* --- Generate and load -------------------------------------------------- */

static void test_generate_load_plain(void)
{
    struct keys_public generated;
    struct keys_public loaded;
    struct keys_secret *secret = NULL;
    char path[512];
    char public_path[520];
    char expected_line[200];
    struct stat st;
    stow_error err;

    generate("plain.key", NULL, path, sizeof path, &generated);
    snprintf(public_path, sizeof public_path, "%s.pub", path);
    CHECK_INT_EQ(0, stat(path, &st));
    CHECK_INT_EQ(0600, st.st_mode & 0777);
    CHECK_INT_EQ(KEYS_ID_CHARS, strlen(generated.id));

    snprintf(expected_line, sizeof expected_line, "stowage-public-key-v1 %s ", generated.id);
    CHECK(strncmp(read_text(public_path), expected_line, strlen(expected_line)) == 0);
    snprintf(expected_line, sizeof expected_line, "stowage-secret-key-v1 %s none ",
             generated.id);
    CHECK(strncmp(read_text(path), expected_line, strlen(expected_line)) == 0);

    stow_error_clear(&err);
    CHECK_INT_EQ(0, keys_public_load(public_path, &loaded, &err));
    CHECK_STR_EQ(generated.id, loaded.id);
    CHECK(memcmp(generated.key, loaded.key, KEYS_PUBLIC_BYTES) == 0);

    CHECK_INT_EQ(0, keys_secret_load(path, NULL, NULL, &secret, &err));
    CHECK_STR_EQ("", err.message);
    CHECK(secret != NULL);
    if (secret != NULL) {
        CHECK_STR_EQ(generated.id, keys_secret_public(secret)->id);
        CHECK(memcmp(generated.key, keys_secret_public(secret)->key, KEYS_PUBLIC_BYTES) == 0);
    }
    keys_secret_free(secret);
    keys_secret_free(NULL);
}

static void test_key_id_is_blake2b_prefix(void)
{
    struct keys_public generated;
    uint8_t digest[32];
    char hex[17];
    char path[512];

    generate("id.key", NULL, path, sizeof path, &generated);
    crypto_generichash(digest, sizeof digest, generated.key, sizeof generated.key, NULL, 0);
    sodium_bin2hex(hex, sizeof hex, digest, 8);
    CHECK_STR_EQ(hex, generated.id);
}

static void test_generate_load_protected(void)
{
    struct keys_public generated;
    struct keys_secret *secret = NULL;
    char path[512];
    char expected_line[600];
    stow_error err;

    generate("protected.key", PASSPHRASE, path, sizeof path, &generated);
    snprintf(expected_line, sizeof expected_line,
             "stowage-secret-key-v1 %s argon2id 3 268435456 ", generated.id);
    CHECK(strncmp(read_text(path), expected_line, strlen(expected_line)) == 0);

    stow_error_clear(&err);
    CHECK_INT_EQ(0, keys_secret_load(path, passphrase_constant, PASSPHRASE, &secret, &err));
    CHECK_STR_EQ("", err.message);
    if (secret != NULL)
        CHECK_STR_EQ(generated.id, keys_secret_public(secret)->id);
    keys_secret_free(secret);
    secret = NULL;

    stow_error_clear(&err);
    CHECK_INT_EQ(-1, keys_secret_load(path, passphrase_constant, "wrong horse", &secret, &err));
    CHECK(secret == NULL);
    CHECK_INT_EQ(STOW_EXIT_KEY, err.exit_code);
    snprintf(expected_line, sizeof expected_line, "wrong passphrase for %s", path);
    CHECK_STR_EQ(expected_line, err.message);

    stow_error_clear(&err);
    CHECK_INT_EQ(-1, keys_secret_load(path, NULL, NULL, &secret, &err));
    CHECK_INT_EQ(STOW_EXIT_USAGE, err.exit_code);
    CHECK_CONTAINS(err.message, "is protected by a passphrase, and no passphrase source");

    stow_error_clear(&err);
    CHECK_INT_EQ(-1, keys_secret_load(path, passphrase_fail, NULL, &secret, &err));
    CHECK_STR_EQ("no passphrase typed", err.message);

    stow_error_clear(&err);
    CHECK_INT_EQ(-1, keys_secret_load(path, passphrase_constant, "", &secret, &err));
    CHECK_CONTAINS(err.message, "is empty");
}

static void test_generate_refuses_existing(void)
{
    struct keys_public generated;
    char path[512];
    char public_path[520];
    char expected[600];
    stow_error err;

    generate("existing.key", NULL, path, sizeof path, &generated);
    stow_error_clear(&err);
    CHECK_INT_EQ(-1, keys_generate(path, NULL, &generated, &err));
    CHECK_INT_EQ(STOW_EXIT_USAGE, err.exit_code);
    snprintf(expected, sizeof expected, "secret key file %s already exists", path);
    CHECK_CONTAINS(err.message, expected);

    /* An existing .pub stops generation and leaves no secret file behind. */
    temp_path("orphan.key", path, sizeof path);
    snprintf(public_path, sizeof public_path, "%s.pub", path);
    write_text(public_path, "keep me\n", 0644);
    stow_error_clear(&err);
    CHECK_INT_EQ(-1, keys_generate(path, NULL, &generated, &err));
    snprintf(expected, sizeof expected, "public key file %s already exists", public_path);
    CHECK_CONTAINS(err.message, expected);
    CHECK(access(path, F_OK) != 0);
    CHECK_STR_EQ("keep me\n", read_text(public_path));
}

static void test_generate_rejects_empty_passphrase(void)
{
    struct keys_public generated;
    char path[512];
    stow_error err;

    temp_path("empty-passphrase.key", path, sizeof path);
    stow_error_clear(&err);
    CHECK_INT_EQ(-1, keys_generate(path, "", &generated, &err));
    CHECK_CONTAINS(err.message, "is empty");
    CHECK(access(path, F_OK) != 0);
}

/* --- Permissions and damaged files -------------------------------------- */

static void test_secret_mode_rejected(void)
{
    struct keys_public generated;
    struct keys_secret *secret = NULL;
    char path[512];
    char expected[1200];
    stow_error err;

    generate("mode.key", NULL, path, sizeof path, &generated);

    chmod(path, 0644);
    stow_error_clear(&err);
    CHECK_INT_EQ(-1, keys_secret_load(path, NULL, NULL, &secret, &err));
    CHECK_INT_EQ(STOW_EXIT_USAGE, err.exit_code);
    snprintf(expected, sizeof expected,
             "secret key file %s is readable by group or others (mode 0644); run chmod 600 %s",
             path, path);
    CHECK_STR_EQ(expected, err.message);

    chmod(path, 0620);
    stow_error_clear(&err);
    CHECK_INT_EQ(-1, keys_secret_load(path, NULL, NULL, &secret, &err));
    snprintf(expected, sizeof expected,
             "secret key file %s is writable by group or others (mode 0620); run chmod 600 %s",
             path, path);
    CHECK_STR_EQ(expected, err.message);

    chmod(path, 0400);
    stow_error_clear(&err);
    CHECK_INT_EQ(0, keys_secret_load(path, NULL, NULL, &secret, &err));
    keys_secret_free(secret);
}

/* Writes text as a public key file and checks the load error. */
static void check_public_rejects(const char *text, const char *fragment)
{
    struct keys_public loaded;
    char path[512];
    stow_error err;

    temp_path("damaged.pub", path, sizeof path);
    write_text(path, text, 0644);
    stow_error_clear(&err);
    CHECK_INT_EQ(-1, keys_public_load(path, &loaded, &err));
    CHECK_INT_EQ(STOW_EXIT_USAGE, err.exit_code);
    CHECK_CONTAINS(err.message, path);
    CHECK_CONTAINS(err.message, fragment);
}

static void test_public_damaged_rejected(void)
{
    struct keys_public generated;
    char path[512];
    char public_path[520];
    char line[200];
    char *field;

    generate("damage.key", NULL, path, sizeof path, &generated);
    snprintf(public_path, sizeof public_path, "%s.pub", path);
    snprintf(line, sizeof line, "%s", read_text(public_path));

    check_public_rejects("", "is not a Stowage public key file");
    check_public_rejects("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5 user@host\n",
                         "is not a Stowage public key file");
    check_public_rejects(read_text(path), "is a secret key file");
    check_public_rejects("stowage-public-key-v2 0011223344556677 AAAA\n",
                         "unsupported key file version \"stowage-public-key-v2\"");
    check_public_rejects("stowage-public-key-v1 0011223344556677\n", "2 fields, expected 3");
    check_public_rejects("stowage-public-key-v1 00112233 AAAA\n", "invalid key id");
    check_public_rejects("stowage-public-key-v1 0011223344556677 not*base64\n",
                         "invalid public key (expected base64 of 32 bytes)");
    check_public_rejects("stowage-public-key-v1 0011223344556677 AAAA\n",
                         "invalid public key (expected base64 of 32 bytes)");

    /* A changed key no longer matches its id. */
    field = strrchr(line, ' ') + 1;
    field[0] = field[0] == 'A' ? 'B' : 'A';
    check_public_rejects(line, "is corrupted: its key id");

    snprintf(line, sizeof line, "%s", read_text(public_path));
    line[strlen(line) - 1] = ' ';
    check_public_rejects(line, "4 fields, expected 3");
    snprintf(line, sizeof line, "%s", read_text(public_path));
    strcat(line, "second line\n");
    check_public_rejects(line, "more than one line");
}

static void test_public_missing_file(void)
{
    struct keys_public loaded;
    stow_error err;

    stow_error_clear(&err);
    CHECK_INT_EQ(-1, keys_public_load("/nonexistent/recipient.pub", &loaded, &err));
    CHECK_INT_EQ(STOW_EXIT_USAGE, err.exit_code);
    CHECK_STR_EQ("opening public key file /nonexistent/recipient.pub failed: No such file or "
                 "directory",
                 err.message);
}

/* Writes text as a secret key file (mode 0600) and checks the load error. */
static void check_secret_rejects(const char *text, const char *fragment)
{
    struct keys_secret *secret = NULL;
    char path[512];
    stow_error err;

    temp_path("damaged.key", path, sizeof path);
    write_text(path, text, 0600);
    stow_error_clear(&err);
    CHECK_INT_EQ(-1, keys_secret_load(path, passphrase_constant, PASSPHRASE, &secret, &err));
    CHECK(secret == NULL);
    CHECK_INT_EQ(STOW_EXIT_USAGE, err.exit_code);
    CHECK_CONTAINS(err.message, path);
    CHECK_CONTAINS(err.message, fragment);
}

static void test_secret_damaged_rejected(void)
{
    static const char id[] = "0011223344556677";
    struct keys_public generated;
    char path[512];
    char public_path[520];
    char line[600];
    char *field;

    generate("damage-secret.key", NULL, path, sizeof path, &generated);
    snprintf(public_path, sizeof public_path, "%s.pub", path);

    check_secret_rejects("hello\n", "is not a Stowage secret key file");
    check_secret_rejects(read_text(public_path), "is a public key file");
    check_secret_rejects("stowage-secret-key-v9 x none y\n", "unsupported key file version");
    check_secret_rejects("stowage-secret-key-v1 0011223344556677\n", "expected a key id");
    check_secret_rejects("stowage-secret-key-v1 0011223344556677 rot13 AAAA\n",
                         "unknown protection \"rot13\"");
    check_secret_rejects("stowage-secret-key-v1 0011223344556677 none AAAA\n",
                         "invalid secret key (expected base64 of 32 bytes)");

    /* The change is in the middle of the key. X25519 clears the low three
     * bits of the first byte before use, so a change there alone (the first
     * base64 digit going from A to B, say) leaves the same key and id. */
    snprintf(line, sizeof line, "%s", read_text(path));
    field = strrchr(line, ' ') + 1;
    field[10] = field[10] == 'A' ? 'B' : 'A';
    check_secret_rejects(line, "is corrupted: its key id");

    snprintf(line, sizeof line, "stowage-secret-key-v1 %s argon2id 0 268435456 A B C\n", id);
    check_secret_rejects(line, "invalid Argon2id opslimit \"0\"");
    snprintf(line, sizeof line, "stowage-secret-key-v1 %s argon2id 03 268435456 A B C\n", id);
    check_secret_rejects(line, "invalid Argon2id opslimit \"03\"");
    snprintf(line, sizeof line, "stowage-secret-key-v1 %s argon2id 3 99999999999999 A B C\n",
             id);
    check_secret_rejects(line, "invalid Argon2id memlimit \"99999999999999\"");
    snprintf(line, sizeof line, "stowage-secret-key-v1 %s argon2id 3 268435456 A B C\n", id);
    check_secret_rejects(line, "invalid salt, nonce or encrypted key");
    snprintf(line, sizeof line, "stowage-secret-key-v1 %s argon2id 3 268435456 A B\n", id);
    check_secret_rejects(line, "7 fields, expected 8");
}

/* --- Wrapping ----------------------------------------------------------- */

static void test_wrap_unwrap(void)
{
    struct keys_public generated;
    struct keys_public other_public;
    struct keys_secret *secret = NULL;
    struct keys_secret *other = NULL;
    uint8_t data_key[32];
    uint8_t opened[32];
    char path[512];
    char other_path[512];
    char expected[200];
    char *wrapped = NULL;
    stow_error err;

    generate("wrap.key", NULL, path, sizeof path, &generated);
    generate("other.key", NULL, other_path, sizeof other_path, &other_public);
    randombytes_buf(data_key, sizeof data_key);
    stow_error_clear(&err);
    CHECK_INT_EQ(0, keys_secret_load(path, NULL, NULL, &secret, &err));
    CHECK_INT_EQ(0, keys_secret_load(other_path, NULL, NULL, &other, &err));
    if (secret == NULL || other == NULL)
        goto done;

    CHECK_INT_EQ(0, keys_wrap(&generated, data_key, sizeof data_key, &wrapped, &err));
    CHECK_INT_EQ(108, strlen(wrapped));
    CHECK_INT_EQ(0, keys_unwrap(secret, wrapped, opened, sizeof opened, &err));
    CHECK(memcmp(data_key, opened, sizeof opened) == 0);

    CHECK_INT_EQ(-1, keys_unwrap(other, wrapped, opened, sizeof opened, &err));
    CHECK_INT_EQ(STOW_EXIT_KEY, err.exit_code);
    snprintf(expected, sizeof expected, "the data key is not sealed for key id %s",
             other_public.id);
    CHECK_STR_EQ(expected, err.message);

    stow_error_clear(&err);
    wrapped[10] = wrapped[10] == 'A' ? 'B' : 'A';
    CHECK_INT_EQ(-1, keys_unwrap(secret, wrapped, opened, sizeof opened, &err));
    CHECK_INT_EQ(STOW_EXIT_KEY, err.exit_code);

    stow_error_clear(&err);
    CHECK_INT_EQ(-1, keys_unwrap(secret, "not base64!", opened, sizeof opened, &err));
    CHECK_INT_EQ(STOW_EXIT_VERIFY, err.exit_code);
    CHECK_CONTAINS(err.message, "the wrapped data key is invalid (expected base64 of 80 bytes)");

    stow_error_clear(&err);
    CHECK_INT_EQ(-1, keys_unwrap(secret, "AAAA", opened, sizeof opened, &err));
    CHECK_INT_EQ(STOW_EXIT_VERIFY, err.exit_code);

done:
    free(wrapped);
    keys_secret_free(secret);
    keys_secret_free(other);
}

/* --- Passphrase reader -------------------------------------------------- */

static void check_passphrase_file(const char *content, const char *expected)
{
    char path[512];
    char *passphrase = NULL;
    stow_error err;

    temp_path("passphrase.txt", path, sizeof path);
    write_text(path, content, 0600);
    stow_error_clear(&err);
    CHECK_INT_EQ(0, keys_passphrase_read(path, "unused", &passphrase, &err));
    CHECK_STR_EQ(expected, passphrase);
    keys_passphrase_free(passphrase);
}

static void check_passphrase_file_rejects(const char *content, const char *fragment)
{
    char path[512];
    char *passphrase = NULL;
    stow_error err;

    temp_path("passphrase.txt", path, sizeof path);
    write_text(path, content, 0600);
    stow_error_clear(&err);
    CHECK_INT_EQ(-1, keys_passphrase_read(path, "unused", &passphrase, &err));
    CHECK(passphrase == NULL);
    CHECK_INT_EQ(STOW_EXIT_USAGE, err.exit_code);
    CHECK_CONTAINS(err.message, fragment);
}

static void test_passphrase_from_file(void)
{
    char long_line[1100];
    char *passphrase = NULL;
    stow_error err;

    check_passphrase_file("secret words\n", "secret words");
    check_passphrase_file("secret words", "secret words");
    check_passphrase_file("secret words\r\nsecond line\n", "secret words");
    check_passphrase_file(" spaces kept \n", " spaces kept ");

    check_passphrase_file_rejects("", "is empty");
    check_passphrase_file_rejects("\nsecond line\n", "is empty");
    memset(long_line, 'p', sizeof long_line - 1);
    long_line[sizeof long_line - 1] = '\0';
    check_passphrase_file_rejects(long_line, "longer than 1023 bytes");

    stow_error_clear(&err);
    CHECK_INT_EQ(-1, keys_passphrase_read("/nonexistent/passphrase", "unused", &passphrase, &err));
    CHECK_CONTAINS(err.message, "opening passphrase file /nonexistent/passphrase failed");
    keys_passphrase_free(NULL);
}

static void test_passphrase_source_loads_key(void)
{
    struct keys_public generated;
    struct keys_passphrase_source source;
    struct keys_secret *secret = NULL;
    char path[512];
    char passphrase_path[512];
    stow_error err;

    generate("source.key", PASSPHRASE, path, sizeof path, &generated);
    temp_path("source-passphrase.txt", passphrase_path, sizeof passphrase_path);
    write_text(passphrase_path, PASSPHRASE "\n", 0600);
    source.file_path = passphrase_path;

    stow_error_clear(&err);
    CHECK_INT_EQ(0, keys_secret_load(path, keys_passphrase_from_source, &source, &secret, &err));
    CHECK_STR_EQ("", err.message);
    keys_secret_free(secret);
}

/* --- Golden files ------------------------------------------------------- */

static void golden_path(const char *name, char *path, size_t size)
{
    char source[4096];

    snprintf(source, sizeof source, "%s", __FILE__);
    snprintf(path, size, "%s/golden/%s", dirname(source), name);
}

/* Copies a golden secret key file into the temporary folder with mode
 * 0600, which git does not keep. */
static void golden_secret_copy(const char *name, char *path, size_t size)
{
    char golden[4200];

    golden_path(name, golden, sizeof golden);
    temp_path(name, path, size);
    write_text(path, read_text(golden), 0600);
}

static void golden_unwrap(const char *key_name, const char *passphrase, const char *wrapped_name,
                          uint8_t *data_key, stow_error *err)
{
    struct keys_secret *secret = NULL;
    char key_path[512];
    char wrapped_path[4200];
    char wrapped[200];

    golden_secret_copy(key_name, key_path, sizeof key_path);
    golden_path(wrapped_name, wrapped_path, sizeof wrapped_path);
    snprintf(wrapped, sizeof wrapped, "%s", read_text(wrapped_path));

    if (keys_secret_load(key_path, passphrase_constant, (void *)passphrase, &secret, err) == 0)
        keys_unwrap(secret, wrapped, data_key, 32, err);
    keys_secret_free(secret);
}

static void test_golden_recipient(void)
{
    uint8_t expected[32];
    uint8_t data_key[32];
    char hex_path[4200];
    stow_error err;

    golden_path("data-key.hex", hex_path, sizeof hex_path);
    CHECK_INT_EQ(0, sodium_hex2bin(expected, sizeof expected, read_text(hex_path), 64, NULL,
                                   NULL, NULL));

    stow_error_clear(&err);
    golden_unwrap("recipient.key", NULL, "wrapped-key.txt", data_key, &err);
    CHECK_STR_EQ("", err.message);
    CHECK(memcmp(expected, data_key, sizeof data_key) == 0);

    stow_error_clear(&err);
    golden_unwrap("recipient-protected.key", "golden passphrase", "wrapped-key-protected.txt",
                  data_key, &err);
    CHECK_STR_EQ("", err.message);
    CHECK(memcmp(expected, data_key, sizeof data_key) == 0);
}

static void test_golden_wrong_recipient(void)
{
    uint8_t data_key[32];
    stow_error err;

    stow_error_clear(&err);
    golden_unwrap("recipient.key", NULL, "wrapped-key-stranger.txt", data_key, &err);
    CHECK_INT_EQ(STOW_EXIT_KEY, err.exit_code);
    CHECK_CONTAINS(err.message, "the data key is not sealed for key id ");
}

static void test_golden_public_key(void)
{
    struct keys_public loaded;
    char path[4200];
    stow_error err;

    golden_path("recipient.key.pub", path, sizeof path);
    stow_error_clear(&err);
    CHECK_INT_EQ(0, keys_public_load(path, &loaded, &err));
    CHECK_STR_EQ("", err.message);
}

int main(void)
{
    int rc;

    if (sodium_init() < 0 || mkdtemp(temp_dir) == NULL)
        return 1;

    unit_run("generate and load plain key", test_generate_load_plain);
    unit_run("key id is BLAKE2b prefix", test_key_id_is_blake2b_prefix);
    unit_run("generate and load protected key", test_generate_load_protected);
    unit_run("generate refuses existing files", test_generate_refuses_existing);
    unit_run("generate rejects empty passphrase", test_generate_rejects_empty_passphrase);
    unit_run("secret key mode rejected", test_secret_mode_rejected);
    unit_run("public key damage rejected", test_public_damaged_rejected);
    unit_run("public key missing file", test_public_missing_file);
    unit_run("secret key damage rejected", test_secret_damaged_rejected);
    unit_run("wrap and unwrap", test_wrap_unwrap);
    unit_run("passphrase from file", test_passphrase_from_file);
    unit_run("passphrase source loads key", test_passphrase_source_loads_key);
    unit_run("golden recipient unwraps", test_golden_recipient);
    unit_run("golden wrong recipient", test_golden_wrong_recipient);
    unit_run("golden public key loads", test_golden_public_key);

    rc = unit_finish();
    unit_remove_tree(temp_dir);
    return rc;
}
