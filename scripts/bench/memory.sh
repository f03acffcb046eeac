#!/usr/bin/env bash
# Measure the peak RSS of stowage backup (to file:// and to moto S3) and
# stowage restore (from each into an empty database) at pgbench scales 10,
# 50 and 200 and on a 500 MB real-estate dataset, with default settings,
# against the bound of 64 MiB + 8 MiB parts x 5 buffers = 104 MiB and
# the stricter 100 MiB target. Prints a table and puts it into
# docs/BENCHMARKS.md (between the "memory.sh results" markers).
#
# Usage: scripts/bench/memory.sh [OPTIONS]
#   --scales LIST   comma-separated pgbench scales (default 10,50,200;
#                   scale 200 needs about 8 GB of free disk in TMPDIR)
#   --estate-mb N   also measure the real-estate dataset of N MB (default
#                   500, 0 to skip): pgbench backups compress so well that
#                   they fill one or two upload parts, this one about twenty
#   --rounds N      runs of every step (default 1)
#   --backup-options "OPTIONS"
#                   extra options for stowage backup, for example
#                   "--compress-threads 1" (default: none)
#   --out FILE      Markdown file for the table (default docs/BENCHMARKS.md)
#   --json FILE     also write every measurement as JSON
#   --timeout S     seconds one step may take (default 3600)
#
# Stowage's own peak RSS is reported apart from pg_dump's and pg_restore's,
# because those run under /usr/bin/time through STOWAGE_PG_BINDIR wrappers.
# The default run takes about 10 minutes on 2 CPUs.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

if [[ ${1:-} == -h || ${1:-} == --help ]]; then
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"
  exit 0
fi

if ! python3 -c 'import moto' 2>/dev/null && [[ -d ${HOME:-/root}/.pyenv/shims ]]; then
  export PATH="${HOME:-/root}/.pyenv/shims:$PATH"
fi
export AWS_EC2_METADATA_DISABLED=true

exec python3 "$here/memory.py" "$@"
