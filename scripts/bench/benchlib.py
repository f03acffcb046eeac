"""Shared pieces of the benchmark drivers (bench.py for run.sh, memory.py for memory.sh).

- ChildLog: a directory of wrappers for the PostgreSQL programs that stowage
  starts (pg_dump, pg_restore, ...). Pointing STOWAGE_PG_BINDIR at it runs
  each of them under /usr/bin/time, so their CPU time and peak RSS are
  recorded apart from stowage's own.
- run_pipeline: starts commands connected by pipes and measures each process
  under /usr/bin/time: wall time, user and system CPU time, peak RSS.
- ServerMeter: CPU time that a PostgreSQL server (postmaster, backends and
  background processes) spent during a case, read from /proc.
- Report helpers: machine and tool versions, Markdown tables, replacing a
  marked section of a Markdown file.

Linux only: it reads /proc.
"""

import glob
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests"))

from harness import MotoServer, PostgresCluster  # noqa: E402
from harness.stowage import stowage_environment  # noqa: E402

PG_BIN_DIR = os.environ.get("STOWAGE_PG_BIN_DIR", "/usr/lib/postgresql/15/bin")
TIME_PROGRAM = "/usr/bin/time"
TIME_FORMAT = "%e %U %S %M %x"  # wall s, user s, system s, peak RSS KiB, exit status
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
MIB = 1024 * 1024

# Programs that stowage starts from STOWAGE_PG_BINDIR. The wrapped ones run
# under /usr/bin/time; postgres is only linked, because stowage checks its
# version and starts the scratch cluster's postmaster from its own directory.
WRAPPED_PROGRAMS = ("pg_dump", "pg_dumpall", "pg_restore", "psql", "initdb", "pg_ctl")
LINKED_PROGRAMS = ("postgres",)

# Settings of the benchmark's PostgreSQL server, on top of the harness's
# (fsync, synchronous_commit and full_page_writes off). Autovacuum is off
# because it would analyze restored tables in the background of the next
# case. A large max_wal_size keeps checkpoints out of the middle of a
# restore, and each case starts after an explicit CHECKPOINT.
SERVER_SETTINGS = {
    "autovacuum": "off",
    "max_wal_size": "8GB",
    "checkpoint_timeout": "30min",
}


def log(message):
    print("bench: %s" % message, file=sys.stderr, flush=True)


# Children of stowage ----------------------------------------------------------

class ChildLog:
    """Wrapper programs that record CPU time and peak RSS of each PostgreSQL program stowage runs."""

    def __init__(self, directory):
        self.bin_dir = os.path.join(directory, "pgbin")
        self.log_dir = os.path.join(directory, "pgbin-log")
        os.makedirs(self.bin_dir)
        os.makedirs(self.log_dir)
        # The scratch cluster runs initdb and postgres as the postgres user,
        # which must be able to run the wrappers and write its records.
        os.chmod(directory, 0o755)
        os.chmod(self.bin_dir, 0o755)
        os.chmod(self.log_dir, 0o1777)
        for program in WRAPPED_PROGRAMS:
            path = os.path.join(self.bin_dir, program)
            with open(path, "w") as handle:
                handle.write("#!/bin/sh\nexec %s -o %s/%s.$$ -f '%s' %s/%s \"$@\"\n"
                             % (TIME_PROGRAM, self.log_dir, program, TIME_FORMAT, PG_BIN_DIR, program))
            os.chmod(path, 0o755)
        for program in LINKED_PROGRAMS:
            os.symlink(os.path.join(PG_BIN_DIR, program), os.path.join(self.bin_dir, program))

    def collect(self):
        """Return and delete the records written since the last call (see read_time_output), with name."""
        records = []
        for path in sorted(glob.glob(os.path.join(self.log_dir, "*"))):
            record = read_time_output(path)
            os.unlink(path)
            record["name"] = os.path.basename(path).rsplit(".", 1)[0]
            records.append(record)
        return records


# /proc readers ------------------------------------------------------------------

def read_stat(pid):
    """Return (comm, ppid, CPU s of the process and its reaped children, start time, state) or None."""
    try:
        with open("/proc/%d/stat" % pid) as handle:
            text = handle.read()
    except OSError:
        return None
    comm = text[text.index("(") + 1:text.rindex(")")]
    fields = text[text.rindex(")") + 2:].split()
    # fields[0] is field 3 of proc(5), the state, so utime (field 14) is fields[11].
    utime, stime, cutime, cstime = (int(value) for value in fields[11:15])
    return comm, int(fields[1]), (utime + stime + cutime + cstime) / CLOCK_TICKS, fields[19], fields[0]


