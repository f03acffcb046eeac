#!/usr/bin/env bash
# Regenerates the golden dumps in this folder from sample.sql:
#
#   sample.dump       pg_dump -Fc -Z0 of the sample database, written to a
#                     pipe as stowage runs it (the TOC has no data offsets)
#   sample_z6.dump    pg_dump -Fc -Z6 of one table: a compressed archive
#   sample.expected   one tab-separated line per table that has rows in the
#                     dump: schema, name, SELECT count(*), and the table
#                     digest computed in Python over COPY ... TO STDOUT, an
#                     implementation independent of formats/rowdigest.c
#
# pg_dump runs with PGTZ=UTC and bytea_output=hex, the session settings that
# the scanner records by default. The server is a throwaway cluster started
# by pg_scratch.sh and stopped on exit.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
dir=$(mktemp -d)

cleanup() {
    "$here/pg_scratch.sh" stop "$dir" 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT

port=$("$here/pg_scratch.sh" start "$dir")
export PGHOST=$dir PGPORT=$port PGUSER=postgres PGDATABASE=sample
export PGTZ=UTC PGOPTIONS="-c bytea_output=hex"

"$PG_BIN/createdb" sample
"$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -f "$here/sample.sql" >/dev/null

"$PG_BIN/pg_dump" -Fc -Z0 sample | cat >"$here/sample.dump"
"$PG_BIN/pg_dump" -Fc -Z6 -t public.plain sample | cat >"$here/sample_z6.dump"

# The digest is sum128-siphash (formats/FORMAT.md). Each COPY text line,
# without its newline, is hashed with SipHash-2-4 (128-bit output, all-zero
# key), or with BLAKE2b-128 when it is longer than 65536 bytes. The hashes
# are read as two little-endian uint64 lanes and summed lane by lane modulo
# 2^64. SipHash is written out here because Python's standard library does
# not offer it.
digest_py='
import hashlib, struct, sys
M = 2**64 - 1
def rotl(x, b):
    return ((x << b) | (x >> (64 - b))) & M
def siphash128(key, data):
    k0, k1 = struct.unpack("<2Q", key)
    v = [k0 ^ 0x736f6d6570736575, k1 ^ 0x646f72616e646f6d ^ 0xee,
         k0 ^ 0x6c7967656e657261, k1 ^ 0x7465646279746573]
    def rounds(n):
        v0, v1, v2, v3 = v
        for _ in range(n):
            v0 = (v0 + v1) & M; v1 = rotl(v1, 13) ^ v0; v0 = rotl(v0, 32)
            v2 = (v2 + v3) & M; v3 = rotl(v3, 16) ^ v2
            v0 = (v0 + v3) & M; v3 = rotl(v3, 21) ^ v0
            v2 = (v2 + v1) & M; v1 = rotl(v1, 17) ^ v2; v2 = rotl(v2, 32)
        v[:] = [v0, v1, v2, v3]
    tail = len(data) % 8
    blocks = [struct.unpack_from("<Q", data, i)[0] for i in range(0, len(data) - tail, 8)]
    blocks.append(int.from_bytes(data[len(data) - tail:], "little") | ((len(data) & 0xff) << 56))
    for m in blocks:
        v[3] ^= m; rounds(2); v[0] ^= m
    v[2] ^= 0xee; rounds(4); out0 = v[0] ^ v[1] ^ v[2] ^ v[3]
    v[1] ^= 0xdd; rounds(4); out1 = v[0] ^ v[1] ^ v[2] ^ v[3]
    return struct.pack("<2Q", out0, out1)
def row_hash(line):
    if len(line) <= 65536:
        return siphash128(bytes(16), line)
    return hashlib.blake2b(line, digest_size=16).digest()
# The published SipHash-2-4-128 test vector for key 00..0f and an empty message.
assert siphash128(bytes(range(16)), b"").hex() == "a3817f04ba25a8e66df67214c7550293"
data = sys.stdin.buffer.read()
assert data == b"" or data.endswith(b"\n")
lines = data.split(b"\n")[:-1]
lanes = [0, 0]
for line in lines:
    for i, lane in enumerate(struct.unpack("<2Q", row_hash(line))):
        lanes[i] = (lanes[i] + lane) % 2**64
print(len(lines), struct.pack("<2Q", *lanes).hex())
'

# Ordinary tables outside the system schemas and not owned by an extension;
# COPY without a column list leaves out generated columns, as pg_dump does.
tables_sql="
SELECT n.nspname, c.relname, format('%I.%I', n.nspname, c.relname)
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'
  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                  WHERE d.classid = 'pg_catalog.pg_class'::regclass
                    AND d.objid = c.oid AND d.deptype = 'e')
ORDER BY 1, 2"

"$PG_BIN/psql" -X -At -F $'\t' -c "$tables_sql" |
while IFS=$'\t' read -r schema name qualified; do
    count=$("$PG_BIN/psql" -X -At -c "SELECT count(*) FROM $qualified")
    read -r rows digest < <("$PG_BIN/psql" -X -c "COPY $qualified TO STDOUT" | python3 -c "$digest_py")
    if [ "$rows" != "$count" ]; then
        echo "COPY gave $rows rows for $qualified but count(*) is $count" >&2
        exit 1
    fi
    printf '%s\t%s\t%s\t%s\n' "$schema" "$name" "$count" "$digest"
done >"$here/sample.expected"

ls -l "$here/sample.dump" "$here/sample_z6.dump" "$here/sample.expected"
