/* Canonical serialisation, signing and checking of manifests, and the set
 * of trusted signing keys. */
#include "signature.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

#define CANONICAL_FLAGS (JSON_SORT_KEYS | JSON_COMPACT | JSON_REAL_PRECISION(17))

/* --- Trusted keys --------------------------------------------------------- */

int signature_trust_add_key(struct signature_trust *trust, const struct keys_signing_public *key,
                            stow_error *err)
{
    for (size_t i = 0; i < trust->count; i++) {
        if (strcmp(trust->keys[i].id, key->id) == 0)
            return 0;
    }
    if (trust->count == SIGNATURE_TRUSTED_KEYS_MAX)
        return stow_fail(err, STOW_EXIT_USAGE, "more than %d trusted keys were given",
                         SIGNATURE_TRUSTED_KEYS_MAX);
    trust->keys[trust->count++] = *key;
    return 0;
}

int signature_trust_add_file(struct signature_trust *trust, const char *path, stow_error *err)
{
    struct keys_signing_public key;

    if (keys_signing_public_load(path, &key, err) != 0) {
        stow_error_hint(err, "--trusted-key and STOWAGE_TRUSTED_KEYS take the signing public "
                             "key file (PATH.sign.pub from stowage keygen)");
        return -1;
    }
    return signature_trust_add_key(trust, &key, err);
}

int signature_trust_add_list(struct signature_trust *trust, const char *list, stow_error *err)
{
    char *copy;
    char *cursor;
    int rc = 0;

    if (list == NULL)
        return 0;
    copy = strdup(list);
    if (copy == NULL)
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory");

    cursor = copy;
    while (rc == 0 && cursor != NULL) {
        char *path = strsep(&cursor, ":");

        if (path[0] != '\0')
            rc = signature_trust_add_file(trust, path, err);
    }
    free(copy);
    return rc;
}

/* --- Canonical form and signing ------------------------------------------- */

char *signature_canonical(json_t *document, stow_error *err)
{
    json_t *unsigned_copy = json_copy(document);
    char *text = NULL;

    /* json_copy is shallow, so the copy shares its members with document,
     * and removing the signature from the copy leaves document intact. */
    if (unsigned_copy != NULL) {
        json_object_del(unsigned_copy, SIGNATURE_MEMBER);
        text = json_dumps(unsigned_copy, CANONICAL_FLAGS);
        json_decref(unsigned_copy);
    }
    if (text == NULL)
        stow_fail(err, STOW_EXIT_FAILURE, "could not serialise the manifest for its signature");
    return text;
}

int signature_sign(json_t *document, const struct keys_signing_secret *key, stow_error *err)
{
    const struct keys_signing_public *public_key = keys_signing_secret_public(key);
    uint8_t signature[KEYS_SIGNATURE_BYTES];
    char value[sodium_base64_ENCODED_LEN(KEYS_SIGNATURE_BYTES, sodium_base64_VARIANT_ORIGINAL)];
    char *canonical = signature_canonical(document, err);

    if (canonical == NULL)
        return -1;
    keys_sign(key, (const uint8_t *)canonical, strlen(canonical), signature);
    free(canonical);

    sodium_bin2base64(value, sizeof value, signature, sizeof signature,
                      sodium_base64_VARIANT_ORIGINAL);
    if (json_object_set_new(document, SIGNATURE_MEMBER,
                            json_pack("{s:s, s:s, s:s}", "key_id", public_key->id, "algorithm",
                                      SIGNATURE_ALGORITHM, "value", value)) != 0)
        return stow_fail(err, STOW_EXIT_FAILURE, "out of memory signing the manifest");
    return 0;
}

/* --- Checking ------------------------------------------------------------- */

/* Decodes the signature member. Returns 0 when it is well formed. */
static int signature_decode(json_t *member, const char **key_id,
                            uint8_t signature[KEYS_SIGNATURE_BYTES])
{
    const char *algorithm = json_string_value(json_object_get(member, "algorithm"));
    const char *value = json_string_value(json_object_get(member, "value"));
    size_t decoded = 0;

    *key_id = json_string_value(json_object_get(member, "key_id"));
    if (*key_id == NULL || algorithm == NULL || value == NULL ||
        strcmp(algorithm, SIGNATURE_ALGORITHM) != 0)
        return -1;
    if (sodium_base642bin(signature, KEYS_SIGNATURE_BYTES, value, strlen(value), NULL, &decoded,
                          NULL, sodium_base64_VARIANT_ORIGINAL) != 0 ||
        decoded != KEYS_SIGNATURE_BYTES)
        return -1;
    return 0;
}

static const struct keys_signing_public *trusted_key(const struct signature_trust *trust,
                                                     const char *key_id)
{
    for (size_t i = 0; i < trust->count; i++) {
        if (strcmp(trust->keys[i].id, key_id) == 0)
            return &trust->keys[i];
    }
    return NULL;
}

