"""Shared set-up for the end-to-end tests: one PostgreSQL cluster with
sample databases, one moto_server, and a recipient key pair."""

import glob
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from harness import MotoServer, PostgresCluster, run_stowage  # noqa: E402

# Part sizes below S3's 5 MiB minimum let small databases span many parts.
SMALL_PART = 64 * 1024


def process_commands():
    """Return (pid, command line) of every process whose command line is readable."""
    commands = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % entry, "rb") as handle:
                command = handle.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        commands.append((int(entry), command))
    return commands


def child_pids(pid):
    """Return the ids of the live processes whose parent is pid."""
    children = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            children.append(int(entry))
    return children


def wait_until_signal_blocked(process, signum, timeout=30):
    """Wait until process blocks signum in its main thread, which stowage does
    when its signal thread takes the signal over. A signal sent earlier meets
    the default action and kills the process instead of interrupting it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open("/proc/%d/status" % process.pid) as handle:
                fields = dict(line.split(":", 1) for line in handle if ":" in line)
        except OSError:
            fields = {}
        if int(fields.get("SigBlk", "0").strip(), 16) & (1 << (signum - 1)):
            return
        if process.poll() is not None:
            raise AssertionError("the process exited before it blocked signal %d" % signum)
        time.sleep(0.01)
    raise AssertionError("the process did not block signal %d within %d s" % (signum, timeout))


def redate_backup(repo, name, backup_id, started_at="2099-01-01T00:00:00.000000Z"):
    """Set the start time in the manifest of a backup in a file:// repository.

    Stands for a backup taken on a host whose clock was wrong (the
    manifest is not signed in these tests, so nothing else notices).
    """
    path = os.path.join(repo[len("file://"):], "backups", name, backup_id, "manifest.json")
    with open(path) as handle:
        manifest = json.load(handle)
    manifest["started_at"] = started_at
    with open(path, "w") as handle:
        json.dump(manifest, handle)


def stop_process_groups_using(directory):
    """Kill the process groups of programs started from directory.

    Stowage runs pg_dump and pg_restore in process groups of their own, so
    a test that kills stowage with SIGKILL leaves a fault wrapper from
    fake_pg_bindir (and the real program under it) running until its sleep
    ends. Only groups other than the test runner's are killed.
    """
    own_group = os.getpgid(0)
    for pid, command in process_commands():
        if directory + "/" not in command:
            continue
        try:
            group = os.getpgid(pid)
        except (OSError, ProcessLookupError):
            continue
        if group != own_group:
            try:
                os.killpg(group, signal.SIGKILL)
            except ProcessLookupError:
                pass


class StowageTestCase(unittest.TestCase):
    """Starts a cluster and moto once per test class and creates keys."""

    moto_env = {"S3_UPLOAD_PART_MIN_SIZE": str(SMALL_PART)}

    @classmethod
    def setUpClass(cls):
        cls.workdir = tempfile.mkdtemp(prefix="stowage-test-")
        os.chmod(cls.workdir, 0o755)
        cls.cluster = PostgresCluster()
        cls.cluster.start()
        cls.moto = MotoServer(extra_env=cls.moto_env)
        cls.moto.start()
        cls.key = os.path.join(cls.workdir, "backup.key")
        code, out, err = run_stowage(["keygen", "--out", cls.key])
        if code != 0:
            raise RuntimeError("keygen failed: %s" % err)
        cls.pub = cls.key + ".pub"

    @classmethod
    def tearDownClass(cls):
        stop_process_groups_using(cls.workdir)
        cls.moto.stop()
        cls.cluster.stop()
        cls.cluster.cleanup()
        shutil.rmtree(cls.workdir, ignore_errors=True)

    # Helpers ---------------------------------------------------------------

    def s3_env(self, **extra):
        env = self.moto.env()
        env["STOWAGE_MIN_PART_SIZE"] = str(SMALL_PART)
        env.update(extra)
        return env

    def new_bucket(self):
        name = "stowage-%s" % os.urandom(4).hex()
        self.moto.create_bucket(name)
        return name

    def file_repo(self):
        path = tempfile.mkdtemp(prefix="repo-", dir=self.workdir)
        return "file://" + path

    def stowage(self, *args, env=None, timeout=600, expect=0):
        result = run_stowage(list(args), env=env, timeout=timeout)
        if expect is not None:
            self.assertEqual(expect, result.returncode,
                             "stowage %s exited %d\nstdout:\n%s\nstderr:\n%s"
                             % (" ".join(args), result.returncode, result.stdout, result.stderr))
        return result

    def hold_table_lock(self, db, table):
        """Lock table in db in ACCESS EXCLUSIVE mode until release_table_lock or the
        end of the test, so that a verification query on it waits."""
        process = subprocess.Popen([self.cluster.tool("psql"), "-X", "-q", "-A", "-t", "-d",
                                    self.cluster.conninfo(db)],
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                   env=self.cluster.client_environment())
        process.stdin.write("BEGIN;\nLOCK TABLE %s IN ACCESS EXCLUSIVE MODE;\n"
                            "SELECT 'locked';\n" % table)
        process.stdin.flush()
        self.assertEqual("locked", process.stdout.readline().strip())
        self.addCleanup(self.release_table_lock, process)
        return process

    def release_table_lock(self, process):
        if process.poll() is None:
            process.stdin.write("ROLLBACK;\n")
            process.stdin.close()
            process.wait(30)
        if not process.stdout.closed:
            process.stdout.close()

    def wait_for_blocked_verification(self, process):
        """Wait until a query of stowage's verification (application_name
        stowage-verify) waits for a lock. Fail when stowage exits first."""
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            rows = self.cluster.query("SELECT count(*) FROM pg_stat_activity WHERE "
                                      "application_name = 'stowage-verify' AND "
                                      "wait_event_type = 'Lock'")
            if rows[0][0] == "1":
                return
            if process.poll() is not None:
                self.fail("stowage exited early:\n%s" % (process.communicate(),))
            time.sleep(0.1)
        self.fail("the verification never waited for the lock")

    def backup(self, repo, db, *extra, env=None, expect=0):
        return self.stowage("backup", "--repo", repo, "--db", self.cluster.conninfo(db),
                            "--recipient", self.pub, *extra, env=env, expect=expect)

    def list_json(self, repo, env=None):
        result = self.stowage("list", "--repo", repo, "--json", env=env)
        return json.loads(result.stdout)

    def show_json(self, repo, backup_id, env=None):
        result = self.stowage("show", "--repo", repo, backup_id, "--json", env=env)
        return json.loads(result.stdout)

    def row_counts(self, db):
        rows = self.cluster.query(
            "SELECT format('%I.%I', schemaname, relname) FROM pg_stat_user_tables ORDER BY 1", db=db)
        counts = {}
        for (table,) in rows:
            counts[table] = int(self.cluster.query("SELECT count(*) FROM %s" % table, db=db)[0][0])
        return counts

    def extract_and_restore(self, repo, backup_id, target_db, env=None):
        """Extract with stowage, then restore the joined dump with plain pg_restore."""
        out_dir = tempfile.mkdtemp(prefix="extract-", dir=self.workdir)
        os.rmdir(out_dir)
        self.stowage("extract", "--repo", repo, backup_id, "--key", self.key, "--to", out_dir, env=env)
        segments = sorted(glob.glob(os.path.join(out_dir, "database.dump.*")))
        self.assertTrue(segments, "no dump segments extracted")
        dump_path = os.path.join(out_dir, "joined.dump")
        with open(dump_path, "wb") as joined:
            for segment in segments:
                with open(segment, "rb") as part:
                    shutil.copyfileobj(part, joined)
        self.cluster.createdb(target_db)
        self.cluster.run_tool("pg_restore", "--exit-on-error", "-d",
                              self.cluster.conninfo(target_db), dump_path)
        return out_dir


def sha256_hex(data):
    return hashlib.sha256(data).hexdigest()


def fake_pg_bindir(workdir, name, pg_dump_body, program="pg_dump", replacement=None):
    """A bin directory where one program wraps the real one with a fault.

    The other programs link to PostgreSQL 15's own. The wrapper runs
    replacement (default pg_dump_body), a shell fragment in which $REAL is
    the real program; --version is always passed through.
    """
    real_dir = "/usr/lib/postgresql/15/bin"
    bindir = os.path.join(workdir, name)
    os.makedirs(bindir)
    os.chmod(bindir, 0o755)
    for entry in os.listdir(real_dir):
        if entry != program:
            os.symlink(os.path.join(real_dir, entry), os.path.join(bindir, entry))
    script = os.path.join(bindir, program)
    with open(script, "w") as handle:
        handle.write("#!/bin/bash\nREAL=%s/%s\n" % (real_dir, program))
        handle.write('case "$1" in --version) exec "$REAL" --version;; esac\n')
        handle.write((replacement or pg_dump_body) + "\n")
    os.chmod(script, 0o755)
    return bindir


def open_uploads(moto, bucket):
    client = moto.client("s3")
    return client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])


def object_keys(moto, bucket):
    client = moto.client("s3")
    return [item["Key"] for item in client.list_objects_v2(Bucket=bucket).get("Contents", [])]


__all__ = ["StowageTestCase", "sha256_hex", "fake_pg_bindir", "open_uploads", "object_keys",
           "SMALL_PART", "run_stowage", "subprocess"]
