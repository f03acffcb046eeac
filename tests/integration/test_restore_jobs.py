"""End-to-end tests of parallel restore (restore --jobs N): the spool file,
its space check and removal, the data offsets written into the spooled
dump, the partly restored target after a failure, rejected values, and the
verification's second connection."""

import errno
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

from support import StowageTestCase

from harness import FaultProxy, PostgresCluster, run_stowage
from harness.faultproxy import STALL
from harness.stowage import spawn_stowage

HERE = os.path.dirname(os.path.abspath(__file__))


def mount_tmpfs(directory, size):
    """Mount a tmpfs of size (mount's syntax, "1m") on directory; False when not allowed."""
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s,mode=0755" % size, "tmpfs",
                             directory], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return result.returncode == 0


def tool_binary(name):
    """A test tool next to STOWAGE_BIN (else in build/)."""
    stowage = os.environ.get("STOWAGE_BIN", os.path.join(HERE, "..", "..", "build", "stowage"))
    return os.path.join(os.path.dirname(os.path.abspath(stowage)), name)


def differing_ranges(left, right):
    """Offsets of the first and last byte where two equally long byte strings differ."""
    positions = [i for i, (a, b) in enumerate(zip(left, right)) if a != b]
    return (positions[0], positions[-1]) if positions else None


def used_bytes(directory):
    stat = os.statvfs(directory)
    return (stat.f_blocks - stat.f_bfree) * stat.f_frsize


def terminate(process):
    """Sends SIGTERM and waits up to a minute for the exit; returns the output."""
    process.send_signal(signal.SIGTERM)
    return process.communicate(timeout=60)


def kill_if_running(process):
    """Kills the process group of a restore that a failed test left running."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def open_files_in(pid, directory):
    """The targets of pid's descriptors that lie in directory."""
    found = []
    fd_dir = "/proc/%d/fd" % pid
    try:
        names = os.listdir(fd_dir)
    except FileNotFoundError:
        return found
    for name in names:
        try:
            target = os.readlink(os.path.join(fd_dir, name))
        except OSError:
            continue
        if target.startswith(directory + "/"):
            found.append((name, target))
    return found


