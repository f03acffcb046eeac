#!/usr/bin/env python3
"""Decrypt a Stowage data object without Stowage, following formats/FORMAT.md.

Writes the zstd stream to standard output, so a typical use is:

    key_id=$(cut -d ' ' -f 2 recipient.key)
    wrapped=$(jq -r --arg id "$key_id" \\
        '.encryption.recipients[] | select(.key_id == $id) | .wrapped_key' manifest.json)
    python3 scripts/recover-by-hand.py --secret-key recipient.key --wrapped-key "$wrapped" \\
        data-object | zstd -d | tar -x

Needs only Python 3 and the system's libsodium (loaded with ctypes). The
output of a frame is written only after the frame authenticated. On any
error the script exits with status 1, and a frame that fails is named by
its offset.
"""

import argparse
import base64
import ctypes
import ctypes.util
import getpass
import hashlib
import sys

MAGIC = b"STOWAGE\x00"
FORMAT_VERSION = 1
FLAG_ENCRYPTED = 0x0001
FLAG_ZSTD = 0x0002
PREFIX_BYTES = 14
FIXED_BYTES = 43
FRAME_PLAIN_BYTES = 65536
FRAME_OVERHEAD_BYTES = 17
FRAME_STORED_BYTES = FRAME_PLAIN_BYTES + FRAME_OVERHEAD_BYTES
TAG_MESSAGE = 0
TAG_FINAL = 3
SEAL_BYTES = 48
DATA_KEY_BYTES = 32


class RecoveryError(Exception):
    """A failure with a message for the operator."""


def load_sodium():
    """Load libsodium and declare the functions that recovery calls."""
    name = ctypes.util.find_library("sodium") or "libsodium.so.23"
    try:
        sodium = ctypes.CDLL(name)
    except OSError as error:
        raise RecoveryError(f"cannot load libsodium ({name}): {error}") from error
    if sodium.sodium_init() < 0:
        raise RecoveryError("libsodium failed to initialize")

    ull = ctypes.c_ulonglong
    buf = ctypes.c_char_p
    sodium.crypto_pwhash.argtypes = [buf, ull, buf, ull, buf, ull, ctypes.c_size_t, ctypes.c_int]
    sodium.crypto_secretbox_open_easy.argtypes = [buf, buf, ull, buf, buf]
    sodium.crypto_scalarmult_base.argtypes = [buf, buf]
    sodium.crypto_box_seal_open.argtypes = [buf, buf, ull, buf, buf]
    sodium.crypto_secretstream_xchacha20poly1305_init_pull.argtypes = [buf, buf, buf]
    sodium.crypto_secretstream_xchacha20poly1305_pull.argtypes = [
        buf, buf, ctypes.POINTER(ull), ctypes.POINTER(ctypes.c_ubyte), buf, ull, buf, ull]
    sodium.crypto_secretstream_xchacha20poly1305_statebytes.restype = ctypes.c_size_t
    return sodium


def b64decode_exact(text, length, field_name):
    """Decode standard padded base64 that must yield exactly length bytes."""
    try:
        data = base64.b64decode(text, validate=True)
    except ValueError as error:
        raise RecoveryError(f"{field_name} is not valid base64") from error
    if len(data) != length:
        raise RecoveryError(f"{field_name} has {len(data)} bytes, expected {length}")
    return data


def key_id(public_key):
    """Return the key id: hex of the first 8 bytes of BLAKE2b-256(public key)."""
    return hashlib.blake2b(public_key, digest_size=32).digest()[:8].hex()


def open_protected(sodium, fields, path, passphrase):
    """Open the secretbox of an argon2id secret key file."""
    if len(fields) != 8:
        raise RecoveryError(f"{path}: expected 8 fields for an argon2id key, found {len(fields)}")
    opslimit, memlimit = int(fields[3]), int(fields[4])
    salt = b64decode_exact(fields[5], 16, f"{path}: salt")
    nonce = b64decode_exact(fields[6], 24, f"{path}: nonce")
    box = b64decode_exact(fields[7], 48, f"{path}: encrypted key")

    box_key = ctypes.create_string_buffer(32)
    secret = ctypes.create_string_buffer(32)
    password = passphrase.encode()
    if sodium.crypto_pwhash(box_key, 32, password, len(password), salt, opslimit, memlimit,
                            sodium.crypto_pwhash_alg_argon2id13()) != 0:
        raise RecoveryError(f"Argon2id for {path} ran out of memory ({memlimit} bytes)")
    if sodium.crypto_secretbox_open_easy(secret, box, len(box), nonce, box_key) != 0:
        raise RecoveryError(f"wrong passphrase for {path}")
    return secret.raw


def read_secret_key(sodium, path, passphrase_file):
    """Return (secret key, public key) from a Stowage secret key file."""
    with open(path, encoding="ascii") as file:
        fields = file.read().rstrip("\n").split(" ")
    if fields[0] != "stowage-secret-key-v1" or len(fields) < 4:
        raise RecoveryError(f"{path} is not a Stowage secret key file (version 1)")

    if fields[2] == "none":
        secret = b64decode_exact(fields[3], 32, f"{path}: secret key")
    elif fields[2] == "argon2id":
        if passphrase_file:
            with open(passphrase_file, encoding="utf-8") as file:
                passphrase = file.readline().rstrip("\n").rstrip("\r")
        else:
            passphrase = getpass.getpass(f"Passphrase for {path}: ")
        secret = open_protected(sodium, fields, path, passphrase)
    else:
        raise RecoveryError(f"{path}: unknown protection {fields[2]!r}")

    public = ctypes.create_string_buffer(32)
    sodium.crypto_scalarmult_base(public, secret)
    if key_id(public.raw) != fields[1]:
        raise RecoveryError(f"{path} is corrupted: its key id does not match its secret key")
    return secret, public.raw


