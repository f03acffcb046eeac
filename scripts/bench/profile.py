#!/usr/bin/env python3
"""Profile one stowage backup with perf and print the functions that cost the most CPU time.

It starts a throwaway PostgreSQL server, loads a database (pgbench at
--scale, or the real-estate dataset at --size-mb), and runs

    perf record -F 999 -g --call-graph dwarf -o PERF_DATA -- stowage backup --repo file://... --db ...

then prints `perf report` for stowage's own threads (pg_dump runs in
another process): samples per thread and library, functions by self time,
and functions by time including their callees.

Debian strips the internal functions of libzstd and libsodium from their
shared libraries, so perf shows only addresses there. Unless --stowage is
given, the script therefore links a copy of build/stowage against the
static libsodium.a, which keeps its symbols, using the link command that
CMake wrote, in its temporary directory. libzstd stays shared, because
Debian's libzstd.a (1.5.4) is built without multithreading and would
reject --compress-threads; its samples are only summed per thread.
Usage:

    python3 scripts/bench/profile.py --dataset estate --size-mb 100
    python3 scripts/bench/profile.py --dataset pgbench --scale 10 --keep-data /tmp/stowage.perf
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import benchlib  # noqa: E402
from benchlib import log  # noqa: E402

# Thread names of the stowage process: the main thread and zstd's workers
# keep the program's name, the backup's reader and digest threads name
# themselves (agent/backup/dump_reader.c, archive_digest.c).
STOWAGE_THREADS = "stowage,dump-reader,archive-digest"


def perf_report(data, sort, limit, children=False):
    """Return the first limit lines of perf report for stowage's threads, sorted by sort keys."""
    command = ["perf", "report", "-i", data, "--stdio", "--children" if children else "--no-children",
               "--sort", sort, "--percent-limit", "0.5", "-g", "none", "--comm", STOWAGE_THREADS]
    result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    lines = [line for line in result.stdout.split("\n") if line.strip() and not line.startswith("#")]
    if children:
        # Unresolved addresses name no function, so they are left out.
        lines = [line for line in lines if "] 0x" not in line]
    return "\n".join(lines[:limit])


def link_with_static_libraries(build_dir, output):
    """Relink stowage from build_dir's objects with the static libsodium; return output."""
    with open(os.path.join(build_dir, "CMakeFiles", "stowage.dir", "link.txt")) as handle:
        command = handle.read().split()
    for library in ("libsodium",):
        for index, argument in enumerate(command):
            if os.path.basename(argument) == library + ".so":
                static = argument[:-3] + ".a"
                if not os.path.exists(static):
                    raise SystemExit("profile: %s not found; install the -dev package or pass --stowage" % static)
                command[index] = static
    output_index = command.index("-o") + 1
    command[output_index] = output
    subprocess.run(command + ["-lpthread"], cwd=build_dir, check=True)
    return output


def main(argv=None):
    parser = argparse.ArgumentParser(description="Profile one stowage backup to a file:// repository with perf.")
    parser.add_argument("--dataset", choices=("pgbench", "estate"), default="estate")
    parser.add_argument("--scale", type=int, default=10, help="pgbench scale (default 10)")
    parser.add_argument("--size-mb", type=float, default=100, help="real-estate dataset size (default 100)")
    parser.add_argument("--keep-data", help="keep perf.data at this path")
    parser.add_argument("--top", type=int, default=25, help="functions to print (default 25)")
    parser.add_argument("--stowage", help="stowage binary to profile as it is (default: build/stowage relinked "
                                          "with static libzstd and libsodium)")
    parser.add_argument("--build-dir", default=os.path.join(benchlib.ROOT, "build"),
                        help="CMake build directory whose stowage is relinked (default: build)")
    options = parser.parse_args(argv)
    benchlib.check_programs(["perf", "moto_server"])

    workdir = tempfile.mkdtemp(prefix="stowage-profile-")
    cluster = moto = None
    try:
        if options.stowage:
            stowage = benchlib.find_stowage(options.stowage)
        else:
            benchlib.find_stowage(os.path.join(options.build_dir, "stowage"))
            stowage = link_with_static_libraries(options.build_dir, os.path.join(workdir, "stowage"))
        cluster, moto = benchlib.start_servers()
        env = benchlib.client_environment(cluster, moto)
        cluster.createdb("profile")
        conninfo = cluster.conninfo("profile")
        if options.dataset == "pgbench":
            benchlib.pgbench_init(cluster, "profile", options.scale)
        else:
            generator = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dataset")
            subprocess.run([sys.executable, generator, "--size-mb", str(options.size_mb), "--db", conninfo,
                            "--psql", os.path.join(benchlib.PG_BIN_DIR, "psql"), "--quiet"], env=env, check=True)
        cluster.psql("VACUUM (FREEZE, ANALYZE)", db="profile")
        key = os.path.join(workdir, "profile.key")
        subprocess.run([stowage, "keygen", "--out", key], env=env, check=True, stdout=subprocess.DEVNULL)
        repo = os.path.join(workdir, "repo")
        os.makedirs(repo)
        data = options.keep_data or os.path.join(workdir, "perf.data")
        command = ["perf", "record", "-F", "999", "-g", "--call-graph", "dwarf,16384", "-o", data, "--",
                   stowage, "backup", "--repo", "file://" + repo, "--db", conninfo, "--recipient", key + ".pub",
                   "--json"]
        log("running " + " ".join(command))
        result = subprocess.run(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if result.returncode != 0:
            raise SystemExit("profile: the backup failed:\n%s" % result.stderr[-3000:])
        print("backup: %s" % result.stdout.strip())
        print("\n# Samples by thread name and library, stowage process only\n")
        print(perf_report(data, "comm,dso", 20))
        print("\n# Samples by thread (id:name) and library, stowage process only\n")
        print(perf_report(data, "pid,dso", 20))
        print("\n# Functions by self time\n")
        print(perf_report(data, "sym", options.top))
        print("\n# Functions by self time, per thread\n")
        print(perf_report(data, "pid,sym", options.top))
        print("\n# Named functions by time including callees (call chains that perf could not unwind are missing)\n")
        print(perf_report(data, "sym", options.top * 3, children=True))
        return 0
    finally:
        if moto is not None:
            moto.stop()
        if cluster is not None:
            cluster.close()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
