/* Tests for formats/signature.c and the signing keys of formats/keys.c:
 * key files, the canonical form, signing, and the checks on tampered,
 * unsigned, untrusted, moved and duplicate-key manifests. */
#include "unit.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "formats/keys.h"
#include "formats/manifest.h"
#include "formats/signature.h"

#define MANIFEST_KEY "backups/appdb/20261204T030000Z-a1b2c3/manifest.json"

/* A manifest as the backup writes it: indented, in insertion order, with a
 * real (duration_seconds) and a row count. */
static const char manifest_text[] =
    "{\n"
    "  \"format\": \"stowage-manifest\",\n"
    "  \"format_version\": 1,\n"
    "  \"kind\": \"backup\",\n"
    "  \"id\": \"20261204T030000Z-a1b2c3\",\n"
    "  \"name\": \"appdb\",\n"
    "  \"database\": \"appdb\",\n"
    "  \"started_at\": \"2026-12-04T03:00:00Z\",\n"
    "  \"finished_at\": \"2026-12-04T03:05:00Z\",\n"
    "  \"duration_seconds\": 0.1,\n"
    "  \"object\": {\"key\": \"backups/appdb/20261204T030000Z-a1b2c3/data.stow\",\n"
    "    \"stored_bytes\": 100, \"parts\": [{\"number\": 1, \"offset\": 0, \"size\": 100,\n"
    "    \"sha256\": \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}]},\n"
    "  \"plaintext\": {\"bytes\": 1000, \"blake2b_256\": \"cc\"},\n"
    "  \"encryption\": {\"algorithm\": \"xchacha20poly1305-secretstream\",\n"
    "    \"recipients\": [{\"key_id\": \"0123456789abcdef\", \"wrapped_key\": \"AAAA\"}]},\n"
    "  \"contents\": {\"tables\": [{\"schema\": \"public\", \"name\": \"t\", \"rows\": 1000,\n"
    "    \"note\": \"caf\\u00e9 \\\"quoted\\\"\"}]}\n"
    "}\n";

static char temp_dir[] = "/tmp/stowage-test-signature-XXXXXX";
static struct keys_signing_secret *signer;
static struct keys_signing_public signer_public;
static struct keys_signing_public stranger_public;

static void temp_path(const char *name, char *path, size_t size)
{
    snprintf(path, size, "%s/%s", temp_dir, name);
}

static json_t *load_document(const char *text)
{
    json_error_t error;

    return json_loads(text, JSON_REJECT_DUPLICATES, &error);
}

/* Signs manifest_text and returns it serialised as the backup stores it. */
static char *signed_manifest_text(void)
{
    json_t *document = load_document(manifest_text);
    stow_error err = {0};
    char *text;

    CHECK_INT_EQ(0, signature_sign(document, signer, &err));
    text = manifest_serialise(document, &err);
    json_decref(document);
    return text;
}

/* Replaces the first occurrence of from in text by to (same length). */
static void replace_once(char *text, const char *from, const char *to)
{
    char *found = strstr(text, from);

    CHECK(found != NULL);
    CHECK_INT_EQ(strlen(from), strlen(to));
    if (found != NULL)
        memcpy(found, to, strlen(to));
}

static struct signature_trust trust_signer(void)
{
    struct signature_trust trust = {0};
    stow_error err = {0};

    CHECK_INT_EQ(0, signature_trust_add_key(&trust, &signer_public, &err));
    return trust;
}

static void test_signing_key_files(void)
{
    struct keys_signing_public loaded;
    struct keys_public as_recipient;
    struct keys_signing_secret *secret = NULL;
    char path[512], public_path[520];
    stow_error err = {0};
    struct stat st;

    temp_path("signing.sign", path, sizeof path);
    snprintf(public_path, sizeof public_path, "%s.pub", path);
    CHECK_INT_EQ(0, keys_signing_generate(path, NULL, &loaded, &err));
    CHECK_INT_EQ(0, stat(path, &st));
    CHECK_INT_EQ(0600, st.st_mode & 0777);

    CHECK_INT_EQ(0, keys_signing_secret_load(path, NULL, NULL, &secret, &err));
    CHECK_STR_EQ(loaded.id, keys_signing_secret_public(secret)->id);
    CHECK_INT_EQ(0, keys_signing_public_load(public_path, &loaded, &err));
    CHECK(memcmp(loaded.key, keys_signing_secret_public(secret)->key, 32) == 0);
    keys_signing_secret_free(secret);

    CHECK_INT_EQ(-1, keys_public_load(public_path, &as_recipient, &err));
    CHECK_INT_EQ(STOW_EXIT_USAGE, err.exit_code);
    CHECK_CONTAINS(err.message, "is a signing public key file; a recipient public key file is "
                                "expected here");

    chmod(path, 0640);
    stow_error_clear(&err);
    CHECK_INT_EQ(-1, keys_signing_secret_load(path, NULL, NULL, &secret, &err));
    CHECK_CONTAINS(err.message, "is readable by group or others");
}