def unwrap_data_key(sodium, wrapped, secret, public):
    """Open the sealed box of a manifest's wrapped_key."""
    sealed = b64decode_exact(wrapped, SEAL_BYTES + DATA_KEY_BYTES, "the wrapped key")
    data_key = ctypes.create_string_buffer(DATA_KEY_BYTES)
    if sodium.crypto_box_seal_open(data_key, sealed, len(sealed), public, secret) != 0:
        raise RecoveryError(f"the data key is not sealed for key id {key_id(public)}")
    return data_key.raw


def read_exact(stream, size):
    """Read size bytes, or fewer only at the end of the stream."""
    chunks = []
    while size > 0:
        chunk = stream.read(size)
        if not chunk:
            break
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def read_header(stream, expected_backup_id):
    """Read and check the container header; return (header bytes, stream header)."""
    prefix = read_exact(stream, PREFIX_BYTES)
    if len(prefix) < PREFIX_BYTES or prefix[:8] != MAGIC:
        raise RecoveryError("not a Stowage backup object")
    version = int.from_bytes(prefix[8:10], "big")
    if version != FORMAT_VERSION:
        raise RecoveryError(f"unsupported container format version {version} "
                            f"(this script reads version {FORMAT_VERSION})")
    length = int.from_bytes(prefix[12:14], "big")
    if not FIXED_BYTES < length <= FIXED_BYTES + 64:
        raise RecoveryError(f"invalid container header length {length}")

    header = prefix + read_exact(stream, length - PREFIX_BYTES)
    if len(header) < length:
        raise RecoveryError("the object is truncated inside the container header")
    flags = int.from_bytes(header[10:12], "big")
    if flags != FLAG_ENCRYPTED | FLAG_ZSTD:
        raise RecoveryError(f"container flags 0x{flags:04x}: not an encrypted zstd object "
                            f"(an unencrypted one needs only: tail -c +{length + 1} | zstd -d)")
    backup_id = header[FIXED_BYTES:].decode("ascii", "replace")
    if expected_backup_id is not None and backup_id != expected_backup_id:
        raise RecoveryError(f"the object belongs to backup {backup_id}, "
                            f"expected backup {expected_backup_id}")
    return header, header[18:42]


def decrypt_frames(sodium, stream, output, header, stream_header, data_key):
    """Decrypt every frame of the body and write the zstd stream to output."""
    state = ctypes.create_string_buffer(
        sodium.crypto_secretstream_xchacha20poly1305_statebytes())
    sodium.crypto_secretstream_xchacha20poly1305_init_pull(state, stream_header, data_key)
    plain = ctypes.create_string_buffer(FRAME_PLAIN_BYTES)
    plain_len = ctypes.c_ulonglong()
    tag = ctypes.c_ubyte()

    offset = len(header)
    frame = read_exact(stream, FRAME_STORED_BYTES)
    first = True
    while True:
        following = read_exact(stream, FRAME_STORED_BYTES) if len(frame) == FRAME_STORED_BYTES else b""
        last = len(frame) < FRAME_STORED_BYTES
        if len(frame) < FRAME_OVERHEAD_BYTES:
            raise RecoveryError(f"the object is truncated: no final frame at offset {offset}")

        ad = header if first else None
        if sodium.crypto_secretstream_xchacha20poly1305_pull(
                state, plain, ctypes.byref(plain_len), ctypes.byref(tag), frame, len(frame),
                ad, len(ad) if ad else 0) != 0:
            raise RecoveryError(f"frame at offset {offset} failed authentication")
        if last != (tag.value == TAG_FINAL):
            raise RecoveryError(f"frame at offset {offset} has tag {tag.value} in the wrong place")
        output.write(plain.raw[:plain_len.value])
        if last:
            return
        offset += len(frame)
        frame = following
        first = False


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("object", help="the data object; - reads standard input")
    parser.add_argument("--secret-key", required=True, help="Stowage secret key file")
    parser.add_argument("--wrapped-key", required=True,
                        help="wrapped_key of your entry in encryption.recipients[]")
    parser.add_argument("--passphrase-file", help="file whose first line is the passphrase")
    parser.add_argument("--backup-id", help="reject an object with another backup id")
    args = parser.parse_args()

    try:
        sodium = load_sodium()
        secret, public = read_secret_key(sodium, args.secret_key, args.passphrase_file)
        data_key = unwrap_data_key(sodium, args.wrapped_key.strip(), secret, public)
        stream = sys.stdin.buffer if args.object == "-" else open(args.object, "rb")
        with stream:
            header, stream_header = read_header(stream, args.backup_id)
            decrypt_frames(sodium, stream, sys.stdout.buffer, header, stream_header, data_key)
    except (RecoveryError, OSError, ValueError) as error:
        print(f"recover-by-hand: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
