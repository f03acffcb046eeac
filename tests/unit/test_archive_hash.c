/* The archive digest: known-answer vectors for both algorithms, split updates,
 * and how the expected digest is found in a manifest. */
#include <jansson.h>
#include <string.h>

#include "formats/archive_hash.h"
#include "manifest.h"
#include "unit.h"

static void digest_hex(archive_hash_algorithm algorithm, const char *text, size_t split,
                       char out[ARCHIVE_HASH_HEX_SIZE])
{
    archive_hash *hash = NULL;
    stow_error err = {0};
    uint8_t digest[ARCHIVE_HASH_BYTES];

    CHECK_INT_EQ(0, archive_hash_new(algorithm, &hash, &err));
    archive_hash_update(hash, text, split);
    archive_hash_update(hash, text + split, strlen(text) - split);
    archive_hash_final(hash, digest);
    archive_hash_free(hash);
    manifest_hex(digest, sizeof digest, out);
}

/* FIPS 180-2, appendix B.1 and B.2. */
static void test_sha256_known_answers(void)
{
    static const char two_blocks[] = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    char hex[ARCHIVE_HASH_HEX_SIZE];

    digest_hex(ARCHIVE_HASH_SHA256, "abc", 1, hex);
    CHECK_STR_EQ("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", hex);
    digest_hex(ARCHIVE_HASH_SHA256, two_blocks, 37, hex);
    CHECK_STR_EQ("248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1", hex);
    CHECK_STR_EQ("sha256", archive_hash_member(ARCHIVE_HASH_DEFAULT));
}

/* BLAKE2b with a 32-byte output, as `b2sum -l 256` and Python's
 * hashlib.blake2b(digest_size=32) compute it. */
static void test_blake2b_known_answer(void)
{
    char hex[ARCHIVE_HASH_HEX_SIZE];

    digest_hex(ARCHIVE_HASH_BLAKE2B_256, "abc", 2, hex);
    CHECK_STR_EQ("bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319", hex);
    CHECK_STR_EQ("blake2b_256", archive_hash_member(ARCHIVE_HASH_BLAKE2B_256));
}

static void check_expected(const char *json, int version, int rc,
                           archive_hash_algorithm algorithm, const char *message)
{
    json_t *plaintext = json_loads(json, 0, NULL);
    archive_hash_algorithm found = ARCHIVE_HASH_DEFAULT;
    const char *hex = NULL;
    stow_error err = {0};

    CHECK(plaintext != NULL);
    CHECK_INT_EQ(rc, archive_hash_expected(plaintext, version, "B1", &found, &hex, &err));
    if (rc == 0) {
        CHECK_INT_EQ(algorithm, found);
        CHECK_STR_EQ("aa", hex);
    } else {
        CHECK_INT_EQ(STOW_EXIT_VERIFY, err.exit_code);
        CHECK_CONTAINS(err.message, message);
        CHECK_CONTAINS(err.message, "B1");
    }
    json_decref(plaintext);
}

static void test_expected_digest(void)
{
    check_expected("{\"bytes\": 1, \"sha256\": \"aa\"}", 2, 0, ARCHIVE_HASH_SHA256, NULL);
    check_expected("{\"bytes\": 1, \"blake2b_256\": \"aa\"}", 1, 0, ARCHIVE_HASH_BLAKE2B_256,
                   NULL);
    check_expected("{\"bytes\": 1, \"sha256\": \"aa\", \"blake2b_256\": \"aa\"}", 2, -1, 0,
                   "two archive digests");
    check_expected("{\"bytes\": 1}", 2, -1, 0, "no archive digest (plaintext.sha256)");
    check_expected("{\"bytes\": 1, \"sha256\": 5}", 2, -1, 0, "no archive digest");
    check_expected("{\"bytes\": 1, \"sha256\": \"aa\"}", 1, -1, 0,
                   "no archive digest (plaintext.blake2b_256)");
    check_expected("{\"bytes\": 1, \"blake2b_256\": \"aa\"}", 2, -1, 0,
                   "no archive digest (plaintext.sha256)");
}

int main(void)
{
    unit_run("SHA-256 known answers", test_sha256_known_answers);
    unit_run("BLAKE2b-256 known answer", test_blake2b_known_answer);
    unit_run("expected digest from the manifest", test_expected_digest);
    return unit_finish();
}