static void test_recipient_key_not_signing_key(void)
{
    struct keys_signing_public loaded;
    struct keys_public recipient;
    char path[512], public_path[520];
    stow_error err = {0};

    temp_path("recipient.key", path, sizeof path);
    snprintf(public_path, sizeof public_path, "%s.pub", path);
    CHECK_INT_EQ(0, keys_generate(path, NULL, &recipient, &err));
    CHECK_INT_EQ(-1, keys_signing_public_load(public_path, &loaded, &err));
    CHECK_INT_EQ(STOW_EXIT_USAGE, err.exit_code);
    CHECK_CONTAINS(err.message, "is a recipient public key file; a signing public key file is "
                                "expected here");
}

static void test_protected_signing_key(void)
{
    struct keys_signing_secret *secret = NULL;
    char path[512];
    stow_error err = {0};

    temp_path("protected.sign", path, sizeof path);
    CHECK_INT_EQ(0, keys_signing_generate(path, "passphrase", NULL, &err));
    CHECK_INT_EQ(-1, keys_signing_secret_load(path, NULL, NULL, &secret, &err));
    CHECK_CONTAINS(err.message, "is protected by a passphrase");
}

static void test_canonical_form(void)
{
    json_t *document = load_document("{\"b\": 1, \"signature\": {\"key_id\": \"x\"},\n"
                                      " \"a\": {\"d\": 0.1, \"c\": \"caf\\u00e9\", \"e\": 2.0}}");
    json_t *reordered = load_document("{\"a\":{\"e\":2.0,\"c\":\"caf\xc3\xa9\",\"d\":0.1},"
                                      "\"b\":1}");
    stow_error err = {0};
    char *canonical = signature_canonical(document, &err);
    char *other = signature_canonical(reordered, &err);

    CHECK_STR_EQ("{\"a\":{\"c\":\"caf\xc3\xa9\",\"d\":0.10000000000000001,\"e\":2.0},\"b\":1}",
                 canonical);
    CHECK_STR_EQ(canonical, other);
    CHECK(json_object_get(document, SIGNATURE_MEMBER) != NULL);
    free(canonical);
    free(other);
    json_decref(document);
    json_decref(reordered);
}

/* The escapes and real formats that formats/FORMAT.md spells out for a
 * second implementation. */
static void test_canonical_escapes_and_reals(void)
{
    json_t *document = json_pack("{s:s, s:f, s:f}", "text", "a\x01\x1f/\x7f\t\"\\",
                                 "large", 1e20, "small", 1e-5);
    stow_error err = {0};
    char *canonical = signature_canonical(document, &err);

    CHECK_STR_EQ("{\"large\":1e20,\"small\":1.0000000000000001e-5,"
                 "\"text\":\"a\\u0001\\u001F/\x7f\\t\\\"\\\\\"}",
                 canonical);
    free(canonical);
    json_decref(document);
}

static void test_sign_and_check(void)
{
    struct signature_trust trust = trust_signer();
    char *text = signed_manifest_text();
    json_t *document = load_document(text);
    json_t *signature = json_object_get(document, SIGNATURE_MEMBER);
    const char *key_id = NULL;

    CHECK_STR_EQ(signer_public.id, json_string_value(json_object_get(signature, "key_id")));
    CHECK_STR_EQ("ed25519", json_string_value(json_object_get(signature, "algorithm")));
    CHECK_INT_EQ(88, strlen(json_string_value(json_object_get(signature, "value"))));
    CHECK_INT_EQ(SIGNATURE_VALID, signature_check(document, &trust, &key_id));
    CHECK_STR_EQ(signer_public.id, key_id);
    CHECK_INT_EQ(SIGNATURE_NOT_CHECKED, signature_check(document, NULL, &key_id));

    /* Members that the signature ignores do not change the outcome. */
    json_object_set_new(signature, "status", json_string("valid"));
    CHECK_INT_EQ(SIGNATURE_VALID, signature_check(document, &trust, &key_id));
    json_decref(document);
    free(text);
}

