#!/usr/bin/env bash
# Benchmark stowage backup and restore against pg_dump, zstd and awscli
# pipelines, on a pgbench database and on the real-estate dataset of
# scripts/bench/dataset, with a throwaway PostgreSQL 15 server and
# moto_server on 127.0.0.1. Writes the results into docs/BENCHMARKS.md
# (between the "run.sh results" markers) and prints them.
#
# Usage: scripts/bench/run.sh [OPTIONS]
#   --scale N       pgbench scale (default 50: about 510 MB of dump)
#   --size-mb N     real-estate dataset size in MB of dump (default: the
#                   pgbench dump's size)
#   --rounds N      runs of every case (default 3); the order of the cases
#                   rotates from round to round
#   --cases LIST    comma-separated cases (default 1,1b,2,3,4,5,6,7,7j,7c,8)
#   --datasets LIST pgbench, estate or both (default pgbench,estate)
#   --out FILE      Markdown file for the results (default docs/BENCHMARKS.md)
#   --json FILE     also write every measurement as JSON
#   --timeout S     seconds one case may take (default 1800)
#
# The cases:
#   1   pg_dump -Fc -Z0 > /dev/null
#   1b  pg_dump -Fc -Z0 | zstd -3 -T2 > /dev/null
#   2   pg_dump -Fc -Z0 | zstd -3 -T2 | aws s3 cp - s3://...
#   3   stowage backup to a file:// repository
#   4   stowage backup to moto S3
#   5   pg_restore from a local uncompressed custom-format file
#   6   aws s3 cp s3://... - | zstd -d | pg_restore
#   7   stowage restore from moto S3 into an empty database
#   7j  the same with --jobs 2 (table data over 2 COPY connections, then
#       pg_restore --section=post-data --jobs 2)
#   7c  stowage restore --create: a new database, restored over 2
#       connections under a temporary name and renamed when complete
#   8   stowage restore --scratch local --verify
#
# It needs build/stowage (or STOWAGE_BIN), PostgreSQL 15, zstd, awscli,
# moto and GNU time (/usr/bin/time). Ctrl-C stops the running case and
# every server, and removes the temporary directory. The default run takes
# 12 to 25 minutes on 2 CPUs and needs about 8 GB of free disk in TMPDIR.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

if [[ ${1:-} == -h || ${1:-} == --help ]]; then
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"
  exit 0
fi

# moto, boto3 and awscli come with the machine's pyenv Python; a shell that
# did not load pyenv needs its shims on PATH.
if ! python3 -c 'import moto' 2>/dev/null && [[ -d ${HOME:-/root}/.pyenv/shims ]]; then
  export PATH="${HOME:-/root}/.pyenv/shims:$PATH"
fi
export AWS_EC2_METADATA_DISABLED=true

# exec keeps one process, so Ctrl-C and SIGTERM reach the driver, which
# stops the servers and removes its files.
exec python3 "$here/bench.py" "$@"
