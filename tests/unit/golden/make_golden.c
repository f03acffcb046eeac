/* Writes the golden files that tests/unit/test_container.c and
 * tests/unit/test_keys.c read: one valid encrypted container, damaged
 * copies of it that every reader must reject, recipient key files, and the
 * data key wrapped for a recipient and for a stranger.
 *
 * The files are committed; run this only to regenerate them after an
 * intended format change, from the repository root:
 *
 *   gcc -std=c11 -D_DEFAULT_SOURCE -I. -Iagent -o /tmp/make_golden \
 *       tests/unit/golden/make_golden.c formats/container.c formats/keys.c \
 *       agent/common/error.c agent/common/buf.c -lsodium -lzstd
 *   /tmp/make_golden tests/unit/golden
 *
 * Encryption uses fresh random keys, so every run writes different bytes. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/buf.h"
#include "formats/container.h"
#include "formats/keys.h"

#define GOLDEN_BACKUP_ID "golden-backup"
#define GOLDEN_PASSPHRASE "golden passphrase"

static const char *output_dir;

static int sink_append(void *context, const void *data, size_t len, stow_error *err)
{
    return stow_buf_append(context, data, len, err);
}

static void path_in_output(const char *name, char *path, size_t size)
{
    snprintf(path, size, "%s/%s", output_dir, name);
}

static int write_file(const char *name, const void *data, size_t len)
{
    char path[4096];
    FILE *file;

    path_in_output(name, path, sizeof path);
    file = fopen(path, "wb");
    if (file == NULL || fwrite(data, 1, len, file) != len || fclose(file) != 0) {
        fprintf(stderr, "make_golden: cannot write %s\n", path);
        return -1;
    }
    return 0;
}

static int seal(const char *plain, int encrypt, const uint8_t *key, stow_buf *out,
                stow_error *err)
{
    struct container_writer_options options = {GOLDEN_BACKUP_ID, 3, 0, encrypt, key};
    container_writer *writer = NULL;
    int rc = -1;

    stow_buf_init(out, 1 << 20);
    if (container_writer_new(&options, sink_append, out, &writer, err) == 0 &&
        container_writer_write(writer, plain, strlen(plain), err) == 0 &&
        container_writer_finish(writer, err) == 0)
        rc = 0;
    container_writer_free(writer);
    return rc;
}

/* Writes the valid object and its damaged copies. */
static int write_containers(const char *plain, const uint8_t *key, stow_error *err)
{
    stow_buf stored;
    stow_buf plain_stored;
    int rc = -1;

    if (seal(plain, 1, key, &stored, err) != 0 || seal(plain, 0, NULL, &plain_stored, err) != 0)
        return -1;

    if (write_file("valid.txt", plain, strlen(plain)) != 0 ||
        write_file("valid.stow", stored.data, stored.len) != 0 ||
        write_file("unencrypted.stow", plain_stored.data, plain_stored.len) != 0 ||
        write_file("truncated.stow", stored.data, stored.len - 10) != 0)
        goto done;

    /* The last byte of the object is the last byte of the final frame's tag. */
    stored.data[stored.len - 1] ^= 0x01;
    if (write_file("flipped-tag.stow", stored.data, stored.len) != 0)
        goto done;
    stored.data[stored.len - 1] ^= 0x01;

    stored.data[9] = 2;
    if (write_file("wrong-version.stow", stored.data, stored.len) != 0)
        goto done;
    stored.data[9] = CONTAINER_FORMAT_VERSION;

    if (stow_buf_append(&stored, "GARBAGE\n", 8, err) != 0 ||
        write_file("trailing-garbage.stow", stored.data, stored.len) != 0)
        goto done;
    rc = 0;

done:
    stow_buf_free(&stored);
    stow_buf_free(&plain_stored);
    return rc;
}

/* Generates a key pair in the output folder and writes the data key
 * wrapped for it into wrapped_name. */
static int write_recipient(const char *key_name, const char *passphrase, const uint8_t *key,
                           const char *wrapped_name, stow_error *err)
{
    struct keys_public recipient;
    char path[4096];
    char *wrapped = NULL;
    int rc = -1;

    path_in_output(key_name, path, sizeof path);
    if (keys_generate(path, passphrase, &recipient, err) != 0 ||
        keys_wrap(&recipient, key, CONTAINER_DATA_KEY_BYTES, &wrapped, err) != 0)
        goto done;
    if (write_file(wrapped_name, wrapped, strlen(wrapped)) != 0)
        goto done;
    rc = 0;

done:
    free(wrapped);
    return rc;
}

/* Wraps the data key for a key pair that is thrown away afterwards. */
static int write_stranger(const uint8_t *key, stow_error *err)
{
    char path[4096];
    char public_path[4200];
    int rc;

    path_in_output("stranger.key", path, sizeof path);
    snprintf(public_path, sizeof public_path, "%s.pub", path);
    rc = write_recipient("stranger.key", NULL, key, "wrapped-key-stranger.txt", err);
    unlink(path);
    unlink(public_path);
    return rc;
}

int main(int argc, char **argv)
{
    static const char plain[] = "Stowage golden plaintext: one line that every reader of "
                                "container format version 1 must return unchanged.\n";
    static const char *const generated[] = {"recipient.key", "recipient.key.pub",
                                            "recipient-protected.key",
                                            "recipient-protected.key.pub"};
    uint8_t key[CONTAINER_DATA_KEY_BYTES];
    char hex[2 * CONTAINER_DATA_KEY_BYTES + 2];
    char path[4096];
    stow_error err;

    if (argc != 2 || sodium_init() < 0) {
        fprintf(stderr, "usage: make_golden OUTPUT_DIR\n");
        return 2;
    }
    output_dir = argv[1];
    stow_error_clear(&err);

    /* keys_generate never overwrites, so earlier key files go first. */
    for (size_t i = 0; i < sizeof generated / sizeof generated[0]; i++) {
        path_in_output(generated[i], path, sizeof path);
        unlink(path);
    }

    randombytes_buf(key, sizeof key);
    sodium_bin2hex(hex, sizeof hex, key, sizeof key);
    strcat(hex, "\n");

    if (write_file("data-key.hex", hex, strlen(hex)) != 0 ||
        write_containers(plain, key, &err) != 0 ||
        write_recipient("recipient.key", NULL, key, "wrapped-key.txt", &err) != 0 ||
        write_recipient("recipient-protected.key", GOLDEN_PASSPHRASE, key,
                        "wrapped-key-protected.txt", &err) != 0 ||
        write_stranger(key, &err) != 0) {
        fprintf(stderr, "make_golden: %s\n", err.message);
        return 1;
    }
    return 0;
}