static void test_tampered_value(void)
{
    struct signature_trust trust = trust_signer();
    char *text = signed_manifest_text();
    const char *edits[][2] = {
        {"\"rows\": 1000", "\"rows\": 1001"},
        {"\"stored_bytes\": 100", "\"stored_bytes\": 101"},
        {"\"duration_seconds\": 0.1", "\"duration_seconds\": 0.2"},
        {"caf\xc3\xa9", "caf\xc3\xa8"},
    };

    for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
        char *copy = strdup(text);
        json_t *document;
        const char *key_id = NULL;

        replace_once(copy, edits[i][0], edits[i][1]);
        document = load_document(copy);
        CHECK(document != NULL);
        CHECK_INT_EQ(SIGNATURE_INVALID, signature_check(document, &trust, &key_id));
        CHECK_STR_EQ(signer_public.id, key_id);
        json_decref(document);
        free(copy);
    }
    free(text);
}

static void test_tampered_manifest_rejected(void)
{
    struct signature_trust trust = trust_signer();
    struct manifest manifest;
    char *text = signed_manifest_text();
    stow_error err = {0};

    replace_once(text, "\"rows\": 1000", "\"rows\": 1009");
    CHECK_INT_EQ(0, manifest_parse(MANIFEST_KEY, text, strlen(text), &manifest, &err));
    CHECK_INT_EQ(-1, signature_check_manifest(&manifest, MANIFEST_KEY, &trust, &err));
    CHECK_INT_EQ(STOW_EXIT_VERIFY, err.exit_code);
    CHECK_CONTAINS(err.message, MANIFEST_KEY);
    CHECK_CONTAINS(err.message, "20261204T030000Z-a1b2c3");
    CHECK_CONTAINS(err.message, signer_public.id);
    CHECK_CONTAINS(err.message, "does not verify");
    manifest_free(&manifest);
    free(text);
}

static void test_layout_does_not_matter(void)
{
    struct signature_trust trust = trust_signer();
    char *text = signed_manifest_text();
    json_t *document = load_document(text);
    char *compact = json_dumps(document, JSON_COMPACT);
    json_t *reloaded = load_document(compact);
    const char *key_id = NULL;

    CHECK_INT_EQ(SIGNATURE_VALID, signature_check(reloaded, &trust, &key_id));
    json_decref(reloaded);
    json_decref(document);
    free(compact);
    free(text);
}

static void test_unsigned_untrusted_malformed(void)
{
    struct signature_trust trust = trust_signer();
    struct signature_trust strangers = {0};
    char *text = signed_manifest_text();
    json_t *document = load_document(text);
    json_t *signature = json_object_get(document, SIGNATURE_MEMBER);
    stow_error err = {0};
    const char *key_id = NULL;

    CHECK_INT_EQ(0, signature_trust_add_key(&strangers, &stranger_public, &err));
    CHECK_INT_EQ(SIGNATURE_UNTRUSTED, signature_check(document, &strangers, &key_id));
    CHECK_STR_EQ(signer_public.id, key_id);

    json_object_set_new(signature, "algorithm", json_string("rsa"));
    CHECK_INT_EQ(SIGNATURE_MALFORMED, signature_check(document, &trust, &key_id));
    json_object_set_new(signature, "algorithm", json_string("ed25519"));
    json_object_set_new(signature, "value", json_string("AAAA"));
    CHECK_INT_EQ(SIGNATURE_MALFORMED, signature_check(document, &trust, &key_id));

    json_object_del(document, SIGNATURE_MEMBER);
    CHECK_INT_EQ(SIGNATURE_UNSIGNED, signature_check(document, &trust, &key_id));
    CHECK(key_id == NULL);
    json_decref(document);
    free(text);
}

static void test_unsigned_manifest_rejected(void)
{
    struct signature_trust trust = trust_signer();
    struct manifest manifest;
    stow_error err = {0};

    CHECK_INT_EQ(0, manifest_parse(MANIFEST_KEY, manifest_text, strlen(manifest_text),
                                   &manifest, &err));
    CHECK_INT_EQ(-1, signature_check_manifest(&manifest, MANIFEST_KEY, &trust, &err));
    CHECK_INT_EQ(STOW_EXIT_VERIFY, err.exit_code);
    CHECK_CONTAINS(err.message, "is not signed");
    CHECK_CONTAINS(err.message, signer_public.id);

    stow_error_clear(&err);
    CHECK_INT_EQ(0, signature_check_manifest(&manifest, MANIFEST_KEY, NULL, &err));
    manifest_free(&manifest);
}

