/* Archive digest over OpenSSL's SHA-256 or libsodium's BLAKE2b. */
#include "formats/archive_hash.h"

#include <openssl/evp.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

struct archive_hash {
    crypto_generichash_state blake2b;  /* first: libsodium declares it 64-byte aligned */
    EVP_MD_CTX *sha256;                /* NULL for BLAKE2b */
};

int archive_hash_new(archive_hash_algorithm algorithm, archive_hash **out, stow_error *err)
{
    archive_hash *hash = NULL;

    *out = NULL;
    if (posix_memalign((void **)&hash, 64, sizeof *hash) != 0)
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory");
    memset(hash, 0, sizeof *hash);

    if (algorithm == ARCHIVE_HASH_BLAKE2B_256) {
        crypto_generichash_init(&hash->blake2b, NULL, 0, ARCHIVE_HASH_BYTES);
    } else {
        hash->sha256 = EVP_MD_CTX_new();
        if (hash->sha256 == NULL || EVP_DigestInit_ex(hash->sha256, EVP_sha256(), NULL) != 1) {
            archive_hash_free(hash);
            return stow_fail(err, STOW_EXIT_FAILURE, "OpenSSL could not start a SHA-256 digest");
        }
    }
    *out = hash;
    return 0;
}

void archive_hash_update(archive_hash *hash, const void *data, size_t len)
{
    if (hash->sha256 != NULL)
        EVP_DigestUpdate(hash->sha256, data, len);
    else
        crypto_generichash_update(&hash->blake2b, data, len);
}

void archive_hash_final(archive_hash *hash, uint8_t out[ARCHIVE_HASH_BYTES])
{
    if (hash->sha256 != NULL)
        EVP_DigestFinal_ex(hash->sha256, out, NULL);
    else
        crypto_generichash_final(&hash->blake2b, out, ARCHIVE_HASH_BYTES);
}

void archive_hash_free(archive_hash *hash)
{
    if (hash == NULL)
        return;
    EVP_MD_CTX_free(hash->sha256);
    free(hash);
}

const char *archive_hash_member(archive_hash_algorithm algorithm)
{
    return algorithm == ARCHIVE_HASH_BLAKE2B_256 ? "blake2b_256" : "sha256";
}

int archive_hash_expected(const json_t *plaintext, int format_version, const char *backup_id,
                          archive_hash_algorithm *algorithm, const char **hex,
                          stow_error *err)
{
    archive_hash_algorithm expected =
        format_version == 1 ? ARCHIVE_HASH_BLAKE2B_256 : ARCHIVE_HASH_SHA256;
    const char *member = archive_hash_member(expected);
    int both = json_object_get(plaintext, "sha256") != NULL &&
               json_object_get(plaintext, "blake2b_256") != NULL;

    if (both)
        return stow_fail(err, STOW_EXIT_VERIFY,
                         "the manifest of backup %s has two archive digests "
                         "(plaintext.sha256 and plaintext.blake2b_256)", backup_id);
    *hex = json_string_value(json_object_get(plaintext, member));
    if (*hex == NULL)
        return stow_fail(err, STOW_EXIT_VERIFY,
                         "the manifest of backup %s (format_version %d) has no archive digest "
                         "(plaintext.%s)", backup_id, format_version, member);
    *algorithm = expected;
    return 0;
}
