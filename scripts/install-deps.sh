#!/usr/bin/env bash
# Install the Debian packages that building and testing stowage need, and
# check the Python tools (moto, boto3, awscli) that the tests use.
#
# Idempotent: runs apt-get (and apt-get update) only when a package is
# missing. As a non-root user with packages missing, it prints the command
# to run and exits with status 1.
set -euo pipefail

packages=(
  # Build
  build-essential cmake pkg-config clang
  # Libraries stowage links
  libpq-dev libcurl4-openssl-dev libzstd-dev libsodium-dev libarchive-dev
  libjansson-dev libxml2-dev libssl-dev libinih-dev
  # Clang's sanitizer and libFuzzer runtimes
  libclang-rt-14-dev
  # The zstd command line tool, for tests that read backups independently
  zstd
  # PostgreSQL 15 server and client tools (initdb, pg_ctl, pg_dump, pgbench);
  # postgresql-contrib is the metapackage for the contrib modules, which
  # postgresql-15 contains.
  postgresql-15 postgresql-client-15 postgresql-contrib
  # setpriv, which the test harness uses to stop servers with the test process
  util-linux
  # Man pages from the --help texts (help2man), and groff and man to check them
  help2man groff-base man-db
)

is_installed() {
  [[ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" == installed ]]
}

missing=()
for package in "${packages[@]}"; do
  if ! is_installed "$package"; then
    missing+=("$package")
  fi
done

if ((${#missing[@]} > 0)); then
  if [[ $EUID -ne 0 ]]; then
    echo "install-deps: missing Debian packages: ${missing[*]}" >&2
    echo "install-deps: run as root:" >&2
    echo "  apt-get update && apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
  fi
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  echo "install-deps: all ${#packages[@]} Debian packages are installed"
fi

# The PostgreSQL programs the test harness runs by path.
pg_bin=/usr/lib/postgresql/15/bin
for program in initdb postgres pg_ctl pg_dump pg_restore psql pgbench createdb; do
  if [[ ! -x $pg_bin/$program ]]; then
    echo "install-deps: $pg_bin/$program is missing although postgresql-15 is installed" >&2
    exit 1
  fi
done

# moto, boto3 and awscli come with the machine's Python (pyenv). They are
# not Debian packages, and PyPI may not be reachable, so they are checked,
# not installed.
problems=()
if ! python3 -c 'import boto3, botocore, moto, moto.server' 2>/dev/null; then
  problems+=("python3 ($(command -v python3 || echo 'not found')) cannot import moto, moto.server and boto3")
fi
for program in aws moto_server; do
  if ! command -v "$program" >/dev/null; then
    problems+=("$program is not on PATH")
  fi
done
if ((${#problems[@]} > 0)); then
  for problem in "${problems[@]}"; do
    echo "install-deps: $problem" >&2
  done
  echo "install-deps: the tests need moto[server] 5, boto3 and awscli in the python3 on PATH" >&2
  echo "install-deps: (on this project's machines they come with pyenv: put ~/.pyenv/shims first in PATH)" >&2
  exit 1
fi

echo "install-deps: python3 $(python3 -c 'import moto, boto3; print("moto", moto.__version__, "boto3", boto3.__version__)'), $(aws --version 2>&1 | cut -d' ' -f1)"