static void test_moved_manifest_rejected(void)
{
    struct signature_trust trust = trust_signer();
    struct manifest manifest;
    char *text = signed_manifest_text();
    const char *other_key = "backups/appdb/20261205T030000Z-000000/manifest.json";
    stow_error err = {0};

    CHECK_INT_EQ(0, manifest_parse(other_key, text, strlen(text), &manifest, &err));
    CHECK_INT_EQ(-1, signature_check_manifest(&manifest, other_key, &trust, &err));
    CHECK_INT_EQ(STOW_EXIT_VERIFY, err.exit_code);
    CHECK_CONTAINS(err.message, "moved or copied");
    manifest_free(&manifest);
    free(text);
}

static void test_duplicate_key_rejected(void)
{
    struct manifest manifest;
    char *text = signed_manifest_text();
    char *duplicated = malloc(strlen(text) + 64);
    stow_error err = {0};

    /* A second "id" after the signed one: a reader that kept the last
     * value would see another backup under a valid signature. */
    sprintf(duplicated, "{\"id\": \"20261205T030000Z-000000\",%s", strchr(text, '{') + 1);
    CHECK_INT_EQ(-1, manifest_parse(MANIFEST_KEY, duplicated, strlen(duplicated), &manifest,
                                    &err));
    CHECK_INT_EQ(STOW_EXIT_VERIFY, err.exit_code);
    CHECK_CONTAINS(err.message, "duplicate object key");
    free(duplicated);
    free(text);
}

static void test_trust_list(void)
{
    struct signature_trust trust = {0};
    char first[512], second[512], list[1600];
    stow_error err = {0};

    temp_path("signing.sign.pub", first, sizeof first);
    temp_path("stranger.sign.pub", second, sizeof second);
    snprintf(list, sizeof list, ":%s::%s:%s", first, second, first);
    CHECK_INT_EQ(0, signature_trust_add_list(&trust, list, &err));
    CHECK_INT_EQ(2, trust.count);
    CHECK_INT_EQ(0, signature_trust_add_list(&trust, NULL, &err));

    CHECK_INT_EQ(-1, signature_trust_add_list(&trust, "/nonexistent/key.sign.pub", &err));
    CHECK_INT_EQ(STOW_EXIT_USAGE, err.exit_code);
    CHECK_CONTAINS(err.message, "/nonexistent/key.sign.pub");
}

int main(void)
{
    char path[512];
    stow_error err = {0};
    int rc;

    if (sodium_init() < 0 || mkdtemp(temp_dir) == NULL)
        return 1;
    temp_path("signer.sign", path, sizeof path);
    if (keys_signing_generate(path, NULL, &signer_public, &err) != 0 ||
        keys_signing_secret_load(path, NULL, NULL, &signer, &err) != 0)
        return 1;
    temp_path("stranger.sign", path, sizeof path);
    if (keys_signing_generate(path, NULL, &stranger_public, &err) != 0)
        return 1;

    unit_run("signing key files", test_signing_key_files);
    unit_run("recipient key is not a signing key", test_recipient_key_not_signing_key);
    unit_run("protected signing key", test_protected_signing_key);
    unit_run("canonical form", test_canonical_form);
    unit_run("canonical escapes and reals", test_canonical_escapes_and_reals);
    unit_run("sign and check", test_sign_and_check);
    unit_run("tampered value fails", test_tampered_value);
    unit_run("tampered manifest rejected", test_tampered_manifest_rejected);
    unit_run("layout does not matter", test_layout_does_not_matter);
    unit_run("unsigned, untrusted, malformed", test_unsigned_untrusted_malformed);
    unit_run("unsigned manifest rejected", test_unsigned_manifest_rejected);
    unit_run("moved manifest rejected", test_moved_manifest_rejected);
    unit_run("duplicate key rejected", test_duplicate_key_rejected);
    unit_run("trust list", test_trust_list);

    keys_signing_secret_free(signer);
    rc = unit_finish();
    unit_remove_tree(temp_dir);
    return rc;
}
