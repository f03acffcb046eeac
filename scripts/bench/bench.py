#!/usr/bin/env python3
"""Benchmark stowage against pg_dump, zstd and awscli pipelines (the driver behind run.sh).

It starts a throwaway PostgreSQL server and moto_server on 127.0.0.1,
creates two databases of about the same dump size (pgbench at --scale, and
the real-estate dataset of scripts/bench/dataset), and runs every case
--rounds times, rotating the order of the cases in each round. Each process
of a case is measured on its own: wall time, user+system CPU time and peak
RSS. Wrappers under /usr/bin/time measure every PostgreSQL program that
stowage starts in the same way. The Markdown report replaces the marked
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
from benchlib import MIB, PG_BIN_DIR, log, markdown_table, median  # noqa: E402

BUCKET = "bench"
RESTORE_DB = "bench_restore"
REPORT_MARKER = "run.sh results"

# Case id -> (label, command template for the report). In the templates
# $DB is the source database, $TARGET an empty database, $REPO a
# repository and $KEY the key pair's files.
CASES = {
    "1": ("pg_dump alone", "pg_dump -Fc -Z0 -d $DB > /dev/null"),
    "1b": ("pg_dump + zstd", "pg_dump -Fc -Z0 -d $DB | zstd -3 -T2 > /dev/null"),
    "2": ("pg_dump + zstd + aws s3 cp", "pg_dump -Fc -Z0 -d $DB | zstd -3 -T2 | aws s3 cp - s3://bench/$DATASET/case2.dump.zst"),
    "3": ("stowage backup, file://", "stowage backup --repo file://$WORK/file-repo --db $DB --recipient $KEY.pub --json"),
    "4": ("stowage backup, moto S3", "stowage backup --repo s3://bench/$DATASET-case4 --db $DB --recipient $KEY.pub --json"),
    "5": ("pg_restore from a local file", "pg_restore --exit-on-error --single-transaction -d $TARGET $WORK/$DATASET.dump"),
    "6": ("aws s3 cp + zstd -d + pg_restore", "aws s3 cp s3://bench/$DATASET/baseline.dump.zst - | zstd -d | pg_restore --exit-on-error --single-transaction -d $TARGET"),
    "7": ("stowage restore from moto S3", "stowage restore --repo s3://bench/$DATASET-restore latest --key $KEY --target $TARGET"),
    "7j": ("stowage restore --jobs 2 from moto S3", "stowage restore --repo s3://bench/$DATASET-restore latest --key $KEY --target $TARGET --jobs 2"),
    "7c": ("stowage restore --create from moto S3", "stowage restore --repo s3://bench/$DATASET-restore latest --key $KEY --target $TARGET --create"),
    "8": ("stowage restore --scratch local --verify", "stowage restore --repo s3://bench/$DATASET-restore latest --key $KEY --scratch local --verify"),
}
CASE_ORDER = ["1", "1b", "2", "3", "4", "5", "6", "7", "7j", "7c", "8"]
# Cases that restore into RESTORE_DB, created empty before them; 7c creates
# it itself (restore --create), so the time of CREATE DATABASE counts there.
RESTORE_CASES = {"5", "6", "7", "7j"}
STOWAGE_RESTORE_CASES = ("7", "7j", "7c", "8")
RATIOS = [("3", "1b"), ("4", "2"), ("7", "5"), ("7", "6"), ("7j", "5"), ("7c", "5"), ("7c", "6"),
          ("8", "7")]


class Dataset:
    """One source database and the artifacts that the restore cases read."""

    def __init__(self, name, label):
        self.name = name
        self.label = label
        self.db = "bench_" + name
        self.conninfo = None
        self.dump_path = None
        self.dump_bytes = 0
        self.zstd_bytes = 0
        self.database_bytes = 0
        self.load_seconds = 0.0
        self.stowage_stored_bytes = None
        self.tables = []


class Bench:
    def __init__(self, options, workdir, cluster, moto, stowage):
        self.options = options
        self.workdir = workdir
        self.cluster = cluster
        self.moto = moto
        self.stowage = stowage
        self.child_log = benchlib.ChildLog(workdir)
        self.env = benchlib.client_environment(cluster, moto, self.child_log)
        self.key = os.path.join(workdir, "bench.key")
        self.server = benchlib.ServerMeter(cluster.pid)
        self.moto_meter = benchlib.ServerMeter(moto.pid)
        self.results = []

    def tool(self, name):
        return os.path.join(PG_BIN_DIR, name)

    def s3_url(self, key):
        return "s3://%s/%s" % (BUCKET, key)

    # Set-up ---------------------------------------------------------------------

    def prepare(self, datasets):
        result = benchlib.run_pipeline([[self.stowage, "keygen", "--out", self.key]], self.env)
        if result["processes"][0]["status"] != 0:
            raise SystemExit("bench: stowage keygen failed")
        self.moto.create_bucket(BUCKET)
        for dataset in datasets:
            self.load(dataset)
            self.make_artifacts(dataset)

    def load(self, dataset):
        self.cluster.createdb(dataset.db)
        dataset.conninfo = self.cluster.conninfo(dataset.db)
        started = time.monotonic()
        if dataset.name == "pgbench":
            log("creating pgbench tables at scale %d" % self.options.scale)
            benchlib.pgbench_init(self.cluster, dataset.db, self.options.scale)
        else:
            size_mb = self.options.size_mb or self.datasets_by_name["pgbench"].dump_bytes / 1e6
            log("generating the real-estate dataset, about %.0f MB" % size_mb)
            generator = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dataset")
            command = [sys.executable, generator, "--size-mb", "%.0f" % size_mb, "--seed", str(self.options.seed),
                       "--db", dataset.conninfo, "--psql", self.tool("psql")]
            if subprocess.call(command, env=self.env) != 0:
                raise SystemExit("bench: loading the real-estate dataset failed")
        self.cluster.psql("VACUUM (FREEZE, ANALYZE); CHECKPOINT;", db=dataset.db, timeout=7200)
        dataset.load_seconds = time.monotonic() - started
        dataset.database_bytes = int(self.cluster.psql("SELECT pg_database_size(current_database())", db=dataset.db))
        dataset.tables = self.cluster.query(
            "SELECT relname, n_live_tup, pg_table_size(relid) FROM pg_stat_user_tables ORDER BY relname",
            db=dataset.db)

    def make_artifacts(self, dataset):
        """Write the local dump (case 5), its zstd copy in S3 (case 6) and a stowage backup in S3 (7, 8)."""
        log("%s: writing the reference dump and the restore inputs" % dataset.name)
        dataset.dump_path = os.path.join(self.workdir, dataset.name + ".dump")
        self.must([[self.tool("pg_dump"), "-Fc", "-Z0", "-d", dataset.conninfo, "-f", dataset.dump_path]])
        dataset.dump_bytes = os.path.getsize(dataset.dump_path)
        compressed = dataset.dump_path + ".zst"
        self.must([["zstd", "-q", "-3", "-T2", "-f", dataset.dump_path, "-o", compressed]])
        dataset.zstd_bytes = os.path.getsize(compressed)
        self.must([["aws", "s3", "cp", "--only-show-errors", compressed,
                    self.s3_url("%s/baseline.dump.zst" % dataset.name)]])
        os.unlink(compressed)
        result = self.must([[self.stowage, "backup", "--repo", self.s3_url(dataset.name + "-restore"),
                             "--db", dataset.conninfo, "--recipient", self.key + ".pub", "--json"]],
                           capture_stdout=True)
        dataset.stowage_stored_bytes = json.loads(result["stdout"])["stored_bytes"]
        self.child_log.collect()

    def must(self, commands, **kwargs):
        stderr_path = os.path.join(self.workdir, "setup.stderr")
        result = benchlib.run_pipeline(commands, self.env, stderr_path=stderr_path, **kwargs)
        if any(process["status"] != 0 for process in result["processes"]):
            raise SystemExit("bench: %s failed:\n%s" % (" | ".join(" ".join(c) for c in commands),
                                                         benchlib.tail_text(stderr_path)))
        return result

    # Cases --------------------------------------------------------------------------

    def commands(self, case, dataset):
        """Return (commands, options for run_pipeline) of one case."""
        pg_dump = [self.tool("pg_dump"), "-Fc", "-Z0", "-d", dataset.conninfo]
        target = self.cluster.conninfo(RESTORE_DB)
        pg_restore = [self.tool("pg_restore"), "--exit-on-error", "--single-transaction", "-d", target]
        stowage_restore = [self.stowage, "restore", "--repo", self.s3_url(dataset.name + "-restore"), "latest",
                           "--key", self.key]
        zstd = ["zstd", "-q", "-3", "-T2"]

        if case == "1":
            return [pg_dump], {}
        if case == "1b":
            return [pg_dump, zstd], {}
        if case == "2":
            return [pg_dump, zstd, ["aws", "s3", "cp", "-", self.s3_url("%s/case2.dump.zst" % dataset.name)]], {}
        if case == "3":
            return [[self.stowage, "backup", "--repo", "file://" + os.path.join(self.workdir, "file-repo"),
                     "--db", dataset.conninfo, "--recipient", self.key + ".pub", "--json"]], \
                {"capture_stdout": True, "watch_rss": (0,)}
        if case == "4":
            return [[self.stowage, "backup", "--repo", self.s3_url(dataset.name + "-case4"),
                     "--db", dataset.conninfo, "--recipient", self.key + ".pub", "--json"]], \
                {"capture_stdout": True, "watch_rss": (0,)}
        if case == "5":
            return [pg_restore + [dataset.dump_path]], {}
        if case == "6":
            return [["aws", "s3", "cp", self.s3_url("%s/baseline.dump.zst" % dataset.name), "-"],
                    ["zstd", "-q", "-d"], pg_restore], {}
        if case == "7":
            return [stowage_restore + ["--target", target]], {"capture_stdout": True, "watch_rss": (0,)}
        if case == "7j":
            return [stowage_restore + ["--target", target, "--jobs", "2"]], \
                {"capture_stdout": True, "watch_rss": (0,)}
        if case == "7c":
            return [stowage_restore + ["--target", target, "--create"]], \
                {"capture_stdout": True, "watch_rss": (0,)}
        if case == "8":
            return [stowage_restore + ["--scratch", "local", "--verify"]], \
                {"capture_stdout": True, "watch_rss": (0,), "find_scratch": True}
        raise ValueError(case)

    def before_case(self, case, dataset):
        if case in RESTORE_CASES:
            self.cluster.createdb(RESTORE_DB)
        if case == "3":
            # stowage takes a file:// repository only when its directory exists.
            os.makedirs(os.path.join(self.workdir, "file-repo"))
        self.cluster.psql("CHECKPOINT")

    def after_case(self, case, dataset):
        if case in RESTORE_CASES or case == "7c":
            self.cluster.psql("DROP DATABASE IF EXISTS %s WITH (FORCE)" % RESTORE_DB)
        if case == "3":
            shutil.rmtree(os.path.join(self.workdir, "file-repo"), ignore_errors=True)
        if case == "2":
            benchlib.delete_prefix(self.moto, BUCKET, "%s/case2.dump.zst" % dataset.name)
        if case == "4":
            benchlib.delete_prefix(self.moto, BUCKET, dataset.name + "-case4/")

    def run_case(self, case, dataset, round_number):
        commands, extra = self.commands(case, dataset)
        self.before_case(case, dataset)
        self.child_log.collect()
        stderr_path = os.path.join(self.workdir, "case-%s-%s-%d.stderr" % (dataset.name, case, round_number))

        self.server.start()
        self.moto_meter.start()
        pressure = benchlib.cpu_pressure_total()
        load = os.getloadavg()[0]
        result = benchlib.run_pipeline(commands, self.env, stderr_path=stderr_path, timeout=self.options.timeout,
                                       child_log=self.child_log, **extra)
        if pressure is not None:
            pressure = (benchlib.cpu_pressure_total() - pressure) / 1e6 / result["wall"]
        result["server_cpu"] = self.server.stop()
        result["moto_cpu"] = self.moto_meter.stop()

        failed = [process for process in result["processes"] if process["status"] != 0]
        record = {
            "dataset": dataset.name, "case": case, "round": round_number, "wall": result["wall"],
            "processes": result["processes"], "children": result["children"],
            "server_cpu": result["server_cpu"], "scratch_server_cpu": result["scratch_server_cpu"],
            "moto_cpu": result["moto_cpu"],
            "command": [" ".join(command) for command in commands],
            "error": None, "warning": result["warning"], "cpu_pressure": pressure, "load": load,
        }
        if case in ("3", "4") and not failed:
            try:
                record["stored_bytes"] = json.loads(result["stdout"])["stored_bytes"]
            except (ValueError, KeyError):
                record["warning"] = "unexpected --json output: %r" % result["stdout"][:200]
        if case in STOWAGE_RESTORE_CASES:
            record["report"] = result["stdout"]

        if failed:
            record["error"] = "%s exited with %s: %s" % (
                ", ".join(process["name"] for process in failed),
                ", ".join(str(process["status"]) for process in failed),
                benchlib.tail_text(stderr_path, 1500))
            log("%s case %s round %d FAILED: %s" % (dataset.name, case, round_number, record["error"]))
        else:
            log("%s case %-2s round %d: %6.2f s" % (dataset.name, case, round_number, result["wall"]))
        if record["warning"]:
            log("warning: " + record["warning"])

        self.after_case(case, dataset)
        self.results.append(record)
        if self.options.json:
            # Written after every case, so that an interrupted run keeps its measurements.
            benchlib.save_json(self.options.json, {"results": self.results})
        return record

    def run_rounds(self, datasets, cases):
        for round_number in range(1, self.options.rounds + 1):
            shift = (round_number - 1) % len(cases)
            order = cases[shift:] + cases[:shift]
            for dataset in (datasets if round_number % 2 else list(reversed(datasets))):
                for case in order:
                    self.run_case(case, dataset, round_number)


# Report --------------------------------------------------------------------------------

def cpu_of(records):
    return sum(record["user"] + record["sys"] for record in records)


def process_breakdown(runs):
    """Return {process name: (median CPU s, max peak RSS MiB, exact)} over the runs of one case."""
    names = []
    per_name = {}
    for run in runs:
        seen = {}
        entries = []
        for process in run["processes"]:
            own = dict(process)
            if run["children"] and process["name"] == "stowage":
                own["user"] -= sum(child["user"] for child in run["children"])
                own["sys"] -= sum(child["sys"] for child in run["children"])
                own["rss_kib"] = process["own_rss_kib"]
            entries.append(own)
        entries += run["children"]
        for entry in entries:
            name = entry["name"]
            cpu, rss, exact = seen.get(name, (0.0, 0, True))
            seen[name] = (cpu + entry["user"] + entry["sys"], max(rss, entry["rss_kib"]),
                          exact and entry.get("rss_exact", True))
        for name, values in seen.items():
            if name not in per_name:
                names.append(name)
                per_name[name] = []
            per_name[name].append(values)
    summary = {}
    for name in names:
        values = per_name[name]
        summary[name] = (median([value[0] for value in values]), max(value[1] for value in values) / 1024,
                         all(value[2] for value in values))
    return summary


def format_pressure(runs):
    values = [run["cpu_pressure"] for run in runs if run.get("cpu_pressure") is not None]
    return "%.0f%%" % (100 * median(values)) if values else "-"


def format_breakdown(summary):
    parts = []
    for name, (cpu, rss_mib, exact) in summary.items():
        parts.append("%s %.2f s, %s%.0f MiB" % (name, cpu, "" if exact else "~", rss_mib))
    return "; ".join(parts)


def dataset_report(dataset, cases, results):
    runs_of = {case: [r for r in results if r["dataset"] == dataset.name and r["case"] == case] for case in cases}
    lines = []
    lines.append("Database %.0f MB (`pg_database_size`), uncompressed custom-format dump %.1f MB, "
                 "`zstd -3` of the dump %.1f MB (%.1f:1), stowage backup object %.1f MB (%.1f:1)."
                 % (dataset.database_bytes / 1e6, dataset.dump_bytes / 1e6, dataset.zstd_bytes / 1e6,
                    dataset.dump_bytes / max(1, dataset.zstd_bytes), (dataset.stowage_stored_bytes or 0) / 1e6,
                    dataset.dump_bytes / max(1, dataset.stowage_stored_bytes or 1)))
    lines.append("")
    header = ["case", "what", "wall s median", "min", "max", "MB/s", "client CPU s", "server CPU s",
              "peak RSS MiB", "CPU pressure", "failed"]
    rows = []
    medians = {}
    for case in cases:
        runs = [run for run in runs_of[case] if run["error"] is None]
        failed = len(runs_of[case]) - len(runs)
        if not runs:
            rows.append([case, CASES[case][0], "-", "-", "-", "-", "-", "-", "-", "-", failed])
            continue
        walls = [run["wall"] for run in runs]
        wall = median(walls)
        client_cpu = median([cpu_of(run["processes"]) for run in runs])
        server_cpu = median([run["server_cpu"] + (run["scratch_server_cpu"] or 0) for run in runs])
        medians[case] = (wall, client_cpu, server_cpu)
        breakdown = process_breakdown(runs)
        main_name, (main_cpu, main_rss, main_exact) = max(breakdown.items(), key=lambda item: item[1][1])
        if "stowage" in breakdown:
            main_name = "stowage"
            main_cpu, main_rss, main_exact = breakdown["stowage"]
        rows.append([case, CASES[case][0], "%.2f" % wall, "%.2f" % min(walls), "%.2f" % max(walls),
                     "%.0f" % (dataset.dump_bytes / 1e6 / wall), "%.2f" % client_cpu, "%.2f" % server_cpu,
                     "%s%.0f (%s)" % ("" if main_exact else "~", main_rss, main_name),
                     format_pressure(runs), failed])
    lines.append(benchlib.markdown_table(header, rows, ["---", "---"] + ["---:"] * 9))
    lines.append("")

    ratio_parts = []
    for top, bottom in RATIOS:
        if top in medians and bottom in medians:
            ratio_parts.append("%s/%s wall %.2f, client CPU %.2f" % (
                top, bottom, medians[top][0] / medians[bottom][0],
                medians[top][1] / max(0.01, medians[bottom][1])))
    if ratio_parts:
        lines.append("Ratios of medians: " + "; ".join(ratio_parts) + ".")
        lines.append("")

    lines.append("Per process (median CPU s, largest peak RSS; `~` marks a peak RSS sampled from /proc "
                 "every 50 ms where /usr/bin/time could not separate stowage from its children):")
    lines.append("")
    breakdown_rows = []
    for case in cases:
        runs = [run for run in runs_of[case] if run["error"] is None]
        if runs:
            text = format_breakdown(process_breakdown(runs))
            scratch = [run["scratch_server_cpu"] for run in runs if run["scratch_server_cpu"] is not None]
            if scratch:
                text += "; scratch server %.2f s" % median(scratch)
            text += "; server backends %.2f s" % median([run["server_cpu"] for run in runs])
            moto = [run["moto_cpu"] for run in runs if run.get("moto_cpu") is not None]
            if moto and median(moto) >= 0.05:
                text += "; moto_server %.2f s" % median(moto)
            breakdown_rows.append([case, text])
    lines.append(benchlib.markdown_table(["case", "processes"], breakdown_rows, ["---", "---"]))

    errors = [run for case in cases for run in runs_of[case] if run["error"] or run["warning"]]
    if errors:
        lines.append("")
        lines.append("Failures and warnings:")
        lines.append("")
        for run in errors:
            text = run["error"] or run["warning"]
            lines.append("- case %s round %d: %s" % (run["case"], run["round"],
                                                       " ".join(text.split())[:600]))
    steps = [run["report"] for case in STOWAGE_RESTORE_CASES for run in runs_of.get(case, []) if run.get("report")]
    if steps:
        lines.append("")
        lines.append("Step times that stowage reported in its last runs of cases %s:" % ", ".join(STOWAGE_RESTORE_CASES))
        lines.append("")
        lines.append("```")
        for case in STOWAGE_RESTORE_CASES:
            last = [run for run in runs_of.get(case, []) if run.get("report")]
            if last:
                lines.append(last[-1]["report"].rstrip("\n"))
        lines.append("```")
    return "\n".join(lines)


def build_report(options, facts, versions, datasets, cases, results, started, finished):
    lines = []
    lines.append("### Results of `scripts/bench/run.sh`")
    lines.append("")
    lines.append("Run of %s, %.0f minutes, %d rounds, cases in rotated order each round; options: `%s`."
                 % (time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started)), (finished - started) / 60,
                    options.rounds, " ".join(sys.argv[1:]) or "(defaults)"))
    lines.append("")

    lines.append(benchlib.versions_markdown(facts, versions))
    lines.append("- Load average at the end: %.2f (other work on the machine shows up as noise)"
                 % os.getloadavg()[0])
    lines.append("- PostgreSQL settings: the harness's (`fsync`, `synchronous_commit`, `full_page_writes` off) "
                 "plus %s; every case starts after a `CHECKPOINT`, with the data in the page cache"
                 % ", ".join("`%s=%s`" % item for item in benchlib.SERVER_SETTINGS.items()))
    lines.append("")
    lines.append("MB/s is the uncompressed custom-format dump size (10^6 bytes) divided by the median wall "
                 "time. Client CPU s is the user+system time of every client process: stowage with the "
                 "programs it starts, or every process of the pipeline. Server CPU s is the time of the "
                 "benchmark's PostgreSQL server and, in case 8, of the scratch server. moto_server's CPU time "
                 "is listed per process only, although this Python process competes for the same CPUs. "
                 "Peak RSS is the "
                 "largest of the runs, for stowage or else the largest process of the pipeline. CPU pressure "
                 "is the median share of the wall time in which some runnable task on the machine waited "
                 "for a CPU (`/proc/pressure/cpu`, \"some\"): other work on the machine, or the case's own "
                 "processes competing for the CPUs.")
    for dataset in datasets:
        lines.append("")
        lines.append("#### %s" % dataset.label)
        lines.append("")
        lines.append(dataset_report(dataset, cases, results))
    lines.append("")
    lines.append("Commands (`$DB` and `$TARGET` are libpq connection strings for 127.0.0.1, `$KEY` the key "
                 "pair from `stowage keygen`, `$WORK` the temporary directory; the S3 commands get "
                 "`AWS_ENDPOINT_URL` and test credentials for moto in the environment):")
    lines.append("")
    lines.append("```")
    for case in cases:
        lines.append("%-3s %s" % (case, CASES[case][1]))
    lines.append("```")
    return "\n".join(lines)


# Main -------------------------------------------------------------------------------------

def parse_arguments(argv):
    parser = argparse.ArgumentParser(prog="scripts/bench/run.sh",
                                     description="Benchmark stowage backup and restore against plain pipelines.")
    parser.add_argument("--scale", type=int, default=50, help="pgbench scale (default 50, about 510 MB of dump)")
    parser.add_argument("--size-mb", type=float, default=None,
                        help="size of the real-estate dataset in MB of dump (default: the pgbench dump's size)")
    parser.add_argument("--rounds", type=int, default=3, help="runs of every case (default 3)")
    parser.add_argument("--cases", default=",".join(CASE_ORDER),
                        help="comma-separated cases to run (default: all of %s)" % ",".join(CASE_ORDER))
    parser.add_argument("--datasets", default="pgbench,estate",
                        help="comma-separated datasets: pgbench, estate (default: both)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the real-estate dataset (default 1)")
    parser.add_argument("--out", default=os.path.join(benchlib.ROOT, "docs", "BENCHMARKS.md"),
                        help="Markdown file whose marked results section is replaced (default docs/BENCHMARKS.md)")
    parser.add_argument("--json", help="also write every measurement to this JSON file")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds one case may take (default 1800)")
    parser.add_argument("--stowage", help="stowage binary (default: build/stowage or $STOWAGE_BIN)")
    options = parser.parse_args(argv)
    options.case_list = [case.strip() for case in options.cases.split(",") if case.strip()]
    unknown = [case for case in options.case_list if case not in CASES]
    if unknown:
        parser.error("unknown case %s; the cases are %s" % (", ".join(unknown), ", ".join(CASE_ORDER)))
    options.dataset_list = [name.strip() for name in options.datasets.split(",") if name.strip()]
    if not options.dataset_list or set(options.dataset_list) - {"pgbench", "estate"}:
        parser.error("--datasets takes pgbench, estate or both")
    if options.rounds < 1 or options.scale < 1:
        parser.error("--rounds and --scale must be at least 1")
    if options.size_mb is None and "pgbench" not in options.dataset_list:
        parser.error("--size-mb is needed without the pgbench dataset")
    return options


def main(argv=None):
    options = parse_arguments(argv)
    benchlib.find_stowage(options.stowage)
    benchlib.check_programs(["zstd", "aws", "moto_server", benchlib.TIME_PROGRAM])
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    # A shell without job control starts background commands with SIGINT
    # ignored, which Python keeps; Ctrl-C must still stop the run cleanly.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    started = time.time()
    facts = benchlib.machine_facts()
    workdir = tempfile.mkdtemp(prefix="stowage-bench-")
    cluster = moto = None
    try:
        stowage = benchlib.find_stowage(options.stowage, copy_to=workdir)
        cluster, moto = benchlib.start_servers()
        bench = Bench(options, workdir, cluster, moto, stowage)
        versions = benchlib.tool_versions(stowage, cluster)
        labels = {"pgbench": "pgbench, scale %d" % options.scale,
                  "estate": "Real-estate dataset (scripts/bench/dataset, seed %d)" % options.seed}
        # pgbench goes first: its dump size sets the real-estate dataset's default size.
        datasets = [Dataset(name, labels[name]) for name in ("pgbench", "estate") if name in options.dataset_list]
        bench.datasets_by_name = {dataset.name: dataset for dataset in datasets}
        bench.prepare(datasets)
        bench.run_rounds(datasets, options.case_list)

        report = build_report(options, facts, versions, datasets, options.case_list, bench.results, started,
                              time.time())
        benchlib.replace_section(options.out, REPORT_MARKER, report)
        print(report)
        if options.json:
            benchlib.save_json(options.json, {"facts": facts, "versions": versions, "results": bench.results,
                                              "datasets": [vars(dataset) for dataset in datasets]})
        log("report written to %s" % options.out)
        return 1 if any(record["error"] for record in bench.results) else 0
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