class RestoreJobsTest(StowageTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.cluster.createdb("jobs_source")
        with open(os.path.join(HERE, "sql", "hard_cases.sql")) as handle:
            cls.cluster.psql(handle.read(), db="jobs_source")
        cls.cluster.pgbench_init(scale=1, db="jobs_source")
        cls.repo = "file://" + os.path.join(cls.workdir, "repo")
        os.makedirs(cls.repo[len("file://"):])
        result = cls.run_backup(cls.repo)
        cls.backup_id = json.loads(result.stdout)["id"]
        cls.mounts = []

    @classmethod
    def tearDownClass(cls):
        for directory in cls.mounts:
            subprocess.run(["umount", directory], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
        super().tearDownClass()

    @classmethod
    def run_backup(cls, repo, env=None, *extra):
        result = run_stowage(["backup", "--repo", repo, "--db", cls.cluster.conninfo("jobs_source"),
                              "--recipient", cls.pub, "--json"] + list(extra), env=env)
        if result.returncode != 0:
            raise RuntimeError("backup failed: %s" % result.stderr)
        return result

    def spool_dir(self, size=None):
        """A new empty directory; with size, a tmpfs of that size (or skip the test)."""
        directory = tempfile.mkdtemp(prefix="spool-", dir=self.workdir)
        if size is not None:
            if not mount_tmpfs(directory, size):
                self.skipTest("mounting a tmpfs needs root (CAP_SYS_ADMIN)")
            self.mounts.append(directory)
            self.addCleanup(self.unmount, directory)
        return directory

    def unmount(self, directory):
        subprocess.run(["umount", directory], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if directory in self.mounts:
            self.mounts.remove(directory)

    def user_tables(self, db, cluster=None):
        rows = (cluster or self.cluster).query(
            "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN "
            "('pg_catalog', 'information_schema')", db=db)
        return int(rows[0][0])

    def test_jobs_restore_matches_source(self):
        spool = self.spool_dir()
        self.cluster.createdb("jobs_target")
        result = self.stowage("restore", "--repo", self.repo, self.backup_id, "--key", self.key,
                              "--target", self.cluster.conninfo("jobs_target"), "--jobs", "2",
                              "--spool-dir", spool)
        self.assertIn("spools the whole dump, because the dump contains large objects",
                      result.stderr)
        self.assertIn("spooling", result.stderr)
        self.assertIn(spool, result.stderr)
        self.assertIn("--jobs=2", result.stderr)
        self.assertEqual(self.row_counts("jobs_source"), self.row_counts("jobs_target"))
        self.assertEqual([], os.listdir(spool))
        self.stowage("verify", "--repo", self.repo, self.backup_id, "--key", self.key,
                     "--against", self.cluster.conninfo("jobs_target"))

    def test_jobs_verified_scratch_restore(self):
        report = os.path.join(self.workdir, "jobs-report.json")
        result = self.stowage("restore", "--repo", self.repo, self.backup_id, "--key", self.key,
                              "--scratch", "local", "--verify", "--jobs", "2", "--report", report,
                              env={"STOWAGE_SPOOL_DIR": self.spool_dir()})
        self.assertIn("passed", result.stdout)
        with open(report) as handle:
            data = json.load(handle)
        self.assertEqual("passed", data["result"])
        self.assertEqual(2, data["jobs"])
        self.assertTrue(data["verification"]["passed"])

    def test_small_spool_dir_fails_before_restore(self):
        spool = self.spool_dir(size="1m")
        dump_bytes = self.show_json(self.repo, self.backup_id)["archive"]["dump_bytes"]
        self.assertGreater(dump_bytes, 1024 * 1024)
        self.cluster.createdb("jobs_small_spool")
        result = self.stowage("restore", "--repo", self.repo, self.backup_id, "--key", self.key,
                              "--target", self.cluster.conninfo("jobs_small_spool"),
                              "--jobs", "2", "--spool-dir", spool, expect=2)
        self.assertIn(spool, result.stderr)
        self.assertIn("available", result.stderr)
        self.assertIn("MiB", result.stderr)
        self.assertIn("--spool-dir", result.stderr)
        self.assertIn("--jobs 1", result.stderr)
        self.assertEqual(0, self.user_tables("jobs_small_spool"))
        self.assertEqual([], os.listdir(spool))

    def test_sigterm_while_spooling_frees_spool_file(self):
        spool = self.spool_dir(size="256m")
        bucket = self.new_bucket()
        repo = "s3://%s/db" % bucket
        self.run_backup(repo, self.s3_env(), "--part-size", "64KiB")
        self.cluster.createdb("jobs_sigterm")
        with FaultProxy(self.moto) as proxy:
            # Ranged GETs from the second on wait (each fetches two parts of
            # the object's at least three), so stowage is still spooling
            # when the signal arrives.
            parts = self.show_json(repo, "latest", env=self.s3_env())["object"]["parts"]
            self.assertGreater(len(parts), 2)
            rule = proxy.add_fault(STALL, method="GET", path=r"data\.stow", nth=2, count=None,
                                   seconds=30)
            process = spawn_stowage(
                ["restore", "--repo", repo, "latest", "--key", self.key, "--target",
                 self.cluster.conninfo("jobs_sigterm"), "--jobs", "2", "--spool-dir", spool],
                env=self.s3_env(AWS_ENDPOINT_URL=proxy.endpoint))
            try:
                deadline = time.time() + 60
                spooled = []
                while time.time() < deadline and not (rule.matched and spooled and
                                                      used_bytes(spool) > 0):
                    spooled = open_files_in(process.pid, spool)
                    time.sleep(0.05)
                self.assertTrue(rule.matched, "the download never reached the stalled part")
                self.assertEqual(1, len(spooled), spooled)
                self.assertIn("(deleted)", spooled[0][1])
                self.assertEqual([], os.listdir(spool))
                self.assertGreater(used_bytes(spool), 0)
                self.assertIsNone(process.poll())
                stdout, stderr = terminate(process)
            finally:
                kill_if_running(process)
        self.assertEqual(130, process.returncode, stderr)
        self.assertIn("SIGTERM", stderr)
        self.assertEqual([], os.listdir(spool))
        self.assertEqual(0, used_bytes(spool))
        self.assertEqual(0, self.user_tables("jobs_sigterm"), stderr)

    def test_failed_pre_data_is_rolled_back(self):
        # The schema step runs in one transaction: a missing owner role
        # fails it, and the target stays empty.
        role = "jobs_owner_%s" % os.urandom(3).hex()
        self.cluster.createdb("jobs_owned")
        self.cluster.psql("CREATE ROLE %s NOLOGIN; CREATE TABLE t (id int); "
                          "INSERT INTO t VALUES (1), (2); ALTER TABLE t OWNER TO %s" % (role, role),
                          db="jobs_owned")
        repo = self.file_repo()
        self.stowage("backup", "--repo", repo, "--db", self.cluster.conninfo("jobs_owned"),
                     "--recipient", self.pub)
        spool = self.spool_dir()
        other = PostgresCluster()
        other.start()
        try:
            other.createdb("jobs_owned")
            result = self.stowage("restore", "--repo", repo, "latest", "--key", self.key,
                                  "--target", other.conninfo("jobs_owned"), "--jobs", "2",
                                  "--spool-dir", spool, expect=1)
            self.assertIn('role "%s" does not exist' % role, result.stderr)
            self.assertIn("pg_restore --section=pre-data failed", result.stderr)
            self.assertNotIn("partly restored", result.stderr)
            self.assertEqual(0, self.user_tables("jobs_owned", cluster=other))
            self.assertEqual([], os.listdir(spool))
        finally:
            other.stop()
            other.cleanup()

    def test_dump_offsets_match_pg_dump_seekable(self):
        # pg_dump writes the data offsets into the TOC only when its output
        # is seekable. Filling them into a dump written to a pipe must give
        # the same bytes, except the creation time in the header.
        piped = os.path.join(self.workdir, "piped.dump")
        seekable = os.path.join(self.workdir, "seekable.dump")
        dump = subprocess.run([self.cluster.tool("pg_dump"), "-Fc", "-Z0", "-d",
                               self.cluster.conninfo("jobs_source")], stdout=subprocess.PIPE,
                              check=True, env=self.cluster.client_environment())
        with open(piped, "wb") as handle:
            handle.write(dump.stdout)
        self.cluster.run_tool("pg_dump", "-Fc", "-Z0", "-d", self.cluster.conninfo("jobs_source"),
                              "-f", seekable)
        with open(piped, "rb") as handle:
            before = handle.read()
        with open(seekable, "rb") as handle:
            expected = handle.read()
        self.assertEqual(len(expected), len(before))
        self.assertGreater(differing_ranges(before, expected)[1], 200)

        result = subprocess.run([tool_binary("dump_offsets_tool"), piped], capture_output=True,
                                text=True)
        self.assertEqual(0, result.returncode, result.stderr)
        filled = int(result.stdout.split("filled: ")[1])
        self.assertGreaterEqual(filled, 4)
        with open(piped, "rb") as handle:
            after = handle.read()
        first_last = differing_ranges(after, expected)
        # The header's seven creation time integers end before byte 100.
        self.assertTrue(first_last is None or first_last[1] < 100, first_last)

    def test_dump_offsets_leave_other_files_alone(self):
        path = os.path.join(self.workdir, "not-a-dump")
        content = b"PGDMP" + os.urandom(4000)
        with open(path, "wb") as handle:
            handle.write(content)
        result = subprocess.run([tool_binary("dump_offsets_tool"), path], capture_output=True,
                                text=True)
        self.assertEqual(0, result.returncode, result.stderr)
        self.assertEqual("not indexed", result.stdout.strip())
        with open(path, "rb") as handle:
            self.assertEqual(content, handle.read())

    def test_verify_against_falls_back_to_one_connection(self):
        # A role limited to one connection cannot open the second connection
        # that reads tables in parallel, so every table goes over the first.
        role = "jobs_reader_%s" % os.urandom(3).hex()
        self.cluster.createdb("jobs_pgbench")
        self.cluster.pgbench_init(scale=1, db="jobs_pgbench")
        self.cluster.psql("CREATE ROLE %s LOGIN CONNECTION LIMIT 1 IN ROLE pg_read_all_data" % role)
        repo = self.file_repo()
        self.stowage("backup", "--repo", repo, "--db", self.cluster.conninfo("jobs_pgbench"),
                     "--recipient", self.pub)

        result = self.stowage("verify", "--repo", repo, "latest", "--key", self.key, "--against",
                              self.cluster.conninfo("jobs_pgbench"), "--log-level", "detail")
        self.assertNotIn("verifying over one connection", result.stderr)
        self.assertIn("0 differences", result.stderr)

        limited = self.cluster.conninfo("jobs_pgbench", user=role)
        result = self.stowage("verify", "--repo", repo, "latest", "--key", self.key, "--against",
                              limited, "--log-level", "detail")
        self.assertIn("verifying over one connection: a second connection failed", result.stderr)
        self.assertIn("too many connections", result.stderr)
        self.assertIn("compared 4 tables", result.stderr)
        self.assertIn("0 differences", result.stderr)

    def test_drill_with_jobs_passes(self):
        report = os.path.join(self.workdir, "drill-jobs.json")
        self.stowage("drill", "--repo", self.repo, "--key", self.key, "--jobs", "2",
                     "--spool-dir", self.spool_dir(), "--report", report)
        with open(report) as handle:
            data = json.load(handle)
        steps = [step["step"] for step in data["steps"]]
        self.assertIn("pg_restore --jobs", steps)
        self.assertIn("verify", steps)

    def test_drill_jobs_rejected_for_rds(self):
        result = self.stowage("drill", "--repo", self.repo, "--scratch", "rds", "--rds-region",
                              "eu-west-1", "--jobs", "2", expect=2)
        self.assertIn("local drills only", result.stderr)

    def test_invalid_jobs_values_are_rejected(self):
        target = self.cluster.conninfo("postgres")
        for value in ("0", "1000", "-1", "two"):
            with self.subTest(jobs=value):
                result = self.stowage("restore", "--repo", self.repo, "latest", "--key", self.key,
                                      "--target", target, "--jobs", value, expect=2)
                self.assertIn("--jobs", result.stderr)
                self.assertIn('"%s"' % value, result.stderr)
                self.assertIn("from 1 to 64", result.stderr)

    def test_spool_dir_without_jobs_is_rejected(self):
        result = self.stowage("restore", "--repo", self.repo, "latest", "--key", self.key,
                              "--target", self.cluster.conninfo("postgres"), "--spool-dir",
                              self.workdir, expect=2)
        self.assertIn("--spool-dir", result.stderr)

    def test_jobs_on_verify_is_rejected(self):
        result = self.stowage("verify", "--repo", self.repo, "latest", "--key", self.key,
                              "--jobs", "2", expect=2)
        self.assertIn("unknown option", result.stderr)
        self.assertIn("--jobs", result.stderr)


def session_processes(session):
    """The command lines of processes in session (stowage's own session and its children)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.getsid(int(entry)) != session:
                continue
            with open("/proc/%s/cmdline" % entry, "rb") as handle:
                found.append(handle.read().replace(b"\0", b" ").decode(errors="replace"))
        except (OSError, ProcessLookupError):
            continue
    return found


class StreamingJobsTest(StowageTestCase):
    """restore --jobs N of a dump without large objects: the schema from pg_restore
    --section=pre-data, the table data over N COPY connections as the dump streams,
    then pg_restore --section=post-data --jobs N."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.cluster.createdb("stream_source")
        with open(os.path.join(HERE, "sql", "copy_streaming.sql")) as handle:
            cls.cluster.psql(handle.read(), db="stream_source")
        cls.repo = "file://" + os.path.join(cls.workdir, "repo")
        os.makedirs(cls.repo[len("file://"):])
        result = run_stowage(["backup", "--repo", cls.repo, "--db",
                              cls.cluster.conninfo("stream_source"), "--recipient", cls.pub,
                              "--json"])
        if result.returncode != 0:
            raise RuntimeError("backup failed: %s" % result.stderr)
        cls.backup_id = json.loads(result.stdout)["id"]

    def restore(self, db, jobs, expect=0, *extra):
        self.cluster.createdb(db)
        return self.stowage("restore", "--repo", self.repo, self.backup_id, "--key", self.key,
                            "--target", self.cluster.conninfo(db), "--jobs", str(jobs),
                            *extra, expect=expect)

    def sequence_values(self, db):
        return self.cluster.query("SELECT schemaname, sequencename, last_value FROM pg_sequences "
                                  "ORDER BY 1, 2", db=db)

    def schema(self, db):
        result = self.cluster.run_tool("pg_dump", "--schema-only", "-d", self.cluster.conninfo(db))
        # pg_dump 15.14 and later wrap the script in \restrict KEY and
        # \unrestrict KEY, with a random key.
        return [line for line in result.stdout.splitlines()
                if not line.startswith(("\\restrict ", "\\unrestrict "))]

    def test_streamed_restore_matches_serial_restore(self):
        self.restore("stream_serial", 1)
        serial_counts = self.row_counts("stream_serial")
        self.assertEqual(self.row_counts("stream_source"), serial_counts)
        for jobs in (2, 4):
            with self.subTest(jobs=jobs):
                db = "stream_jobs_%d" % jobs
                result = self.restore(db, jobs)
                self.assertIn("over %d COPY connections" % jobs, result.stderr)
                self.assertIn("--section=pre-data", result.stderr)
                self.assertIn("--section=post-data", result.stderr)
                self.assertNotIn("spools the whole dump", result.stderr)
                self.assertEqual(serial_counts, self.row_counts(db))
                self.assertEqual(self.sequence_values("stream_serial"), self.sequence_values(db))
                self.assertEqual(self.schema("stream_serial"), self.schema(db))
                self.stowage("verify", "--repo", self.repo, self.backup_id, "--key", self.key,
                             "--against", self.cluster.conninfo(db))

    def test_streamed_restore_keeps_text_exact(self):
        self.restore("stream_text", 2)
        rows = self.cluster.query("SELECT id, \"Wert\" FROM \"ünïcödé\" ORDER BY id",
                                  db="stream_text")
        self.assertEqual([("1", "ḿüłţïƀÿţë"), ("2", "Ελληνικά"), ("3", None)], rows)
        lengths = self.cluster.query("SELECT sum(length(body)) FROM long_rows", db="stream_text")
        self.assertEqual(str(3 * 32 * 100000), lengths[0][0])
        nulls = self.cluster.query("SELECT count(*) FROM sparse WHERE label IS NULL",
                                   db="stream_text")
        self.assertEqual("25000", nulls[0][0])

    def test_streamed_scratch_restore_verifies(self):
        result = self.stowage("restore", "--repo", self.repo, self.backup_id, "--key", self.key,
                              "--scratch", "local", "--verify", "--jobs", "2")
        self.assertIn("passed", result.stdout)
        self.assertIn("COPY connections", result.stderr)

    def test_streamed_restore_needs_no_spool_space(self):
        spool = tempfile.mkdtemp(prefix="spool-", dir=self.workdir)
        if not mount_tmpfs(spool, "1m"):
            self.skipTest("mounting a tmpfs needs root (CAP_SYS_ADMIN)")
        try:
            dump_bytes = self.show_json(self.repo, self.backup_id)["archive"]["dump_bytes"]
            self.assertGreater(dump_bytes, 8 * 1024 * 1024)
            self.restore("stream_small_spool", 2, 0, "--spool-dir", spool)
            self.assertEqual(self.row_counts("stream_source"),
                             self.row_counts("stream_small_spool"))
            self.assertEqual([], os.listdir(spool))
        finally:
            subprocess.run(["umount", spool], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)

    def test_streamed_restore_into_full_spool_dir(self):
        # The streaming mode spools only the dump's header and TOC. When
        # even that finds no room, the message reports it instead of
        # counting against the whole dump's size.
        spool = tempfile.mkdtemp(prefix="spool-", dir=self.workdir)
        if not mount_tmpfs(spool, "1m"):
            self.skipTest("mounting a tmpfs needs root (CAP_SYS_ADMIN)")
        self.addCleanup(subprocess.run, ["umount", spool], stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL)
        filler = os.path.join(spool, "filler")
        with open(filler, "wb") as handle:
            try:
                while True:
                    handle.write(b"\0" * 65536)
                    handle.flush()
            except OSError as error:
                self.assertEqual(errno.ENOSPC, error.errno)
        result = self.restore("stream_full_spool", 2, 1, "--spool-dir", spool)
        self.assertIn("the spool directory %s ran out of space" % spool, result.stderr)
        self.assertIn("header and table of contents", result.stderr)
        self.assertNotIn(" of %d bytes" % self.show_json(self.repo, self.backup_id)
                         ["archive"]["dump_bytes"], result.stderr)
        self.assertIn("--jobs 1", result.stderr)
        self.assertEqual([("0",)], self.cluster.query(
            "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN "
            "('pg_catalog', 'information_schema')", db="stream_full_spool"))
        self.assertEqual(["filler"], os.listdir(spool))

    def test_constraint_violation_names_table(self):
        # The check passes in the source and fails in a target database
        # whose setting lowers the limit: the COPY of that table fails.
        self.cluster.createdb("stream_checked_source")
        self.cluster.psql(
            "CREATE FUNCTION public.within_limit(value int) RETURNS boolean LANGUAGE sql STABLE "
            "AS $$ SELECT value <= coalesce(nullif(current_setting('stowage_test.max_id', true), "
            "''), '1000000000')::int $$; "
            "CREATE TABLE checked (id int CHECK (public.within_limit(id))); "
            "INSERT INTO checked SELECT generate_series(1, 5000); "
            "CREATE TABLE other (id int); INSERT INTO other VALUES (1)",
            db="stream_checked_source")
        repo = self.file_repo()
        self.stowage("backup", "--repo", repo, "--db",
                     self.cluster.conninfo("stream_checked_source"), "--recipient", self.pub)
        self.cluster.createdb("stream_checked")
        self.cluster.psql("ALTER DATABASE stream_checked SET stowage_test.max_id = '100'")
        result = self.stowage("restore", "--repo", repo, "latest", "--key", self.key, "--target",
                              self.cluster.conninfo("stream_checked"), "--jobs", "2", expect=1)
        self.assertIn("loading table public.checked failed", result.stderr)
        self.assertIn("violates check constraint", result.stderr)
        self.assertIn("(COPY checked, line ", result.stderr)
        self.assertNotIn("Failing row contains", result.stderr)
        self.assertIn("partly restored", result.stderr)
        self.assertIn("hint: the target database stream_checked is partly restored",
                      result.stdout)
        self.assertEqual("0", self.cluster.query("SELECT count(*) FROM checked",
                                                 db="stream_checked")[0][0])

    def user_objects(self, db):
        return self.cluster.query(
            "SELECT count(*) FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' "
            "AND nspname NOT IN ('public', 'information_schema')", db=db)[0][0]

    def test_failed_pre_data_leaves_target_unchanged(self):
        # pre-data runs in one transaction: an object that already exists
        # fails it, and no schema of the dump stays behind.
        self.cluster.createdb("stream_pre_fail2")
        self.cluster.psql("CREATE SCHEMA zz_first; CREATE TABLE public.sparse (x int)",
                          db="stream_pre_fail2")
        before = self.user_objects("stream_pre_fail2")
        result = self.stowage("restore", "--repo", self.repo, self.backup_id, "--key", self.key,
                              "--target", self.cluster.conninfo("stream_pre_fail2"),
                              "--jobs", "2", expect=None)
        self.assertNotEqual(0, result.returncode)
        self.assertEqual(before, self.user_objects("stream_pre_fail2"))

    def test_connection_limit_fails_before_schema(self):
        self.cluster.psql("CREATE ROLE stream_limited LOGIN CONNECTION LIMIT 3")
        self.cluster.createdb("stream_limited_db")
        self.cluster.psql("ALTER DATABASE stream_limited_db OWNER TO stream_limited")
        conninfo = self.cluster.conninfo("stream_limited_db").replace("user=postgres",
                                                                      "user=stream_limited")
        self.assertIn("user=stream_limited", conninfo)
        result = self.stowage("restore", "--repo", self.repo, self.backup_id, "--key", self.key,
                              "--target", conninfo, "--jobs", "3", "--no-owner", expect=None)
        self.assertNotEqual(0, result.returncode)
        self.assertIn("lower --jobs", result.stderr)
        self.assertEqual("0", self.cluster.query(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')",
            db="stream_limited_db")[0][0])

    def test_sigterm_during_copy_stops_everything(self):
        # Every row of the target's copy sleeps, so the COPY is still running
        # when the signal arrives.
        self.cluster.createdb("stream_slow_source")
        self.cluster.psql(
            "CREATE FUNCTION public.slow_check(value int) RETURNS boolean LANGUAGE sql "
            "AS $$ SELECT pg_sleep(coalesce(nullif(current_setting('stowage_test.sleep', true), "
            "''), '0')::float8) IS NOT NULL $$; "
            "CREATE TABLE slow (id int CHECK (public.slow_check(id))); "
            "INSERT INTO slow SELECT generate_series(1, 20000)",
            db="stream_slow_source")
        repo = self.file_repo()
        self.stowage("backup", "--repo", repo, "--db", self.cluster.conninfo("stream_slow_source"),
                     "--recipient", self.pub)
        self.cluster.createdb("stream_slow")
        self.cluster.psql("ALTER DATABASE stream_slow SET stowage_test.sleep = '0.01'")
        copying = ("SELECT count(*) FROM pg_stat_activity WHERE datname = 'stream_slow' "
                   "AND state = 'active' AND query LIKE 'COPY%'")

        process = spawn_stowage(["restore", "--repo", repo, "latest", "--key", self.key,
                                 "--target", self.cluster.conninfo("stream_slow"), "--jobs", "2"])
        try:
            deadline = time.time() + 60
            while time.time() < deadline and process.poll() is None:
                if self.cluster.query(copying)[0][0] != "0":
                    break
                time.sleep(0.1)
            self.assertIsNone(process.poll(), "the restore ended before its COPY was seen")
            self.assertNotEqual("0", self.cluster.query(copying)[0][0])
            stdout, stderr = terminate(process)
        finally:
            kill_if_running(process)
        self.assertEqual(130, process.returncode, stderr)
        self.assertIn("SIGTERM", stderr)
        self.assertEqual([], session_processes(process.pid))
        deadline = time.time() + 10
        while time.time() < deadline and self.cluster.query(copying)[0][0] != "0":
            time.sleep(0.1)
        self.assertEqual("0", self.cluster.query(copying)[0][0])


if __name__ == "__main__":
    unittest.main()
