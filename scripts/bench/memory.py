#!/usr/bin/env python3
"""Measure the peak RSS of stowage backup and restore at several pgbench scales (the driver behind memory.sh).

For each scale it creates a pgbench database. With --estate-mb it also
creates one real-estate database, whose compressed backup is large enough
to keep several upload parts in flight. On each database it runs, with
default settings: stowage backup to a file:// repository, stowage backup to moto
S3, and stowage restore from each of them into an empty database. The
peak RSS of stowage itself is reported apart from pg_dump's and
pg_restore's (see benchlib.run_pipeline). The table replaces the marked
section of --out.
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import benchlib  # noqa: E402
from benchlib import log  # noqa: E402

BUCKET = "memory"
RESTORE_DB = "memory_restore"
REPORT_MARKER = "memory.sh results"
# The bound that the design sets: 64 MiB plus part size x (transfers + 1)
# part buffers with the defaults (8 MiB parts, 4 transfers), and the
# stricter target.
DESIGN_BOUND_MIB = 64 + 8 * (4 + 1)
TARGET_MIB = 100

STEPS = [
    ("backup-file", "stowage backup --repo file://$WORK/repo --db $DB --recipient $KEY.pub"),
    ("backup-s3", "stowage backup --repo s3://memory/scale-N --db $DB --recipient $KEY.pub"),
    ("restore-file", "stowage restore --repo file://$WORK/repo latest --key $KEY --target $TARGET"),
    ("restore-s3", "stowage restore --repo s3://memory/scale-N latest --key $KEY --target $TARGET"),
]


def measure(env, workdir, child_log, command, timeout):
    stderr_path = os.path.join(workdir, "step.stderr")
    if os.path.exists(stderr_path):
        os.unlink(stderr_path)
    child_log.collect()
    result = benchlib.run_pipeline([command], env, stderr_path=stderr_path, capture_stdout=True, watch_rss=(0,),
                                   child_log=child_log, timeout=timeout)
    stowage = result["processes"][0]
    record = {
        "wall": result["wall"],
        "status": stowage["status"],
        "stowage_rss_kib": stowage["own_rss_kib"],
        "rss_exact": stowage["rss_exact"],
        "sampled_rss_kib": stowage["sampled_rss_kib"],
        "children": result["children"],
        "error": None,
    }
    if command[1] == "backup" and stowage["status"] == 0:
        try:
            summary = json.loads(result["stdout"])
            record["stored_bytes"] = summary["stored_bytes"]
            record["parts"] = summary["parts"]
        except (ValueError, KeyError):
            log("unexpected --json output of stowage backup: %r" % result["stdout"][:200])
    if stowage["status"] != 0:
        record["error"] = benchlib.tail_text(stderr_path, 1500)
        log("FAILED: %s\n%s" % (" ".join(command), record["error"]))
    return record


def load_database(cluster, env, db, scale):
    """Fill db: pgbench tables at scale, or the real-estate dataset when scale is "estate-N" (N MB)."""
    cluster.createdb(db)
    if isinstance(scale, int):
        log("scale %d: creating pgbench tables" % scale)
        benchlib.pgbench_init(cluster, db, scale)
        return
    size_mb = scale.split("-", 1)[1]
    log("%s: generating the real-estate dataset" % scale)
    generator = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dataset")
    subprocess.run([sys.executable, generator, "--size-mb", size_mb, "--db", cluster.conninfo(db),
                    "--psql", os.path.join(benchlib.PG_BIN_DIR, "psql"), "--quiet"], env=env, check=True)
    cluster.psql("VACUUM (FREEZE, ANALYZE)", db=db, timeout=7200)


def run_scale(options, scale, cluster, moto, env, workdir, child_log, stowage, key):
    db = "memory_%s" % str(scale).replace("-", "_")
    load_database(cluster, env, db, scale)
    cluster.psql("CHECKPOINT")
    size = int(cluster.psql("SELECT pg_database_size('%s')" % db))

    source = cluster.conninfo(db)
    target = cluster.conninfo(RESTORE_DB)
    file_repo = "file://" + os.path.join(workdir, "repo")
    s3_repo = "s3://%s/scale-%s" % (BUCKET, scale)
    os.makedirs(os.path.join(workdir, "repo"), exist_ok=True)
    extra = options.backup_options.split()
    commands = {
        "backup-file": [stowage, "backup", "--repo", file_repo, "--db", source, "--recipient", key + ".pub",
                        "--json"] + extra,
        "backup-s3": [stowage, "backup", "--repo", s3_repo, "--db", source, "--recipient", key + ".pub",
                      "--json"] + extra,
        "restore-file": [stowage, "restore", "--repo", file_repo, "latest", "--key", key, "--target", target],
        "restore-s3": [stowage, "restore", "--repo", s3_repo, "latest", "--key", key, "--target", target],
    }

    records = []
    for round_number in range(1, options.rounds + 1):
        for step, _ in STEPS:
            if step.startswith("restore"):
                cluster.createdb(RESTORE_DB)
            cluster.psql("CHECKPOINT")
            record = measure(env, workdir, child_log, commands[step], options.timeout)
            record.update({"scale": scale, "step": step, "round": round_number, "database_bytes": size})
            if step.startswith("restore"):
                cluster.psql("DROP DATABASE %s WITH (FORCE)" % RESTORE_DB)
            log("scale %s %-12s round %d: %6.1f s, stowage peak RSS %s%.1f MiB" % (
                scale, step, round_number, record["wall"], "" if record["rss_exact"] else "~",
                record["stowage_rss_kib"] / 1024))
            records.append(record)

        # The next round starts with empty repositories, and moto's memory stays small.
        shutil.rmtree(os.path.join(workdir, "repo"), ignore_errors=True)
        os.makedirs(os.path.join(workdir, "repo"))
        benchlib.delete_prefix(moto, BUCKET, "scale-%s/" % scale)
    cluster.psql("DROP DATABASE %s WITH (FORCE)" % db)
    return records


def report_row(records, scale, step):
    """Return the table row of one step at one scale, or None when it did not run."""
    runs = [record for record in records if record["scale"] == scale and record["step"] == step]
    good = [record for record in runs if record["error"] is None]
    if not good:
        if runs:
            return [scale, "%.0f" % (runs[0]["database_bytes"] / 1e6), step, "-", "failed", "-", "-", "-", "-"]
        return None

    peak = max(good, key=lambda record: record["stowage_rss_kib"])
    peak_mib = peak["stowage_rss_kib"] / 1024
    child_name, child_rss = "-", 0
    for record in good:
        for child in record["children"]:
            if child["rss_kib"] > child_rss:
                child_name, child_rss = child["name"], child["rss_kib"]

    # A restore reads the backup that the backup step of the same repository kind wrote.
    repository_kind = step.split("-")[1]
    stored = [record for record in records if record["scale"] == scale and record.get("parts")
              and record["step"].split("-")[1] == repository_kind]
    object_size = "%.1f (%d)" % (stored[0]["stored_bytes"] / 1e6, stored[0]["parts"]) if stored else "-"
    return [scale, "%.0f" % (peak["database_bytes"] / 1e6), step, object_size,
            "%.1f" % benchlib.median([record["wall"] for record in good]),
            "%s%.1f" % ("" if all(record["rss_exact"] for record in good) else "~", peak_mib),
            "%s %.0f" % (child_name, child_rss / 1024),
            "yes" if peak_mib <= DESIGN_BOUND_MIB else "**no**",
            "yes" if peak_mib <= TARGET_MIB else "**no**"]


def build_report(options, facts, versions, records, started, finished):
    lines = ["### Results of `scripts/bench/memory.sh`", ""]
    settings = ("default settings (8 MiB parts, 4 transfers, zstd level 3 with 2 threads)"
                if not options.backup_options else "backup options `%s`" % options.backup_options)
    lines.append("Run of %s, %.0f minutes, %d round(s) per step, %s; options: `%s`."
                 % (time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started)), (finished - started) / 60,
                    options.rounds, settings, " ".join(sys.argv[1:]) or "(defaults)"))
    lines.append("")
    lines.append(benchlib.versions_markdown(facts, versions))
    lines.append("")
    lines.append("Peak RSS of the stowage process alone (largest over the rounds), beside the bound of "
                 "64 MiB + 8 MiB x 5 part buffers = %d MiB and the stricter %d MiB target. `~` marks a "
                 "figure sampled from /proc every 50 ms, used where a child's peak hid stowage's own in "
                 "the figures of /usr/bin/time." % (DESIGN_BOUND_MIB, TARGET_MIB))
    lines.append("")

    header = ["pgbench scale or dataset", "database MB", "step", "backup object MB (parts)", "wall s",
              "stowage peak RSS MiB", "largest child (peak RSS MiB)", "within %d MiB" % DESIGN_BOUND_MIB,
              "within %d MiB" % TARGET_MIB]
    rows = []
    for scale in options.scale_list:
        for step, _ in STEPS:
            row = report_row(records, scale, step)
            if row is not None:
                rows.append(row)
    lines.append(benchlib.markdown_table(header, rows, ["---:", "---:", "---"] + ["---:"] * 6))
    lines.append("")
    lines.append("Commands (`$DB` is the pgbench or real-estate database, `$TARGET` an empty database):")
    lines.append("")
    lines.append("```")
    for step, command in STEPS:
        lines.append("%-12s %s" % (step, command))
    lines.append("```")
    return "\n".join(lines)


def parse_arguments(argv):
    parser = argparse.ArgumentParser(prog="scripts/bench/memory.sh",
                                     description="Peak RSS of stowage backup and restore at several pgbench scales.")
    parser.add_argument("--scales", default="10,50,200", help="comma-separated pgbench scales (default 10,50,200)")
    parser.add_argument("--estate-mb", type=int, default=500,
                        help="also measure the real-estate dataset of this many MB, whose backup fills "
                             "several upload parts (default 500, 0 to skip)")
    parser.add_argument("--rounds", type=int, default=1, help="runs of every step (default 1)")
    parser.add_argument("--backup-options", default="",
                        help="extra options for stowage backup, for example \"--compress-threads 1\" "
                             "(default: none, so every setting is the default)")
    parser.add_argument("--out", default=os.path.join(benchlib.ROOT, "docs", "BENCHMARKS.md"),
                        help="Markdown file whose marked section is replaced (default docs/BENCHMARKS.md)")
    parser.add_argument("--json", help="also write every measurement to this JSON file")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds one step may take (default 3600)")
    parser.add_argument("--stowage", help="stowage binary (default: build/stowage or $STOWAGE_BIN)")
    options = parser.parse_args(argv)
    try:
        options.scale_list = [int(value) for value in options.scales.split(",") if value.strip()]
    except ValueError:
        parser.error("--scales takes comma-separated integers, not %r" % options.scales)
    if not options.scale_list or min(options.scale_list) < 1 or options.rounds < 1:
        parser.error("--scales and --rounds must be at least 1")
    if options.estate_mb < 0:
        parser.error("--estate-mb must be 0 or more")
    # Scales are pgbench scales; "estate-N" names the real-estate dataset of N MB.
    if options.estate_mb:
        options.scale_list.append("estate-%d" % options.estate_mb)
    return options


def main(argv=None):
    options = parse_arguments(argv)
    benchlib.find_stowage(options.stowage)
    benchlib.check_programs(["moto_server", benchlib.TIME_PROGRAM])
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    # A shell without job control starts background commands with SIGINT
    # ignored, which Python keeps; Ctrl-C must still stop the run cleanly.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    started = time.time()
    facts = benchlib.machine_facts()
    workdir = tempfile.mkdtemp(prefix="stowage-memory-")
    cluster = moto = None
    try:
        stowage = benchlib.find_stowage(options.stowage, copy_to=workdir)
        cluster, moto = benchlib.start_servers()
        child_log = benchlib.ChildLog(workdir)
        env = benchlib.client_environment(cluster, moto, child_log)
        versions = benchlib.tool_versions(stowage, cluster)
        key = os.path.join(workdir, "memory.key")
        result = benchlib.run_pipeline([[stowage, "keygen", "--out", key]], env)
        if result["processes"][0]["status"] != 0:
            raise SystemExit("memory: stowage keygen failed")
        moto.create_bucket(BUCKET)

        records = []
        for scale in options.scale_list:
            records += run_scale(options, scale, cluster, moto, env, workdir, child_log, stowage, key)
        report = build_report(options, facts, versions, records, started, time.time())
        benchlib.replace_section(options.out, REPORT_MARKER, report)
        print(report)
        if options.json:
            benchlib.save_json(options.json, {"facts": facts, "versions": versions, "records": records})
        log("report written to %s" % options.out)
        return 1 if any(record["error"] for record in records) else 0
    finally:
        if moto is not None:
            moto.stop()
        if cluster is not None:
            cluster.close()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        log("interrupted; servers stopped and temporary files removed")
        sys.exit(130)