def tree_cpu_split(pid):
    """(user s, system s) of a process, the children it reaped and its live children, or None."""
    totals = [0.0, 0.0]
    for index, process in enumerate([pid] + children_of(pid)):
        try:
            with open("/proc/%d/stat" % process) as handle:
                text = handle.read()
        except OSError:
            if index == 0:
                return None
            continue
        utime, stime, cutime, cstime = (int(value) for value in text[text.rindex(")") + 2:].split()[11:15])
        totals[0] += (utime + cutime) / CLOCK_TICKS
        totals[1] += (stime + cstime) / CLOCK_TICKS
    return tuple(totals)


def read_peak_rss_kib(pid):
    """Return VmHWM (peak resident set size so far) of a live process in KiB, or None."""
    try:
        with open("/proc/%d/status" % pid) as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def children_of(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as handle:
            return [int(child) for child in handle.read().split()]
    except OSError:
        return []


def tree_cpu(pid):
    """CPU seconds of a process, the children it reaped and its live children, or None when it is gone."""
    stat = read_stat(pid)
    if stat is None:
        return None
    total = stat[2]
    for child in children_of(pid):
        child_stat = read_stat(child)
        if child_stat is not None:
            total += child_stat[2]
    return total


class ServerMeter:
    """CPU time of one PostgreSQL server between start() and stop().

    The postmaster reaps its backends, so their CPU time moves into its
    cutime and cstime when they exit. stop() waits up to 10 s for the
    backends that the case opened to exit. A backend still running after
    that is counted with the CPU time it has used so far.
    """

    def __init__(self, postmaster_pid):
        self.pid = postmaster_pid
        self.baseline_children = set()
        self.started = 0.0

    def start(self):
        self.baseline_children = set(children_of(self.pid))
        self.started = tree_cpu(self.pid)

    def stop(self):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if not set(children_of(self.pid)) - self.baseline_children:
                break
            time.sleep(0.02)
        return tree_cpu(self.pid) - self.started


class ProcessWatcher(threading.Thread):
    """Samples the peak RSS of programs run under /usr/bin/time, and finds the scratch cluster under stowage.

    The scratch cluster's postmaster is a child of stowage named postgres
    with a -D argument (stowage's `postgres --version` check has none); it
    is found while it runs and then followed by its process id.
    """

    def __init__(self, interval=0.05, find_scratch=False):
        super().__init__(daemon=True)
        self.interval = interval
        self.find_scratch = find_scratch
        self.watched = {}          # pid -> highest VmHWM seen in KiB
        self.roots = []
        self.scratch = None         # (pid, start time) of the scratch postmaster
        self.scratch_cpu = 0.0
        self.scratch_split = (0.0, 0.0)   # user and system s within scratch_cpu
        self.scratch_directory = None
        self._stop_event = threading.Event()
        self._lock = threading.Lock()

    def watch(self, pid):
        with self._lock:
            self.watched.setdefault(pid, 0)
            self.roots.append(pid)

    def peak_rss_kib(self, pid):
        with self._lock:
            return self.watched.get(pid) or None

    def run(self):
        while not self._stop_event.wait(self.interval):
            self.sample()

    def sample(self):
        with self._lock:
            pids = list(self.watched)
            roots = list(self.roots)
        for pid in pids:
            # The watched process is /usr/bin/time; the program is its child.
            values = [read_peak_rss_kib(child) for child in children_of(pid)]
            values = [value for value in values if value is not None]
            if values:
                with self._lock:
                    self.watched[pid] = max([self.watched[pid]] + values)
        if self.find_scratch:
            if self.scratch is None:
                self._find_scratch(roots)
            if self.scratch is not None:
                self._sample_scratch()

    def _find_scratch(self, roots):
        """Look for a postgres process with a data directory whose parent is stowage: the postmaster.

        initdb's own postgres children (bootstrap and single-user mode) have
        initdb as their parent, so they do not match.
        """
        pending = list(roots)
        while pending:
            pid = pending.pop()
            parent = read_stat(pid)
            for child in children_of(pid):
                stat = read_stat(child)
                if stat is None:
                    continue
                if (stat[0] == "postgres" and parent is not None and parent[0] == "stowage"
                        and _data_directory(child) is not None):
                    self.scratch = (child, stat[3])
                    self.scratch_directory = _data_directory(child)
                    return
                pending.append(child)

    def _sample_scratch(self):
        pid, start_time = self.scratch
        stat = read_stat(pid)
        if stat is None or stat[3] != start_time:
            return
        split = tree_cpu_split(pid)
        if split is not None and sum(split) >= self.scratch_cpu:
            self.scratch_cpu = sum(split)
            self.scratch_split = split

    def scratch_alive(self):
        if self.scratch is None:
            return False
        stat = read_stat(self.scratch[0])
        return (stat is not None and stat[3] == self.scratch[1] and stat[0] == "postgres"
                and stat[4] not in ("Z", "X"))

    def stop(self):
        self._stop_event.set()
        self.join()
        self.sample()


def _data_directory(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as handle:
            arguments = handle.read().decode(errors="replace").split("\0")
    except OSError:
        return None
    for index, argument in enumerate(arguments[:-1]):
        if argument == "-D":
            return arguments[index + 1]
    return None


def stop_leaked_scratch(watcher):
    """Stop a scratch postmaster that outlived stowage and delete its directory; return a warning or None.

    stowage waits for the postmaster to exit before it removes the
    directory, so a server still there 5 s after stowage counts as leaked.
    """
    deadline = time.monotonic() + 5
    while watcher.scratch_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    if not watcher.scratch_alive():
        return None
    pid = watcher.scratch[0]
    directory = watcher.scratch_directory
    try:
        os.kill(pid, signal.SIGINT)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + 30
    while watcher.scratch_alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    if watcher.scratch_alive():
        os.kill(pid, signal.SIGKILL)
    if directory:
        parent = os.path.dirname(os.path.normpath(directory))
        if os.path.basename(parent).startswith("stowage-scratch-"):
            shutil.rmtree(parent, ignore_errors=True)
    return "the scratch PostgreSQL server (pid %d, %s) was still running after stowage exited; stopped it" % (
        pid, directory)


# Pipelines --------------------------------------------------------------------------

class PipelineError(RuntimeError):
    pass


def run_pipeline(commands, env, stdout_path=None, capture_stdout=False, stderr_path=None, timeout=3600,
                 watch_rss=(), find_scratch=False, child_log=None):
    """Run commands connected by pipes; return a dict with wall seconds and one record per process.

    Every command runs under /usr/bin/time, which reports its CPU time and
    peak RSS. A child that Python starts directly would report Python's own
    peak RSS, because the kernel keeps the peak of the memory image that
    exec() replaced. Each command gets its own process group; on timeout or
    interrupt each group gets SIGINT, then SIGKILL after 30 s.

    The last command writes to stdout_path (or /dev/null), or to a pipe when
    capture_stdout is set. watch_rss lists the indexes of commands whose peak
    RSS is also sampled from /proc, because /usr/bin/time reports the larger
    of a process's own peak and its children's. Records of programs run
    under child_log's wrappers come back in "children".
    """
    stderr_handle = open(stderr_path or os.devnull, "ab")
    watcher = ProcessWatcher(find_scratch=find_scratch)
    processes = []
    time_outputs = []
    output_handle = None
    stdout_text = ""
    started = time.monotonic()
    try:
        previous = subprocess.DEVNULL
        for index, command in enumerate(commands):
            last = index == len(commands) - 1
            if not last:
                stdout = subprocess.PIPE
            elif capture_stdout:
                stdout = subprocess.PIPE
            else:
                output_handle = open(stdout_path or os.devnull, "wb")
                stdout = output_handle
            time_output = "%s.time.%d.%d" % (stderr_path or "/tmp/stowage-bench", os.getpid(), index)
            time_outputs.append(time_output)
            process = subprocess.Popen([TIME_PROGRAM, "-o", time_output, "-f", TIME_FORMAT] + list(command),
                                       stdin=previous, stdout=stdout, stderr=stderr_handle, env=env,
                                       start_new_session=True)
            if index > 0:
                previous.close()  # the reading end now belongs to the new process only
            previous = process.stdout if not last else None
            processes.append(process)
            if index in watch_rss:
                watcher.watch(process.pid)
        watcher.start()

        reader = None
        if capture_stdout:
            chunks = []
            reader = threading.Thread(target=lambda: chunks.append(processes[-1].stdout.read()), daemon=True)
            reader.start()

        deadline = started + timeout
        for process in processes:
            _wait_with_deadline(process, deadline)
        wall = time.monotonic() - started
        if reader is not None:
            reader.join()
            stdout_text = b"".join(chunks).decode(errors="replace")
    except BaseException:
        _stop_all(processes)
        raise
    finally:
        watcher.stop()
        stderr_handle.close()
        if output_handle is not None:
            output_handle.close()
        for process in processes:
            if process.stdout is not None:
                process.stdout.close()

    records = []
    for index, (command, time_output) in enumerate(zip(commands, time_outputs)):
        record = read_time_output(time_output)
        os.unlink(time_output)
        record["name"] = os.path.basename(command[0])
        records.append(record)
    children = child_log.collect() if child_log is not None else []
    scratch_reaped = find_scratch and watcher.scratch is not None
    for index, record in enumerate(records):
        if scratch_reaped and index in watch_rss:
            # stowage starts and reaps the scratch postmaster, so /usr/bin/time
            # counts the server's CPU time and peak RSS as stowage's. The
            # server's CPU time is reported apart, and the sampled VmHWM is
            # stowage's own peak.
            record["user"] = max(0.0, record["user"] - watcher.scratch_split[0])
            record["sys"] = max(0.0, record["sys"] - watcher.scratch_split[1])
        sampled = watcher.peak_rss_kib(processes[index].pid) if index in watch_rss else None
        own_rss_kib = record["rss_kib"]
        exact = True
        if scratch_reaped and index in watch_rss:
            own_rss_kib = sampled or own_rss_kib
            exact = False
        elif children and index in watch_rss:
            # /usr/bin/time gives max(own peak, children's peaks). When that
            # is above every child's peak it is the process's own; otherwise
            # the sampled VmHWM is the best figure there is.
            if own_rss_kib <= max(child["rss_kib"] for child in children):
                own_rss_kib = sampled or own_rss_kib
                exact = False
        record["own_rss_kib"] = own_rss_kib
        record["rss_exact"] = exact
        record["sampled_rss_kib"] = sampled
    warning = stop_leaked_scratch(watcher) if find_scratch else None
    return {
        "wall": wall,
        "processes": records,
        "children": children,
        "stdout": stdout_text,
        "scratch_server_cpu": watcher.scratch_cpu if find_scratch else None,
        "warning": warning,
    }


def read_time_output(path):
    """Parse a file written by /usr/bin/time -f TIME_FORMAT into a record with wall, user, sys, rss_kib, status."""
    with open(path) as handle:
        lines = [line for line in handle.read().split("\n") if line.strip()]
    # A program killed by a signal gets a "Command terminated by signal N"
    # line before the figures, and its status field reads 0.
    wall, user, system, rss_kib, status = lines[-1].split()
    status = int(status)
    if status == 0 and len(lines) > 1 and "signal" in lines[0]:
        status = -int(lines[0].split()[-1])
    return {"wall": float(wall), "user": float(user), "sys": float(system), "rss_kib": int(rss_kib),
            "status": status}


def _wait_with_deadline(process, deadline):
    """Wait for the process, polling every 5 ms; past the deadline raise PipelineError."""
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid == process.pid:
            process.returncode = os.waitstatus_to_exitcode(status)
            return status, usage
        if time.monotonic() > deadline:
            raise PipelineError("%s did not finish in time" % process.args[0])
        time.sleep(0.005)


def _stop_all(processes):
    running = [process for process in processes if process.returncode is None]
    for process in running:
        try:
            os.killpg(process.pid, signal.SIGINT)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 30
    for process in running:
        try:
            process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait()


# Environment and versions ----------------------------------------------------------

def find_stowage(path=None, copy_to=None):
    """Return the stowage binary to measure; with copy_to, a copy in that directory.

    Other work in the same tree may rebuild build/stowage while a benchmark
    runs, so the drivers measure a copy taken at the start.
    """
    path = path or os.environ.get("STOWAGE_BIN") or os.path.join(ROOT, "build", "stowage")
    if not os.access(path, os.X_OK):
        raise SystemExit("bench: stowage binary %s not found; build it with cmake --build build" % path)
    if copy_to is None:
        return path
    copy = os.path.join(copy_to, "stowage")
    shutil.copy2(path, copy)
    os.chmod(copy, 0o755)
    return copy


def cpu_pressure_total():
    """Return the microseconds in which some runnable task waited for a CPU (/proc/pressure/cpu), or None."""
    try:
        with open("/proc/pressure/cpu") as handle:
            first = handle.readline().split()
    except OSError:
        return None
    return int(first[-1].split("=")[1])


def check_programs(names):
    missing = [name for name in names if shutil.which(name) is None]
    if missing:
        raise SystemExit("bench: missing programs: %s" % ", ".join(missing))


def command_output(command):
    try:
        result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60)
        return result.stdout.strip()
    except (OSError, subprocess.TimeoutExpired) as error:
        return "unknown (%s)" % error


def machine_facts():
    model = "unknown"
    with open("/proc/cpuinfo") as handle:
        for line in handle:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as handle:
        memory_kib = int(handle.readline().split()[1])
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "memory_gib": memory_kib / MIB,
        "kernel": platform.release(),
        "load": os.getloadavg(),
    }


