#!/usr/bin/env bash
# Try stowage on this machine in one command. The script installs the
# dependencies, builds stowage and starts a throwaway PostgreSQL 15 server
# with a small pgbench database. It then makes a key pair, backs the
# database up into a local repository, lists the repository, shows the
# backup and restores it into a scratch instance with verification. The server is stopped at the end, and the keys and the repository
# stay in the demo directory for a closer look.
#
# Usage: scripts/demo.sh [DIRECTORY]
#   DIRECTORY  where the keys and the repository go (default: a new
#              directory under ${TMPDIR:-/tmp}); it must not contain
#              demo.key yet.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# Second stage: run by harness.postgres with the server's connection in
# STOWAGE_PG_CONNINFO.
if [[ ${1:-} == --with-server ]]; then
  demo_dir=$2
  stowage=$3
  repo="file://$demo_dir/repo"

  run() {
    printf '\n$ %s\n' "$*"
    "$@"
  }

  mkdir -p "$demo_dir/repo"
  run "$stowage" keygen --out "$demo_dir/demo.key"
  run "$stowage" backup --repo "$repo" --db "$STOWAGE_PG_CONNINFO" --recipient "$demo_dir/demo.key.pub"
  run "$stowage" list --repo "$repo"

  backup_id=$("$stowage" list --repo "$repo" --json |
    python3 -c 'import json, sys; print(json.load(sys.stdin)[0]["id"])')
  run "$stowage" show --repo "$repo" "$backup_id"
  run "$stowage" restore --repo "$repo" "$backup_id" --key "$demo_dir/demo.key" \
    --scratch local --verify --report "$demo_dir/restore-report.json"
  run "$stowage" list --repo "$repo"

  cat <<EOF

Done. What is where:
  binary       $stowage
  secret key   $demo_dir/demo.key  (needed to restore; keep it private)
  public key   $demo_dir/demo.key.pub  (all that a backup host needs)
  repository   $demo_dir/repo
  report       $demo_dir/restore-report.json  (the verified restore)
The PostgreSQL server ($STOWAGE_PG_CONNINFO) stops now.
EOF
  exit 0
fi

if (($# > 1)) || [[ ${1:-} == -* ]]; then
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}" >&2
  exit 2
fi

# The demo itself does not use moto and boto3, but install-deps.sh checks
# them, and the machine's pyenv Python provides them.
if ! python3 -c 'import moto' 2>/dev/null && [[ -d ${HOME:-/root}/.pyenv/shims ]]; then
  export PATH="${HOME:-/root}/.pyenv/shims:$PATH"
fi
export AWS_EC2_METADATA_DISABLED=true

echo "== demo: installing dependencies"
"$root/scripts/install-deps.sh"

echo "== demo: building stowage"
build_dir=${STOWAGE_BUILD_DIR:-$root/build}
cmake -S "$root" -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
# The man pages are built as well where help2man is installed (it defines
# the man target), so that `cmake --install` works after the demo.
targets=(stowage)
build_targets=$(cmake --build "$build_dir" --target help 2>/dev/null || true)
if grep -qx '\.\.\. man' <<<"$build_targets"; then
  targets+=(man)
fi
cmake --build "$build_dir" -j 2 --target "${targets[@]}"

if (($# == 1)); then
  demo_dir=$1
  mkdir -p "$demo_dir"
else
  demo_dir=$(mktemp -d "${TMPDIR:-/tmp}/stowage-demo.XXXXXX")
fi
demo_dir=$(cd "$demo_dir" && pwd)
if [[ -e $demo_dir/demo.key ]]; then
  echo "demo: $demo_dir/demo.key exists already; choose another directory" >&2
  exit 2
fi

echo "== demo: starting PostgreSQL 15 with a pgbench database (scale 1, about 15 MB)"
PYTHONPATH="$root/tests" python3 -c 'import sys; from harness.postgres import main; sys.exit(main())' \
  --db demo --pgbench-scale 1 -- "$root/scripts/demo.sh" --with-server "$demo_dir" "$build_dir/stowage"
