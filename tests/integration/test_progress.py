"""End-to-end tests of the progress line on stderr.

The tests run stowage with stderr on a pipe, where the line is off unless
--progress forces it, and on a pseudo-terminal, where it is on unless the
logs are JSON. A forced run must show the rate, and the ETA when
the total is known (verify, restore, extract, replicate) or the parts
uploaded (backup). Log lines must never share a line with the progress
text: the logger erases the line ("\\r\\033[K") before it writes.
"""

import errno
import os
import pty
import re
import subprocess

from support import SMALL_PART, StowageTestCase

from harness import run_stowage
from harness.stowage import check_sanitizer_report, spawn_stowage

ERASE_LINE = "\r\x1b[K"
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (error|warn|info|detail|debug) ")
# Lets a file:// repository take parts below S3's 5 MiB minimum.
SMALL_PARTS = {"STOWAGE_MIN_PART_SIZE": str(SMALL_PART)}
SIZE = r"[\d.]+ (B|KiB|MiB|GiB)"
BACKUP_LINE = re.compile(r"^backup: %s dumped, %s/s, \d+ parts? uploaded$" % (SIZE, SIZE))


def known_total_line(command, action):
    """Return the pattern of a progress line with a known total."""
    return re.compile(r"^%s: %s of %s %s \(\d+%%\), %s/s, ETA (\d+:)?\d+:\d\d$"
                      % (command, SIZE, SIZE, action, SIZE))


def progress_lines(stderr):
    """Return the progress texts in stderr: the pieces that are not log lines."""
    lines = []
    for line in stderr.split("\n"):
        for piece in line.split(ERASE_LINE):
            if piece and not LOG_LINE.match(piece):
                lines.append(piece)
    return lines


class ProgressTest(StowageTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.cluster.createdb("progress")
        cls.cluster.pgbench_init(scale=2, db="progress")

    def setUp(self):
        self.repo = self.file_repo()
        self.backup(self.repo, "progress", "--part-size", "64KiB", env=SMALL_PARTS)

    def run_raw(self, *args, env=None):
        """Run stowage, expect success, and return its stderr with carriage returns kept."""
        result = run_stowage(list(args), env=env, text=False, timeout=600)
        stderr = result.stderr.decode(errors="replace")
        self.assertEqual(0, result.returncode, "stowage %s exited %d\nstderr:\n%s"
                         % (" ".join(args), result.returncode, stderr))
        return stderr

    def run_on_terminal(self, *args):
        """Run stowage with stderr on a pseudo-terminal; return what it wrote there."""
        controller, terminal = pty.openpty()
        process = spawn_stowage(list(args), stdout=subprocess.DEVNULL, stderr=terminal)
        os.close(terminal)
        output = b""
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError as error:  # EIO once the terminal side is closed
                if error.errno != errno.EIO:
                    raise
                break
            if not chunk:
                break
            output += chunk
        os.close(controller)
        self.assertEqual(0, process.wait(timeout=600), output)
        text = output.decode(errors="replace").replace("\r\n", "\n")
        check_sanitizer_report(text)
        return text

    def assert_lines_apart(self, stderr):
        """Check that no log line starts after progress text on the same line."""
        for line in stderr.split("\n"):
            pieces = line.split(ERASE_LINE)
            for piece in pieces[:-1]:
                self.assertNotRegex(piece, LOG_LINE, "a log line was overwritten: %r" % line)
            self.assertFalse(any(LOG_LINE.search(p) and not LOG_LINE.match(p) for p in pieces),
                             "a log line follows progress text: %r" % line)

    def test_backup_progress_forced(self):
        stderr = self.run_raw("backup", "--repo", self.file_repo(), "--db",
                              self.cluster.conninfo("progress"), "--recipient", self.pub,
                              "--part-size", "64KiB", "--progress", "--log-level", "detail",
                              env=SMALL_PARTS)
        lines = progress_lines(stderr)
        self.assertTrue(lines, stderr)
        for line in lines:
            self.assertRegex(line, BACKUP_LINE)
        parts = int(re.search(r"(\d+) parts? uploaded$", lines[-1]).group(1))
        self.assertGreaterEqual(parts, 2, lines[-1])
        self.assert_lines_apart(stderr)

    def test_verify_progress_forced(self):
        stderr = self.run_raw("verify", "--repo", self.repo, "latest", "--key", self.key,
                              "--progress", "--log-level", "detail")
        lines = progress_lines(stderr)
        self.assertTrue(lines, stderr)
        pattern = known_total_line("verify", "read")
        for line in lines:
            self.assertRegex(line, pattern)
        self.assertRegex(lines[-1], r"\(100%\), .*, ETA 0:00$")
        self.assert_lines_apart(stderr)

    def test_restore_progress_forced(self):
        self.cluster.createdb("progress_restored")
        stderr = self.run_raw("restore", "--repo", self.repo, "latest", "--key", self.key,
                              "--target", self.cluster.conninfo("progress_restored"),
                              "--progress")
        lines = progress_lines(stderr)
        self.assertTrue(lines, stderr)
        for line in lines:
            self.assertRegex(line, known_total_line("restore", "read"))

    def test_replicate_progress_forced(self):
        replica = self.file_repo()
        stderr = self.run_raw("replicate", "--repo", self.repo, "--to", replica, "--progress")
        lines = progress_lines(stderr)
        self.assertTrue(any(known_total_line("replicate", "copied").match(l) for l in lines),
                        stderr)
        self.assertTrue(all(known_total_line("replicate", "(copied|checked)").match(l)
                            for l in lines), lines)

    def test_terminal_shows_progress(self):
        stderr = self.run_on_terminal("verify", "--repo", self.repo, "latest", "--key", self.key)
        lines = progress_lines(stderr)
        self.assertTrue(lines, stderr)
        for line in lines:
            self.assertRegex(line, known_total_line("verify", "read"))

    def test_terminal_json_logs_quiet(self):
        stderr = self.run_on_terminal("verify", "--repo", self.repo, "latest", "--key", self.key,
                                      "--log-format", "json")
        self.assertNotIn("\x1b[K", stderr)
        self.assertNotIn("ETA", stderr)

    def test_progress_with_json_logs_rejected(self):
        repo = self.file_repo()
        for order in (["--progress", "--log-format", "json"],
                      ["--log-format", "json", "--progress"]):
            result = run_stowage(["backup", "--repo", repo, "--db",
                                  self.cluster.conninfo("progress"), "--recipient", self.pub]
                                 + order, text=False)
            stderr = result.stderr.decode(errors="replace")
            self.assertEqual(2, result.returncode, stderr)
            self.assertIn("--progress cannot be used with --log-format json", stderr)
            self.assertNotIn("\x1b[K", stderr)
        listing = run_stowage(["list", "--repo", repo, "--json"])
        self.assertEqual("[]", listing.stdout.strip())

    def test_pipe_without_flag_quiet(self):
        stderr = self.run_raw("verify", "--repo", self.repo, "latest", "--key", self.key)
        self.assertEqual([], progress_lines(stderr))
        self.assertNotIn("\x1b[K", stderr)
        self.assertNotIn("ETA", stderr)

    def test_no_progress_wins(self):
        stderr = self.run_raw("verify", "--repo", self.repo, "latest", "--key", self.key,
                              "--progress", "--no-progress")
        self.assertNotIn("\x1b[K", stderr)
        self.assertNotIn("ETA", stderr)
