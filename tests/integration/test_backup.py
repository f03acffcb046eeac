"""End-to-end tests of stowage backup, list and show against a real
PostgreSQL server, a file:// repository and moto's S3."""

import json
import os
import signal
import subprocess
import time
import unittest

from support import (SMALL_PART, StowageTestCase, fake_pg_bindir, object_keys, open_uploads,
                     sha256_hex)

from harness import FaultProxy
from harness.stowage import stowage_binary, stowage_environment
from harness.faultproxy import DROP_BEFORE_RESPONSE, INTERNAL_ERROR, SLOW_DOWN


def direct_io_supported(directory):
    """Return True when files in directory can be opened with O_DIRECT."""
    path = os.path.join(directory, ".direct-io-probe")
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_DIRECT, 0o600))
        return True
    except OSError:
        return False
    finally:
        # The probe goes whether or not the open succeeded.
        if os.path.exists(path):
            os.unlink(path)


class BackupTest(StowageTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.cluster.createdb("bench")
        cls.cluster.pgbench_init(scale=2, db="bench")
        cls.cluster.createdb("empty")
        # About 4 MB of hexadecimal text that zstd shrinks only about 2:1, so
        # the stored object spans many small parts.
        cls.cluster.createdb("noise")
        cls.cluster.psql("CREATE TABLE noise AS SELECT g AS id, md5(g::text) || md5((g * 7)::text) "
                         "AS filler FROM generate_series(1, 60000) g", db="noise")

    def test_file_repository_round_trip(self):
        repo = self.file_repo()
        result = self.backup(repo, "bench")
        self.assertIn("complete", result.stdout)

        listing = self.list_json(repo)
        self.assertEqual(1, len(listing))
        backup_id = listing[0]["id"]
        self.assertEqual("bench", listing[0]["name"])
        self.assertTrue(listing[0]["encrypted"])

        manifest = self.show_json(repo, backup_id)
        tables = {t["name"]: t["rows"] for t in manifest["contents"]["tables"]}
        self.assertEqual(200000, tables["pgbench_accounts"])
        self.assertEqual(20, tables["pgbench_tellers"])
        with open(self.pub) as handle:
            key_id = handle.read().split()[1]
        self.assertEqual([key_id], [r["key_id"] for r in manifest["encryption"]["recipients"]])

        self.extract_and_restore(repo, backup_id, "bench_copy_file")
        self.assertEqual(self.row_counts("bench"), self.row_counts("bench_copy_file"))

    def test_s3_backup_reads_back_with_independent_clients(self):
        bucket = self.new_bucket()
        repo = "s3://%s/nightly" % bucket
        self.backup(repo, "noise", "--part-size", "256KiB", env=self.s3_env())

        keys = object_keys(self.moto, bucket)
        listed = self.moto.aws("s3", "ls", "--recursive", "s3://%s/" % bucket).stdout
        data_key = [k for k in keys if k.endswith("/data.stow")][0]
        manifest_key = [k for k in keys if k.endswith("/manifest.json")][0]
        self.assertIn(data_key, listed)
        self.assertIn(manifest_key, listed)

        client = self.moto.client("s3")
        manifest = json.loads(client.get_object(Bucket=bucket, Key=manifest_key)["Body"].read())
        stored = client.get_object(Bucket=bucket, Key=data_key)["Body"].read()
        self.assertEqual(manifest["object"]["stored_bytes"], len(stored))
        self.assertGreater(len(manifest["object"]["parts"]), 2)
        for part in manifest["object"]["parts"]:
            piece = stored[part["offset"]:part["offset"] + part["size"]]
            self.assertEqual(part["sha256"], sha256_hex(piece), "part %d" % part["number"])

        self.extract_and_restore(repo, manifest["id"], "noise_copy_s3", env=self.s3_env())
        self.assertEqual(self.row_counts("noise"), self.row_counts("noise_copy_s3"))

    def test_pgbench_scale_10_to_s3_restores_with_pg_restore(self):
        self.cluster.createdb("scale10")
        self.cluster.pgbench_init(scale=10, db="scale10")
        bucket = self.new_bucket()
        repo = "s3://%s/pgbench" % bucket
        result = self.backup(repo, "scale10", "--json", env=self.s3_env())
        backup_id = json.loads(result.stdout)["id"]

        listed = self.moto.aws("s3", "ls", "--recursive", "s3://%s/" % bucket).stdout
        self.assertIn("pgbench/backups/scale10/%s/data.stow" % backup_id, listed)
        self.assertIn("pgbench/backups/scale10/%s/manifest.json" % backup_id, listed)

        manifest = self.show_json(repo, backup_id, env=self.s3_env())
        client = self.moto.client("s3")
        for part in manifest["object"]["parts"]:
            body = client.get_object(Bucket=bucket, Key="pgbench/" + manifest["object"]["key"],
                                     Range="bytes=%d-%d" % (part["offset"],
                                                            part["offset"] + part["size"] - 1))
            self.assertEqual(part["sha256"], sha256_hex(body["Body"].read()))
        rows = {t["name"]: t["rows"] for t in manifest["contents"]["tables"]}
        self.assertEqual(1000000, rows["pgbench_accounts"])

        self.extract_and_restore(repo, backup_id, "scale10_copy", env=self.s3_env())
        self.assertEqual(self.row_counts("scale10"), self.row_counts("scale10_copy"))

    def test_part_size_grows_with_part_count(self):
        repo = self.file_repo()
        self.backup(repo, "noise", "--part-size", "64KiB", "--part-growth-interval", "3",
                    env={"STOWAGE_MIN_PART_SIZE": str(SMALL_PART)})
        manifest = self.show_json(repo, "latest")
        sizes = [p["size"] for p in manifest["object"]["parts"]]
        self.assertGreater(len(sizes), 6)
        self.assertEqual([65536] * 3, sizes[:3])
        self.assertEqual([131072] * 3, sizes[3:6])
        self.assertLessEqual(sizes[-1], 65536 * 2 ** ((len(sizes) - 1) // 3))

    def test_file_parts_unaligned_sizes(self):
        # Parts go to disk with O_DIRECT in multiples of 4096 bytes, and
        # through the page cache otherwise: after a part of 65537 bytes the
        # offsets are out of alignment, and every object ends with a tail.
        repo = self.file_repo()
        root = repo[len("file://"):]
        for part_size in ("65536", "65537"):
            result = self.backup(repo, "noise", "--part-size", part_size, "--json",
                                 "--log-level", "detail",
                                 env={"STOWAGE_MIN_PART_SIZE": str(SMALL_PART)})
            backup_id = json.loads(result.stdout)["id"]
            manifest = self.show_json(repo, backup_id)
            parts = manifest["object"]["parts"]
            self.assertGreater(len(parts), 3)
            self.assertEqual(int(part_size), parts[0]["size"])

            with open(os.path.join(root, manifest["object"]["key"]), "rb") as handle:
                stored = handle.read()
            self.assertEqual(sum(p["size"] for p in parts), len(stored))
            for part in parts:
                body = stored[part["offset"]:part["offset"] + part["size"]]
                self.assertEqual(part["sha256"], sha256_hex(body), part)
            self.stowage("verify", "--repo", repo, backup_id, "--key", self.key)

            # The detail log names an object that stays in the page cache.
            direct = direct_io_supported(root)
            self.assertEqual(not direct, "through the page cache" in result.stderr, result.stderr)

    def test_empty_database(self):
        repo = self.file_repo()
        self.backup(repo, "empty")
        manifest = self.show_json(repo, "latest")
        self.assertEqual([], manifest["contents"]["tables"])

    def test_no_recipient_is_refused(self):
        repo = self.file_repo()
        result = self.stowage("backup", "--repo", repo, "--db", self.cluster.conninfo("bench"),
                              expect=2)
        self.assertIn("no recipient given", result.stderr)
        self.assertIn("--no-encryption", result.stderr)

    def test_no_encryption_only_when_asked(self):
        repo = self.file_repo()
        result = self.stowage("backup", "--repo", repo, "--db", self.cluster.conninfo("empty"),
                              "--no-encryption")
        self.assertIn("encryption is off", result.stderr)
        self.assertFalse(self.list_json(repo)[0]["encrypted"])

    def test_bad_recipient_file(self):
        bogus = os.path.join(self.workdir, "bogus.pub")
        with open(bogus, "w") as handle:
            handle.write("not a key\n")
        result = self.stowage("backup", "--repo", self.file_repo(), "--db",
                              self.cluster.conninfo("bench"), "--recipient", bogus, expect=2)
        self.assertIn(bogus, result.stderr)

    def test_unknown_flag(self):
        result = self.stowage("backup", "--repo", self.file_repo(), "--frobnicate", expect=2)
        self.assertIn("--frobnicate", result.stderr)
        self.assertIn("stowage backup --help", result.stderr)

    def test_missing_bucket(self):
        result = self.backup("s3://no-such-bucket-here/x", "bench", env=self.s3_env(), expect=6)
        self.assertIn("no-such-bucket-here", result.stderr)

    def test_unreachable_endpoint(self):
        env = self.s3_env(AWS_ENDPOINT_URL="http://127.0.0.1:9")
        result = self.backup("s3://bucket/x", "bench", env=env, expect=6)
        self.assertIn("127.0.0.1 port 9", result.stderr)
        self.assertIn("--endpoint", result.stderr)

    def test_missing_database(self):
        result = self.backup(self.file_repo(), "no_such_db", expect=7)
        self.assertIn("no_such_db", result.stderr)

    def _assert_nothing_left(self, bucket):
        self.assertEqual([], open_uploads(self.moto, bucket))
        self.assertEqual([], [k for k in object_keys(self.moto, bucket) if k.endswith("manifest.json")])
        self.assertEqual([], self.list_json("s3://%s/x" % bucket, env=self.s3_env()))

    def test_pg_dump_failure_aborts_upload(self):
        bucket = self.new_bucket()
        bindir = fake_pg_bindir(self.workdir, "fails", '"$REAL" "$@" | head -c 400000; exit 1')
        result = self.backup("s3://%s/x" % bucket, "bench", "--part-size", "64KiB",
                             env=self.s3_env(STOWAGE_PG_BINDIR=bindir), expect=1)
        self.assertIn("the dump failed", result.stderr)
        self.assertIn("exit status 1", result.stderr)
        self._assert_nothing_left(bucket)

    def test_pg_dumpall_failure_aborts_backup(self):
        # pg_dumpall runs beside pg_dump; its failure stops pg_dump too.
        bucket = self.new_bucket()
        bindir = fake_pg_bindir(self.workdir, "globals-fail",
                                'echo "pg_dumpall: error: permission denied" >&2; exit 1',
                                program="pg_dumpall")
        result = self.backup("s3://%s/x" % bucket, "bench", "--part-size", "64KiB",
                             env=self.s3_env(STOWAGE_PG_BINDIR=bindir), expect=1)
        self.assertIn("dumping roles and tablespaces failed", result.stderr)
        self.assertIn("--no-globals", result.stderr)
        self.assertIn("permission denied", result.stderr)
        self._assert_nothing_left(bucket)
        self.backup("s3://%s/x" % bucket, "bench", "--no-globals",
                    env=self.s3_env(STOWAGE_PG_BINDIR=bindir))

    def test_part_buffers_beyond_memory_are_rejected(self):
        bucket = self.new_bucket()
        result = self.backup("s3://%s/x" % bucket, "bench", "--part-size", "5GiB",
                             "--transfers", "64", env=self.s3_env(), expect=2)
        self.assertIn("65 part buffers", result.stderr)
        self.assertIn("more than half of this machine", result.stderr)
        self.assertIn("lower --part-size or --transfers", result.stderr)
        self.assertEqual([], object_keys(self.moto, bucket))

    def test_pg_dump_killed_aborts_upload(self):
        bucket = self.new_bucket()
        bindir = fake_pg_bindir(self.workdir, "killed",
                                '"$REAL" "$@" | head -c 300000; kill -KILL $$')
        result = self.backup("s3://%s/x" % bucket, "bench", "--part-size", "64KiB",
                             env=self.s3_env(STOWAGE_PG_BINDIR=bindir), expect=1)
        self.assertIn("killed by signal 9", result.stderr)
        self._assert_nothing_left(bucket)

    def test_truncated_dump_with_success_status_is_rejected(self):
        bucket = self.new_bucket()
        bindir = fake_pg_bindir(self.workdir, "truncates", '"$REAL" "$@" | head -c 500000; exit 0')
        result = self.backup("s3://%s/x" % bucket, "bench", "--part-size", "64KiB",
                             env=self.s3_env(STOWAGE_PG_BINDIR=bindir), expect=1)
        self.assertIn("truncated", result.stderr)
        self._assert_nothing_left(bucket)

    def test_sigterm_during_backup_aborts_upload(self):
        bucket = self.new_bucket()
        bindir = fake_pg_bindir(self.workdir, "slow-%s" % os.urandom(3).hex(),
                                '"$REAL" "$@" | (head -c 300000; sleep 60; cat)')
        env = stowage_environment(self.s3_env(STOWAGE_PG_BINDIR=bindir))
        process = subprocess.Popen(
            [stowage_binary(), "backup", "--repo", "s3://%s/x" % bucket, "--db",
             self.cluster.conninfo("noise"), "--recipient", self.pub, "--part-size", "64KiB"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 60
        while time.time() < deadline and not open_uploads(self.moto, bucket):
            time.sleep(0.1)
        self.assertTrue(open_uploads(self.moto, bucket), "the upload never started")
        started = time.time()
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=60)
        self.assertLess(time.time() - started, 20)
        self.assertEqual(130, process.returncode, stderr)
        self.assertIn("interrupted by SIGTERM", stderr)
        self._assert_nothing_left(bucket)

    def test_sigterm_removes_partial_file_object(self):
        # 16 MB of hexadecimal text: the dump stalls after 12 MB, three 4 MiB
        # segments, so parts of it reach the file before the signal.
        self.cluster.createdb("noise_large")
        self.cluster.psql("CREATE TABLE noise AS SELECT g AS id, md5(g::text) || "
                          "md5((g * 7)::text) AS filler FROM generate_series(1, 240000) g",
                          db="noise_large")
        repo_dir = self.file_repo()[len("file://"):]
        bindir = fake_pg_bindir(self.workdir, "slow-%s" % os.urandom(3).hex(),
                                '"$REAL" "$@" | (head -c 12000000; sleep 60; cat)')
        env = stowage_environment({"STOWAGE_PG_BINDIR": bindir,
                                   "STOWAGE_MIN_PART_SIZE": str(SMALL_PART)})
        process = subprocess.Popen(
            [stowage_binary(), "backup", "--repo", "file://" + repo_dir, "--db",
             self.cluster.conninfo("noise_large"), "--recipient", self.pub, "--part-size",
             "64KiB"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

        def partial_objects():
            return [os.path.join(d, f) for d, _, files in os.walk(repo_dir) for f in files
                    if f.startswith(".data.stow.tmp-")]

        # Wait until the writer thread has written parts of the object.
        deadline = time.time() + 60
        while time.time() < deadline and not any(os.path.getsize(p) > SMALL_PART
                                                 for p in partial_objects()):
            time.sleep(0.1)
        self.assertTrue(any(os.path.getsize(p) > SMALL_PART for p in partial_objects()),
                        "no part was written")
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
        self.assertEqual(130, process.returncode, stderr)
        self.assertEqual([], partial_objects())
        self.assertEqual([], [os.path.join(d, f) for d, _, files in os.walk(repo_dir)
                              for f in files if f.endswith("manifest.json")])
        self.assertEqual([], self.list_json("file://" + repo_dir))

    def test_transient_s3_faults_are_retried(self):
        bucket = self.new_bucket()
        with FaultProxy(self.moto) as proxy:
            proxy.add_fault(INTERNAL_ERROR, method="PUT", query=r"partNumber=2&")
            proxy.add_fault(SLOW_DOWN, method="PUT", query=r"partNumber=3&", count=2)
            proxy.add_fault(DROP_BEFORE_RESPONSE, method="PUT", query=r"partNumber=4&")
            env = self.s3_env(AWS_ENDPOINT_URL=proxy.endpoint)
            result = self.backup("s3://%s/x" % bucket, "noise", "--part-size", "64KiB", env=env)
            faults = [r.fault for r in proxy.requests if r.fault]
        self.assertEqual(4, len(faults), faults)
        self.assertIn("retry", result.stderr.lower())
        backup_id = self.list_json("s3://%s/x" % bucket, env=self.s3_env())[0]["id"]
        self.stowage("verify", "--repo", "s3://%s/x" % bucket, backup_id, "--key", self.key,
                     env=self.s3_env())
        self.assertEqual([], open_uploads(self.moto, bucket))

    def test_password_never_printed(self):
        secret = "s3cr3t-%s" % os.urandom(6).hex()
        self.cluster.psql("CREATE ROLE tester LOGIN SUPERUSER PASSWORD '%s'" % secret)
        conninfo = "postgresql://tester:%s@127.0.0.1:%d/no_such_db" % (secret, self.cluster.port)
        result = self.stowage("backup", "--repo", self.file_repo(), "--db", conninfo,
                              "--recipient", self.pub, expect=7)
        self.assertNotIn(secret, result.stdout + result.stderr)


if __name__ == "__main__":
    unittest.main()