def tool_versions(stowage, cluster):
    import moto
    commit = command_output(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"])
    dirty = command_output(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"])
    return {
        "postgresql": cluster.psql("SHOW server_version"),
        "pg_dump": command_output([os.path.join(PG_BIN_DIR, "pg_dump"), "--version"]),
        "zstd": command_output(["zstd", "--version"]),
        "awscli": command_output(["aws", "--version"]),
        "moto": moto.__version__,
        "stowage": "%s, commit %s%s" % (command_output([stowage, "--version"]), commit,
                                        " with uncommitted changes" if dirty else ""),
    }


def versions_markdown(facts, versions):
    lines = [
        "- Machine: %d CPUs (`nproc`), %s, %.1f GiB memory, Linux %s; load average %.2f at the start"
        % (facts["nproc"], facts["cpu"], facts["memory_gib"], facts["kernel"], facts["load"][0]),
        "- PostgreSQL %s (`%s`)" % (versions["postgresql"], versions["pg_dump"]),
        "- %s" % versions["zstd"].strip("* "),
        "- %s" % versions["awscli"],
        "- moto %s (`moto_server` on 127.0.0.1)" % versions["moto"],
        "- %s" % versions["stowage"],
    ]
    return "\n".join(lines)


def start_servers(moto_env=None):
    """Start the PostgreSQL server and moto; return (cluster, moto). The caller stops both."""
    cluster = PostgresCluster(settings=SERVER_SETTINGS)
    cluster.start()
    try:
        moto = MotoServer(extra_env=moto_env)
        moto.start()
    except BaseException:
        cluster.close()
        raise
    return cluster, moto


def pgbench_init(cluster, db, scale):
    """Create the pgbench tables at scale in db (pgbench -i, which also vacuums them)."""
    cluster.run_tool("pgbench", "-i", "-q", "-s", str(scale), "-h", cluster.host, "-p", str(cluster.port),
                     "-U", cluster.superuser, db, timeout=7200)


def client_environment(cluster, moto, child_log=None):
    """Return the environment for every measured command: AWS settings for moto, PostgreSQL tools on PATH."""
    env = stowage_environment(moto.env())
    env["AWS_CONFIG_FILE"] = os.devnull
    env["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    env["AWS_PAGER"] = ""
    env["PATH"] = PG_BIN_DIR + ":" + env.get("PATH", "/usr/bin:/bin")
    if child_log is not None:
        env["STOWAGE_PG_BINDIR"] = child_log.bin_dir
    return env


def delete_prefix(moto, bucket, prefix):
    """Delete every object under prefix, so that moto's memory stays small."""
    s3 = moto.client("s3")
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
        if keys:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": keys})
    uploads = s3.list_multipart_uploads(Bucket=bucket, Prefix=prefix).get("Uploads", [])
    for upload in uploads:
        s3.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])


# Markdown ---------------------------------------------------------------------------------

def median(values):
    return statistics.median(values) if values else float("nan")


def markdown_table(header, rows, align=None):
    align = align or ["---"] + ["---:"] * (len(header) - 1)
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    for row in rows:
        lines.append("| " + " | ".join(str(cell) for cell in row) + " |")
    return "\n".join(lines)


def replace_section(path, marker, text):
    """Put text between <!-- BEGIN marker --> and <!-- END marker --> in path, or append it with them."""
    begin = "<!-- BEGIN %s -->" % marker
    end = "<!-- END %s -->" % marker
    block = "%s\n%s\n%s\n" % (begin, text.rstrip("\n"), end)
    try:
        with open(path) as handle:
            content = handle.read()
    except FileNotFoundError:
        content = ""
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end) + r"\n?", re.DOTALL)
    if pattern.search(content):
        content = pattern.sub(lambda match: block, content, count=1)
    else:
        content = content.rstrip("\n") + ("\n\n" if content else "") + block
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    with open(path, "w") as handle:
        handle.write(content)


def tail_text(path, limit=2000):
    """Return the last limit characters of a text file, or a note that it cannot be read."""
    try:
        with open(path, errors="replace") as handle:
            return handle.read()[-limit:]
    except OSError as error:
        return "(cannot read %s: %s)" % (path, error)


def save_json(path, data):
    with open(path, "w") as handle:
        json.dump(data, handle, indent=1, sort_keys=True)
        handle.write("\n")
