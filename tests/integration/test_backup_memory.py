"""Peak memory of stowage backup and restore when the store is slow: the
part buffers are a fixed pool, so parts waiting on S3 cannot pile up."""

import json
import subprocess
import unittest

from support import StowageTestCase

from harness import FaultProxy
from harness.faultproxy import STALL
from harness.stowage import check_sanitizer_report, stowage_binary, stowage_environment

# The target at default settings (8 MiB parts, 4 transfers, zstd level 3
# with 2 threads). scripts/bench/memory.sh measured 79 to 84 MiB for a
# backup to S3 and at most 60 MiB for a restore from S3 on a 2-vCPU machine.
PEAK_RSS_LIMIT_KIB = 100 * 1024
# Every UploadPart and ranged GET waits this long before the proxy
# forwards it, so that every transfer is in flight while the dump goes on.
STALL_SECONDS = 1.5


def is_sanitizer_build(binary):
    with open(binary, "rb") as handle:
        return b"__asan_init" in handle.read()


@unittest.skipIf(is_sanitizer_build(stowage_binary()),
                 "AddressSanitizer's shadow memory makes peak RSS meaningless")
class BackupMemoryTest(StowageTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # About 200 MB of hexadecimal text, which zstd shrinks about 2:1: a
        # backup of about 12 parts of 8 MiB, more than 4 transfers keep in
        # flight.
        cls.cluster.createdb("wide")
        cls.cluster.psql("CREATE TABLE wide AS SELECT g AS id, md5(g::text) || md5((g * 7)::text) "
                         "AS filler FROM generate_series(1, 2400000) g", db="wide")

    def run_measured(self, *args, env=None):
        """Run stowage under GNU time; return (stdout, stderr, peak RSS in KiB)."""
        command = ["/usr/bin/time", "-f", "peak-rss-kib %M", stowage_binary(), *args]
        result = subprocess.run(command, env=stowage_environment(env), capture_output=True,
                                text=True, timeout=600, stdin=subprocess.DEVNULL)
        check_sanitizer_report(result.stderr)
        self.assertEqual(0, result.returncode, "stowage %s failed:\n%s" % (args[0], result.stderr))
        lines = [line for line in result.stderr.splitlines() if line.startswith("peak-rss-kib ")]
        self.assertEqual(1, len(lines), result.stderr)
        return result.stdout, result.stderr, int(lines[0].split()[1])

    def test_slow_store_keeps_backup_under_bound(self):
        bucket = self.new_bucket()
        repo = "s3://%s/slow" % bucket
        with FaultProxy(self.moto) as proxy:
            proxy.add_fault(STALL, method="PUT", query=r"partNumber=", count=None,
                            seconds=STALL_SECONDS)
            env = self.s3_env(AWS_ENDPOINT_URL=proxy.endpoint)
            stdout, stderr, peak_kib = self.run_measured(
                "backup", "--repo", repo, "--db", self.cluster.conninfo("wide"),
                "--recipient", self.pub, "--json", "--log-level", "detail", env=env)
            stalled = [r for r in proxy.requests if r.fault]

        manifest = self.show_json(repo, json.loads(stdout)["id"], env=self.s3_env())
        self.assertGreaterEqual(len(manifest["object"]["parts"]), 10)
        self.assertEqual(len(manifest["object"]["parts"]), len(stalled))
        self.assertIn("allocated 5 part buffers of 8388608 bytes", stderr)
        self.assertLess(peak_kib, PEAK_RSS_LIMIT_KIB,
                        "backup peak RSS %d KiB with a slow store" % peak_kib)

    def test_slow_store_keeps_restore_under_bound(self):
        bucket = self.new_bucket()
        repo = "s3://%s/slow" % bucket
        result = self.backup(repo, "wide", "--json", env=self.s3_env())
        backup_id = json.loads(result.stdout)["id"]
        with FaultProxy(self.moto) as proxy:
            proxy.add_fault(STALL, method="GET", path=r"/data\.stow$", count=None,
                            seconds=STALL_SECONDS)
            env = self.s3_env(AWS_ENDPOINT_URL=proxy.endpoint)
            self.cluster.createdb("wide_copy")
            _, stderr, peak_kib = self.run_measured(
                "restore", "--repo", repo, backup_id, "--key", self.key,
                "--target", self.cluster.conninfo("wide_copy"), "--log-level", "detail", env=env)
            stalled = [r for r in proxy.requests if r.fault]

        # The first part alone, then two parts per ranged GET, two GETs of
        # 16 MiB ahead: the same 40 MiB of buffers as one GET per part with
        # four ahead.
        parts = self.show_json(repo, backup_id, env=self.s3_env())["object"]["parts"]
        self.assertGreaterEqual(len(parts), 10)
        self.assertEqual(1 + len(parts) // 2, len(stalled))
        self.assertIn("allocated 2 fetch buffers of 16777216 bytes and one part buffer of "
                      "8388608 bytes", stderr)
        self.assertLess(peak_kib, PEAK_RSS_LIMIT_KIB,
                        "restore peak RSS %d KiB with a slow store" % peak_kib)


if __name__ == "__main__":
    unittest.main()
