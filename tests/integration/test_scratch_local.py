"""Local scratch clusters (restore/scratch_local.c), driven through tests/tools/scratch_tool.

The tool sits next to the stowage binary: os.path.dirname(STOWAGE_BIN)/scratch_tool.
Each test gives the tool its own STOWAGE_SCRATCH_DIR, so that "nothing is
left" can be checked by listing that directory and by looking for processes
whose working directory lies inside it (a postmaster and its children run
in the data directory).
"""

import os
import pwd
import select
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from harness import REPO_ROOT, clean_environment, processes_in, wait_until  # noqa: E402
from harness.stowage import check_sanitizer_report  # noqa: E402

MAJOR = "15"
PG_BIN_DIR = "/usr/lib/postgresql/%s/bin" % MAJOR
INTERRUPTED_EXIT = 130
USAGE_EXIT = 2
FAILURE_EXIT = 1
TOOL_TIMEOUT = 180


def tool_path():
    """Return the scratch_tool binary next to STOWAGE_BIN (else in build/)."""
    stowage = os.environ.get("STOWAGE_BIN") or os.path.join(REPO_ROOT, "build", "stowage")
    return os.path.join(os.path.dirname(stowage), "scratch_tool")


def is_root():
    return os.geteuid() == 0


def postgres_user():
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        return None


def parse_facts(stdout):
    """Return the tool's "name: value" lines as a dict."""
    facts = {}
    for line in stdout.splitlines():
        name, separator, value = line.partition(": ")
        if separator:
            facts[name] = value
    return facts


def process_uid(pid):
    with open("/proc/%d/status" % pid) as handle:
        for line in handle:
            if line.startswith("Uid:"):
                return int(line.split()[2])  # effective uid
    raise AssertionError("no Uid line for process %d" % pid)


class ScratchLocalTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.tool = tool_path()
        if not os.access(cls.tool, os.X_OK):
            raise AssertionError("%s not found or not executable; build the scratch_tool "
                                 "target or set STOWAGE_BIN" % cls.tool)
        if not os.access(os.path.join(PG_BIN_DIR, "initdb"), os.X_OK):
            raise unittest.SkipTest("PostgreSQL %s server programs are not installed" % MAJOR)

    def setUp(self):
        # Parents of the scratch directory must let the server's user enter.
        self.base = tempfile.mkdtemp(prefix="stowage-scratch-test-", dir="/tmp")
        os.chmod(self.base, 0o755)
        self.mounted = False
        self.processes = []

    def tearDown(self):
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)
            for stream in (process.stdout, process.stderr):
                if stream is not None:
                    stream.close()
        for pid in processes_in(self.base):
            os.kill(pid, signal.SIGKILL)
        if self.mounted:
            subprocess.run(["umount", self.base], check=False)
        shutil.rmtree(self.base, ignore_errors=True)

    # Running the tool ----------------------------------------------------------

    def environment(self, extra=None):
        env = clean_environment({"STOWAGE_SCRATCH_DIR": self.base})
        env.pop("STOWAGE_PG_BINDIR", None)
        if extra:
            env.update(extra)
        return env

    def run_tool(self, mode="create", major=MAJOR, env=None, prefix=()):
        """Run the tool to its end; return the CompletedProcess (text)."""
        result = subprocess.run(list(prefix) + [self.tool, mode, major], env=self.environment(env),
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, timeout=TOOL_TIMEOUT)
        check_sanitizer_report(result.stderr)
        return result

    def spawn_hold(self, env=None):
        process = subprocess.Popen([self.tool, "hold", MAJOR], env=self.environment(env),
                                   stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True, start_new_session=True)
        self.processes.append(process)
        return process

    def wait_ready(self, process):
        """Read the tool's stdout until "ready"; return the facts printed before it.

        Reads the file descriptor directly, because select() cannot see lines
        already buffered inside a Python file object.
        """
        output = b""
        deadline = time.monotonic() + TOOL_TIMEOUT
        while b"ready\n" not in output:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.fail("scratch_tool hold was not ready within %d s; stdout so far:\n%s"
                          % (TOOL_TIMEOUT, output.decode(errors="replace")))
            readable, _, _ = select.select([process.stdout.fileno()], [], [], min(remaining, 1.0))
            if not readable:
                continue
            chunk = os.read(process.stdout.fileno(), 4096)
            if chunk == b"":
                self.fail("scratch_tool hold exited with %s before ready:\n%s"
                          % (process.wait(10), process.stderr.read()))
            output += chunk
        return parse_facts(output.decode())

    def stop_hold(self, process, signum):
        process.send_signal(signum)
        stdout, stderr = process.communicate(timeout=TOOL_TIMEOUT)
        check_sanitizer_report(stderr)
        return process.returncode, stderr

    # Checks ----------------------------------------------------------------

    def assert_cluster_gone(self, facts):
        directory = facts["directory"]
        self.assertTrue(directory.startswith(self.base + "/"), directory)
        self.assertFalse(os.path.exists(directory), "scratch directory %s remains" % directory)
        self.assertEqual(processes_in(directory), [], "processes remain in %s" % directory)
        self.assertEqual(os.listdir(self.base), [])

    def assert_base_empty(self):
        self.assertEqual(os.listdir(self.base), [])
        self.assertEqual(processes_in(self.base), [])

    # Tests -------------------------------------------------------------------

    def test_create_query_and_remove(self):
        result = self.run_tool()

        self.assertEqual(result.returncode, 0, result.stderr)
        facts = parse_facts(result.stdout)
        database, user, total, fsync, version = facts["query"].split()
        self.assertEqual(database, "scratchtest")
        self.assertEqual(user, "stowage")
        self.assertEqual(total, "500500")
        self.assertEqual(fsync, "off")
        self.assertEqual(version[:2], MAJOR)
        self.assertIn("host='%s'" % facts["directory"], facts["conninfo"])
        self.assertIn("dbname='scratchtest'", facts["conninfo"])
        self.assertGreater(int(facts["postmaster_pid"]), 0)
        self.assertIn("started scratch PostgreSQL %s in %s on port %s"
                      % (MAJOR, facts["directory"], facts["port"]), result.stderr)
        self.assertIn("stopped scratch PostgreSQL %s on port %s and removed %s"
                      % (MAJOR, facts["port"], facts["directory"]), result.stderr)
        self.assert_cluster_gone(facts)

    def test_hold_sigterm_removes_cluster(self):
        process = self.spawn_hold()
        facts = self.wait_ready(process)
        self.assertTrue(os.path.isdir(facts["directory"]))
        self.assertIn(int(facts["postmaster_pid"]), processes_in(facts["directory"]))

        code, stderr = self.stop_hold(process, signal.SIGTERM)

        self.assertEqual(code, INTERRUPTED_EXIT, stderr)
        self.assertIn("interrupted by SIGTERM", stderr)
        self.assert_cluster_gone(facts)

    def test_hold_sigint_removes_cluster(self):
        process = self.spawn_hold()
        facts = self.wait_ready(process)

        code, stderr = self.stop_hold(process, signal.SIGINT)

        self.assertEqual(code, INTERRUPTED_EXIT, stderr)
        self.assertIn("interrupted by SIGINT", stderr)
        self.assert_cluster_gone(facts)

    def test_interrupt_during_create_cleans_up(self):
        process = self.spawn_hold()
        wait_until(lambda: os.listdir(self.base), timeout=TOOL_TIMEOUT,
                   description="the scratch directory to appear")

        code, stderr = self.stop_hold(process, signal.SIGTERM)

        self.assertEqual(code, INTERRUPTED_EXIT, stderr)
        self.assertIn("interrupted by SIGTERM", stderr)
        self.assert_base_empty()

    @unittest.skipUnless(is_root() and postgres_user(), "needs root and a postgres user")
    def test_root_runs_server_as_postgres(self):
        process = self.spawn_hold()
        facts = self.wait_ready(process)

        self.assertEqual(facts["run_user"], "postgres")
        postmaster = int(facts["postmaster_pid"])
        self.assertEqual(process_uid(postmaster), postgres_user().pw_uid)
        info = os.stat(facts["directory"])
        self.assertEqual(info.st_uid, postgres_user().pw_uid)
        self.assertEqual(stat.S_IMODE(info.st_mode), 0o700)

        code, stderr = self.stop_hold(process, signal.SIGTERM)
        self.assertEqual(code, INTERRUPTED_EXIT, stderr)
        self.assert_cluster_gone(facts)

    @unittest.skipUnless(is_root() and postgres_user(), "needs root and a postgres user")
    def test_unprivileged_caller_runs_server_itself(self):
        os.chown(self.base, postgres_user().pw_uid, postgres_user().pw_gid)
        prefix = ["setpriv", "--reuid=postgres", "--regid=postgres", "--clear-groups", "--"]

        result = self.run_tool(prefix=prefix)

        self.assertEqual(result.returncode, 0, result.stderr)
        facts = parse_facts(result.stdout)
        self.assertEqual(facts["run_user"], "postgres")
        self.assertEqual(facts["query"].split()[2], "500500")
        self.assert_cluster_gone(facts)

    @unittest.skipUnless(is_root() and postgres_user(), "needs root and a postgres user")
    def test_untraversable_base_rejected(self):
        os.chmod(self.base, 0o700)

        result = self.run_tool()

        self.assertEqual(result.returncode, FAILURE_EXIT, result.stderr)
        self.assertIn("user postgres cannot enter %s" % self.base, result.stderr)
        self.assertIn("STOWAGE_SCRATCH_DIR", result.stderr)
        self.assert_base_empty()

    def test_tcp_login_needs_password(self):
        process = self.spawn_hold()
        facts = self.wait_ready(process)

        login = subprocess.run(
            [os.path.join(PG_BIN_DIR, "psql"), "-X", "-w", "-h", "127.0.0.1", "-p", facts["port"],
             "-U", "stowage", "-d", "postgres", "-c", "SELECT 1"],
            env=clean_environment({"PGCONNECT_TIMEOUT": "10"}), stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, timeout=60)

        self.assertNotEqual(login.returncode, 0, login.stdout)
        self.assertIn("password", login.stderr)
        code, stderr = self.stop_hold(process, signal.SIGTERM)
        self.assertEqual(code, INTERRUPTED_EXIT, stderr)
        self.assert_cluster_gone(facts)

    def test_server_environment_has_no_secrets(self):
        secret = "scratch-test-secret-value"
        process = self.spawn_hold(env={"AWS_SECRET_ACCESS_KEY": secret, "PGPASSWORD": secret,
                                       "PGOPTIONS": "-c work_mem=64kB"})
        facts = self.wait_ready(process)

        # The postmaster never rewrites its process title, so its original
        # environment is still readable in /proc.
        with open("/proc/%s/environ" % facts["postmaster_pid"], "rb") as handle:
            environment = handle.read().split(b"\0")
        self.assertNotIn(secret.encode(), b"\0".join(environment))
        names = [entry.partition(b"=")[0] for entry in environment]
        self.assertNotIn(b"AWS_SECRET_ACCESS_KEY", names)
        self.assertNotIn(b"PGPASSWORD", names)
        self.assertNotIn(b"PGOPTIONS", names)
        self.assertIn(b"LC_ALL=C", environment)
        code, stderr = self.stop_hold(process, signal.SIGTERM)
        self.assertEqual(code, INTERRUPTED_EXIT, stderr)
        self.assert_cluster_gone(facts)

    def test_missing_major_names_package(self):
        result = self.run_tool(major="98")

        self.assertEqual(result.returncode, USAGE_EXIT, result.stderr)
        self.assertIn("no initdb for PostgreSQL 98 found", result.stderr)
        self.assertIn("install the server package postgresql-98", result.stderr)
        self.assert_base_empty()

    def test_bindir_of_other_major_rejected(self):
        result = self.run_tool(major="14", env={"STOWAGE_PG_BINDIR": PG_BIN_DIR})

        self.assertEqual(result.returncode, USAGE_EXIT, result.stderr)
        self.assertIn("%s/postgres is not PostgreSQL 14" % PG_BIN_DIR, result.stderr)
        self.assert_base_empty()

    def test_invalid_base_directory_rejected(self):
        spaced = os.path.join(self.base, "with space")
        os.mkdir(spaced)

        result = self.run_tool(env={"STOWAGE_SCRATCH_DIR": spaced})

        self.assertEqual(result.returncode, USAGE_EXIT, result.stderr)
        self.assertIn("invalid scratch base directory %s" % spaced, result.stderr)
        self.assertEqual(os.listdir(spaced), [])

    @unittest.skipUnless(is_root(), "mounting a small tmpfs needs root")
    def test_disk_full_names_directory(self):
        # 3 MiB has room for the directory but not for the WAL segment that initdb writes.
        mount = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m,mode=0755", "tmpfs", self.base],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if mount.returncode != 0:
            self.skipTest("mounting a tmpfs failed: %s" % mount.stdout.strip())
        self.mounted = True

        result = self.run_tool()

        self.assertEqual(result.returncode, FAILURE_EXIT, result.stderr)
        self.assertIn("initdb of PostgreSQL %s in %s/stowage-scratch-" % (MAJOR, self.base),
                      result.stderr)
        self.assertIn("no space left on device", result.stderr)
        self.assertIn("free space on the file system of %s" % self.base, result.stderr)
        self.assert_base_empty()


if __name__ == "__main__":
    unittest.main()
