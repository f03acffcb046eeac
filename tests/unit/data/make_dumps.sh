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

# The digest: BLAKE2b-256 of each COPY text line without its newline, read
# as four little-endian uint64 lanes, summed lane by lane modulo 2^64.
digest_py='
import hashlib, struct, sys
data = sys.stdin.buffer.read()
assert data == b"" or data.endswith(b"\n")
lines = data.split(b"\n")[:-1]
lanes = [0, 0, 0, 0]
for line in lines:
    for i, lane in enumerate(struct.unpack("<4Q", hashlib.blake2b(line, digest_size=32).digest())):
        lanes[i] = (lanes[i] + lane) % 2**64
print(len(lines), struct.pack("<4Q", *lanes).hex())
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