enum signature_status signature_check(json_t *document, const struct signature_trust *trust,
                                      const char **key_id)
{
    json_t *member = json_object_get(document, SIGNATURE_MEMBER);
    uint8_t signature[KEYS_SIGNATURE_BYTES];
    const struct keys_signing_public *signer;
    char *canonical;
    int valid;

    *key_id = NULL;
    if (member == NULL)
        return SIGNATURE_UNSIGNED;
    if (signature_decode(member, key_id, signature) != 0)
        return SIGNATURE_MALFORMED;
    if (trust == NULL || trust->count == 0)
        return SIGNATURE_NOT_CHECKED;

    signer = trusted_key(trust, *key_id);
    if (signer == NULL)
        return SIGNATURE_UNTRUSTED;
    canonical = signature_canonical(document, &(stow_error){0});
    if (canonical == NULL)
        return SIGNATURE_INVALID;
    valid = keys_signature_valid(signer, (const uint8_t *)canonical, strlen(canonical),
                                 signature);
    free(canonical);
    return valid ? SIGNATURE_VALID : SIGNATURE_INVALID;
}

const char *signature_status_name(enum signature_status status)
{
    switch (status) {
    case SIGNATURE_UNSIGNED: return "unsigned";
    case SIGNATURE_MALFORMED: return "malformed";
    case SIGNATURE_UNTRUSTED: return "untrusted";
    case SIGNATURE_INVALID: return "invalid";
    case SIGNATURE_VALID: return "valid";
    case SIGNATURE_NOT_CHECKED: return "not_checked";
    }
    return "unknown";
}

/* Lists the trusted key ids, comma-separated, into out. */
static void trusted_ids(const struct signature_trust *trust, char *out, size_t size)
{
    out[0] = '\0';
    for (size_t i = 0; i < trust->count; i++) {
        size_t used = strlen(out);

        snprintf(out + used, size - used, "%s%s", i ? ", " : "", trust->keys[i].id);
    }
}

/* Fails unless the manifest lies where its name and id put it, so that a
 * validly signed manifest copied over another backup's is rejected. */
static int check_location(const struct manifest *manifest, const char *manifest_key,
                          stow_error *err)
{
    char expected[512];

    if (catalog_key(expected, sizeof expected, manifest->name, manifest->id,
                    CATALOG_MANIFEST_FILE) == 0 &&
        strcmp(expected, manifest_key) == 0)
        return 0;
    return stow_fail(err, STOW_EXIT_VERIFY,
                     "manifest %s names backup %s of %s, which belongs at %s: it was moved or "
                     "copied from another backup",
                     manifest_key, manifest->id, manifest->name, expected);
}

static int refuse(const struct manifest *manifest, const char *manifest_key,
                  enum signature_status status, const char *key_id,
                  const struct signature_trust *trust, stow_error *err)
{
    char ids[SIGNATURE_TRUSTED_KEYS_MAX * (KEYS_ID_CHARS + 2) + 1];

    trusted_ids(trust, ids, sizeof ids);
    if (status == SIGNATURE_UNSIGNED)
        stow_fail(err, STOW_EXIT_VERIFY,
                  "manifest %s of backup %s is not signed, and trusted keys (%s) were given",
                  manifest_key, manifest->id, ids);
    else if (status == SIGNATURE_MALFORMED)
        stow_fail(err, STOW_EXIT_VERIFY,
                  "manifest %s of backup %s has an invalid signature member (expected key_id, "
                  "algorithm \"ed25519\" and a base64 value of 64 bytes)",
                  manifest_key, manifest->id);
    else if (status == SIGNATURE_UNTRUSTED)
        stow_fail(err, STOW_EXIT_VERIFY,
                  "manifest %s of backup %s is signed by key id %s, which is not a trusted key "
                  "(trusted: %s)",
                  manifest_key, manifest->id, key_id, ids);
    else
        stow_fail(err, STOW_EXIT_VERIFY,
                  "the signature of manifest %s of backup %s by key id %s does not verify: the "
                  "manifest was changed after it was signed",
                  manifest_key, manifest->id, key_id);

    if (status == SIGNATURE_UNSIGNED || status == SIGNATURE_UNTRUSTED)
        stow_error_hint(err, "pass the signing public key that signed it with --trusted-key, or "
                             "sign the backup again with stowage rekey --signing-key");
    return -1;
}

int signature_check_manifest(const struct manifest *manifest, const char *manifest_key,
                             const struct signature_trust *trust, stow_error *err)
{
    static int warned;
    const char *key_id = NULL;
    enum signature_status status = signature_check(manifest->document, trust, &key_id);

    if (trust == NULL || trust->count == 0) {
        if (!warned)
            stow_log_warn("manifest signatures are not checked (manifest %s: signature %s%s%s): "
                          "pass --trusted-key or set STOWAGE_TRUSTED_KEYS",
                          manifest_key, signature_status_name(status),
                          key_id != NULL ? ", key id " : "", key_id != NULL ? key_id : "");
        warned = 1;
        return 0;
    }
    if (status != SIGNATURE_VALID)
        return refuse(manifest, manifest_key, status, key_id, trust, err);
    if (check_location(manifest, manifest_key, err) != 0)
        return -1;
    stow_log_detail("manifest %s is signed by trusted key id %s", manifest_key, key_id);
    return 0;
}
