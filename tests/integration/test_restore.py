"""End-to-end tests of restore, verify and extract: round trips through a
scratch instance, comparisons with live databases, and rejected input."""

import glob
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

from support import StowageTestCase, fake_pg_bindir, process_commands

from harness import FaultProxy, PostgresCluster
from harness.faultproxy import CORRUPT, INTERNAL_ERROR, STALL, TRUNCATE

from harness import run_stowage
from harness.stowage import stowage_binary, stowage_environment

HERE = os.path.dirname(os.path.abspath(__file__))


def processes_mentioning(text):
    """Return the command lines of running processes that contain text."""
    return [command for _, command in process_commands() if text in command]


class RestoreTest(StowageTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.cluster.createdb("hard")
        with open(os.path.join(HERE, "sql", "hard_cases.sql")) as handle:
            cls.cluster.psql(handle.read(), db="hard")
        cls.repo = "file://" + os.path.join(cls.workdir, "repo")
        os.makedirs(cls.repo[len("file://"):])
        result = run_stowage(["backup", "--repo", cls.repo, "--db", cls.cluster.conninfo("hard"),
                              "--recipient", cls.pub, "--json"])
        if result.returncode != 0:
            raise RuntimeError("backup failed: %s" % result.stderr)
        cls.backup_id = json.loads(result.stdout)["id"]

    def schema_dump(self, conninfo):
        # pg_dump 15.14 and later wrap the script in \restrict KEY and
        # \unrestrict KEY with a random key; drop those two lines.
        text = self.cluster.run_tool("pg_dump", "--schema-only", "-d", conninfo).stdout
        return "\n".join(line for line in text.split("\n")
                         if not line.startswith(("\\restrict ", "\\unrestrict ")))

    def test_verified_scratch_restore_of_hard_cases(self):
        report = os.path.join(self.workdir, "report.json")
        result = self.stowage("restore", "--repo", self.repo, self.backup_id, "--key", self.key,
                              "--scratch", "local", "--verify", "--report", report)
        self.assertIn("passed", result.stdout)
        with open(report) as handle:
            data = json.load(handle)
        self.assertEqual("passed", data["result"])
        self.assertTrue(data["verification"]["passed"])
        steps = [s["step"] for s in data["steps"]]
        for step in ("download", "decrypt+decompress", "restore", "verify", "scratch-remove"):
            self.assertIn(step, steps)
        self.assertTrue(data["scratch_directory"])
        self.assertFalse(os.path.exists(data["scratch_directory"]))
        listing = self.list_json(self.repo)
        entry = [b for b in listing if b["id"] == self.backup_id][0]
        self.assertEqual("passed", entry["last_verification"])

    def test_scratch_restore_without_roles(self):
        # A backup taken with --no-globals brings no roles, and a scratch
        # cluster has only its own superuser: ownership is skipped there.
        repo = self.file_repo()
        self.backup(repo, "hard", "--no-globals")
        result = self.stowage("restore", "--repo", repo, "latest", "--key", self.key,
                              "--scratch", "local", "--verify")
        self.assertIn("passed", result.stdout)
        self.assertIn("with --no-owner --no-privileges", result.stderr)

    def test_interrupted_scratch_restore_removes_instance(self):
        scratch_parent = os.path.join(self.workdir, "scratch-interrupt")
        os.makedirs(scratch_parent)
        os.chmod(scratch_parent, 0o755)
        env = stowage_environment({"STOWAGE_SCRATCH_DIR": scratch_parent})

        def verification_records():
            return sorted(glob.glob(os.path.join(self.repo[len("file://"):], "backups", "*",
                                                 self.backup_id, "verifications", "*")))

        records_before = verification_records()
        # --keep does not keep the cluster of an interrupted run.
        for extra in ([], ["--keep"]):
            with self.subTest(options=extra):
                process = subprocess.Popen(
                    [stowage_binary(), "restore", "--repo", self.repo, self.backup_id,
                     "--key", self.key, "--scratch", "local", "--verify"] + extra,
                    env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                deadline = time.time() + 60
                while time.time() < deadline and not glob.glob(
                        os.path.join(scratch_parent, "*", "data", "postmaster.pid")):
                    time.sleep(0.05)
                process.send_signal(signal.SIGTERM)
                stdout, stderr = process.communicate(timeout=120)
                self.assertEqual(130, process.returncode, stderr)
                self.assertIn("SIGTERM", stderr)
                self.assertNotIn("kept running", stdout)
                self.assertEqual([], os.listdir(scratch_parent))
                # An interrupted run shows nothing about the backup, so no
                # record is added.
                self.assertIn("is not recorded", stderr)
                self.assertEqual(records_before, verification_records())

    def test_restore_to_target_gives_identical_schema(self):
        self.cluster.createdb("hard_copy")
        self.stowage("restore", "--repo", self.repo, self.backup_id, "--key", self.key,
                     "--target", self.cluster.conninfo("hard_copy"), "--verify")
        self.assertEqual(self.schema_dump(self.cluster.conninfo("hard")),
                         self.schema_dump(self.cluster.conninfo("hard_copy")))

    def test_verify_against_names_changed_table(self):
        self.cluster.createdb("hard_changed")
        self.stowage("restore", "--repo", self.repo, "latest", "--key", self.key,
                     "--target", self.cluster.conninfo("hard_changed"))
        self.cluster.psql("UPDATE inventory.documents SET body = 'x' WHERE id = 2", db="hard_changed")
        result = self.stowage("verify", "--repo", self.repo, "latest", "--key", self.key,
                              "--against", self.cluster.conninfo("hard_changed"), expect=3)
        output = result.stdout + result.stderr
        self.assertIn("documents", output)
        self.assertNotIn("Order Lines", output)

    def test_sql_ascii_backup_into_utf8_warns(self):
        # PostgreSQL stores the byte 0xff from a SQL_ASCII dump in a UTF8
        # database unchecked, and reading the row fails later.
        self.cluster.psql("CREATE DATABASE ascii_src ENCODING 'SQL_ASCII' TEMPLATE template0 "
                          "LC_COLLATE 'C' LC_CTYPE 'C'")
        self.cluster.psql("CREATE TABLE notes (body text); "
                          "INSERT INTO notes VALUES (convert_from('\\x41ff42', 'SQL_ASCII'))",
                          db="ascii_src")
        repo = "file://" + tempfile.mkdtemp(prefix="ascii-", dir=self.workdir)
        backup_id = json.loads(self.backup(repo, "ascii_src", "--json").stdout)["id"]
        self.cluster.createdb("ascii_copy")
        result = self.stowage("restore", "--repo", repo, backup_id, "--key", self.key,
                              "--target", self.cluster.conninfo("ascii_copy"))
        self.assertIn("is of a SQL_ASCII database and the target database ascii_copy is UTF8",
                      result.stderr)
        self.assertIn("ENCODING 'SQL_ASCII'", result.stderr)

        # A scratch cluster takes the backup's encoding, so nothing to warn of.
        scratch = self.stowage("restore", "--repo", repo, backup_id, "--key", self.key,
                               "--scratch", "local", "--verify")
        self.assertIn("passed", scratch.stdout)
        self.assertNotIn("SQL_ASCII", scratch.stderr)

        # Into a SQL_ASCII target the text keeps its bytes but not its encoding.
        self.cluster.psql("CREATE DATABASE ascii_target ENCODING 'SQL_ASCII' "
                          "TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C'")
        into_ascii = self.stowage("restore", "--repo", self.repo, self.backup_id, "--key",
                                  self.key, "--target", self.cluster.conninfo("ascii_target"))
        self.assertIn("is of a UTF8 database and the target database ascii_target is SQL_ASCII",
                      into_ascii.stderr)
        self.assertIn("ENCODING 'UTF8'", into_ascii.stderr)

        self.cluster.createdb("hard_same_encoding")
        same = self.stowage("restore", "--repo", self.repo, self.backup_id, "--key", self.key,
                            "--target", self.cluster.conninfo("hard_same_encoding"))
        self.assertNotIn("SQL_ASCII", same.stderr)

    def test_target_with_tables_is_refused_without_clean(self):
        result = self.stowage("restore", "--repo", self.repo, "latest", "--key", self.key,
                              "--target", self.cluster.conninfo("hard"), expect=2)
        self.assertIn("--clean", result.stderr)

    def test_verify_storage_passes(self):
        result = self.stowage("verify", "--repo", self.repo, self.backup_id, "--key", self.key)
        self.assertIn("verified", result.stdout)

    def test_wrong_key_is_rejected_before_restore(self):
        other = os.path.join(self.workdir, "other.key")
        if not os.path.exists(other):
            self.stowage("keygen", "--out", other)
        self.cluster.createdb("wrong_key_target")
        result = self.stowage("restore", "--repo", self.repo, "latest", "--key", other,
                              "--target", self.cluster.conninfo("wrong_key_target"), expect=8)
        self.assertIn("not encrypted to key id", result.stderr)
        tables = self.cluster.query("SELECT count(*) FROM pg_tables WHERE schemaname NOT IN "
                                    "('pg_catalog', 'information_schema')", db="wrong_key_target")
        self.assertEqual("0", tables[0][0])

    def test_flipped_byte_is_named(self):
        repo_dir = os.path.join(self.workdir, "flip-repo")
        os.makedirs(repo_dir)
        repo = "file://" + repo_dir
        result = self.stowage("backup", "--repo", repo, "--db", self.cluster.conninfo("hard"),
                              "--recipient", self.pub, "--json", "--part-size", "64KiB",
                              env={"STOWAGE_MIN_PART_SIZE": "65536"})
        backup_id = json.loads(result.stdout)["id"]
        manifest = self.show_json(repo, backup_id)
        data_path = os.path.join(repo_dir, manifest["object"]["key"])
        part = manifest["object"]["parts"][1]
        with open(data_path, "r+b") as handle:
            handle.seek(part["offset"] + 10)
            byte = handle.read(1)
            handle.seek(part["offset"] + 10)
            handle.write(bytes([byte[0] ^ 0xFF]))
        result = self.stowage("verify", "--repo", repo, backup_id, "--key", self.key, expect=3)
        self.assertIn("part 2", result.stderr)
        self.assertIn(backup_id, result.stderr)

        with open(data_path, "r+b") as handle:
            handle.truncate(manifest["object"]["stored_bytes"] - 100)
        result = self.stowage("verify", "--repo", repo, backup_id, "--key", self.key, expect=3)

    def test_extract_refuses_nonempty_directory(self):
        target = os.path.join(self.workdir, "extract-twice")
        self.stowage("extract", "--repo", self.repo, "latest", "--key", self.key, "--to", target)
        self.assertTrue(os.path.exists(os.path.join(target, "globals.sql")))
        result = self.stowage("extract", "--repo", self.repo, "latest", "--key", self.key,
                              "--to", target, expect=2)
        self.assertIn("directory %s is not empty" % target, result.stderr)
        self.assertIn("choose an empty or new directory", result.stderr)

        # A directory that contains only an unrelated file also gets nothing.
        other = os.path.join(self.workdir, "extract-nonempty")
        os.makedirs(other)
        with open(os.path.join(other, "notes.txt"), "w") as handle:
            handle.write("keep\n")
        result = self.stowage("extract", "--repo", self.repo, "latest", "--key", self.key,
                              "--to", other, expect=2)
        self.assertIn("directory %s is not empty" % other, result.stderr)
        self.assertEqual(["notes.txt"], os.listdir(other))

    def test_verify_all_with_wrong_key(self):
        repo = self.file_repo()
        self.backup(repo, "hard")
        self.backup(repo, "hard")
        first_id = self.list_json(repo)[0]["id"]
        self.stowage("restore", "--repo", repo, first_id, "--key", self.key, "--scratch",
                     "local", "--verify")
        states = [(entry["id"], entry["last_verification"], entry["last_verified_at"])
                  for entry in self.list_json(repo)]
        self.assertEqual("passed", states[0][1])
        self.assertIsNone(states[1][1])
        records = os.path.join(repo[len("file://"):], "backups", "*", "*", "verifications", "*")
        record_count = len(glob.glob(records))
        other = os.path.join(self.workdir, "other.key")
        if not os.path.exists(other):
            self.stowage("keygen", "--out", other)

        result = self.stowage("verify", "--repo", repo, "--all", "--key", other, expect=8)

        self.assertIn("0 of 2 backups verified", result.stdout)
        self.assertIn("none of the 2 backups could be verified", result.stderr)
        self.assertIn("the key %s is not a recipient" % other, result.stdout)
        self.assertIn("the key %s is not a recipient" % other, result.stderr)
        self.assertNotIn("failed verification", result.stdout + result.stderr)
        after = [(entry["id"], entry["last_verification"], entry["last_verified_at"])
                 for entry in self.list_json(repo)]
        self.assertEqual(states, after)
        self.assertEqual(record_count, len(glob.glob(records)))

    def test_verify_all_tampered_recipients_fail(self):
        # Recipients rewritten in a signed manifest are tampering (exit 3),
        # not a key that is not a recipient (exit 8).
        repo = self.file_repo()
        self.backup(repo, "hard", "--signing-key", self.key + ".sign")
        entry = self.list_json(repo)[0]
        path = os.path.join(repo[len("file://"):], entry["manifest_key"])
        with open(path) as handle:
            manifest = json.load(handle)
        for recipient in manifest["encryption"]["recipients"]:
            recipient["key_id"] = "0" * len(recipient["key_id"])
        with open(path, "w") as handle:
            json.dump(manifest, handle)

        result = self.stowage("verify", "--repo", repo, "--all", "--key", self.key,
                              "--trusted-key", self.key + ".sign.pub", expect=3)
        self.assertIn("1 failed verification", result.stdout)
        self.assertNotIn("not a recipient", result.stdout + result.stderr)

    def test_s3_verified_scratch_restore(self):
        bucket = self.new_bucket()
        repo = "s3://%s/db" % bucket
        env = self.s3_env()
        self.stowage("backup", "--repo", repo, "--db", self.cluster.conninfo("hard"),
                     "--recipient", self.pub, "--part-size", "64KiB", env=env)
        report_path = os.path.join(self.workdir, "s3-scratch-report.json")
        result = self.stowage("restore", "--repo", repo, "latest", "--key", self.key,
                              "--scratch", "local", "--verify", "--report", report_path,
                              "--log-level", "debug", env=env)
        self.assertIn("passed", result.stdout)
        self.assertEqual("passed", self.list_json(repo, env=env)[0]["last_verification"])

        # The object's size is checked and its download begins before the
        # scratch cluster is created, so the first parts arrive meanwhile.
        with open(report_path) as handle:
            steps = [step["step"] for step in json.load(handle)["steps"]]
        self.assertLess(steps.index("check-object"), steps.index("scratch-create"))
        self.assertLess(result.stderr.index("fetch buffers"),
                        result.stderr.index("started scratch PostgreSQL"))

    def test_s3_download_faults_are_retried(self):
        bucket = self.new_bucket()
        repo = "s3://%s/db" % bucket
        self.stowage("backup", "--repo", repo, "--db", self.cluster.conninfo("hard"),
                     "--recipient", self.pub, "--part-size", "64KiB", env=self.s3_env())
        with FaultProxy(self.moto) as proxy:
            proxy.add_fault(CORRUPT, method="GET", path=r"data\.stow", nth=1)
            proxy.add_fault(TRUNCATE, method="GET", path=r"data\.stow", nth=2)
            proxy.add_fault(INTERNAL_ERROR, method="GET", path=r"data\.stow", nth=3)
            env = self.s3_env(AWS_ENDPOINT_URL=proxy.endpoint)
            result = self.stowage("verify", "--repo", repo, "latest", "--key", self.key, env=env)
            faults = [r.fault for r in proxy.requests if r.fault]
        self.assertEqual(3, len(faults), faults)
        # The download runs beside the main thread's steps and logs as its own.
        self.assertRegex(result.stderr, r"step=download part \d+ of \S+ failed its SHA-256 check; "
                                        r"fetching it again")

    def test_s3_object_corrupt_at_rest_fails_verification(self):
        bucket = self.new_bucket()
        repo = "s3://%s/db" % bucket
        self.stowage("backup", "--repo", repo, "--db", self.cluster.conninfo("hard"),
                     "--recipient", self.pub, "--part-size", "64KiB", env=self.s3_env())
        manifest = self.show_json(repo, "latest", env=self.s3_env())
        client = self.moto.client("s3")
        key = "db/" + manifest["object"]["key"]
        body = bytearray(client.get_object(Bucket=bucket, Key=key)["Body"].read())
        body[manifest["object"]["parts"][2]["offset"] + 5] ^= 0x01
        client.put_object(Bucket=bucket, Key=key, Body=bytes(body))
        result = self.stowage("verify", "--repo", repo, "latest", "--key", self.key,
                              env=self.s3_env(), expect=3)
        self.assertIn("part 3", result.stderr)
        self.assertIn("SHA-256", result.stderr)

    def test_s3_short_object_fails_verification(self):
        bucket = self.new_bucket()
        repo = "s3://%s/db" % bucket
        self.stowage("backup", "--repo", repo, "--db", self.cluster.conninfo("hard"),
                     "--recipient", self.pub, "--part-size", "64KiB", env=self.s3_env())
        manifest = self.show_json(repo, "latest", env=self.s3_env())
        parts = manifest["object"]["parts"]
        self.assertGreaterEqual(len(parts), 3)
        client = self.moto.client("s3")
        key = "db/" + manifest["object"]["key"]
        body = client.get_object(Bucket=bucket, Key=key)["Body"].read()

        # verify compares the object's size with the manifest before reading.
        for stored in (body[:parts[1]["offset"] + 5], body + b"appended"):
            with self.subTest(stored_bytes=len(stored)):
                client.put_object(Bucket=bucket, Key=key, Body=stored)
                result = self.stowage("verify", "--repo", repo, "latest", "--key", self.key,
                                      env=self.s3_env(), expect=3)
                self.assertIn("failed verification", result.stderr)
                self.assertIn("has %d bytes, the manifest of backup %s says %d"
                              % (len(stored), manifest["id"], len(body)), result.stderr)

        # extract and drill, which restores, compare the size first too.
        extract_dir = os.path.join(self.workdir, "appended-extract")
        client.put_object(Bucket=bucket, Key=key, Body=body + b"appended")
        result = self.stowage("extract", "--repo", repo, "latest", "--key", self.key,
                              "--to", extract_dir, env=self.s3_env(), expect=3)
        self.assertIn("has %d bytes, the manifest of backup %s says %d"
                      % (len(body) + 8, manifest["id"], len(body)), result.stderr)
        self.assertFalse(os.path.exists(extract_dir))
        result = self.stowage("drill", "--repo", repo, "--key", self.key, env=self.s3_env(),
                              expect=3)
        self.assertIn("has %d bytes" % (len(body) + 8), result.stderr)

        # replicate copies the manifest's parts, so the copy of an object
        # with bytes appended is whole and verifies; the run warns about
        # the source.
        replica = self.file_repo()
        result = self.stowage("replicate", "--repo", repo, "--to", replica, env=self.s3_env())
        self.assertIn("has %d bytes, the manifest of backup %s says %d"
                      % (len(body) + 8, manifest["id"], len(body)), result.stderr)
        self.assertIn("stowage verify --repo %s %s" % (repo, manifest["id"]), result.stderr)
        self.stowage("verify", "--repo", replica, manifest["id"], "--key", self.key)

        # A short source object fails at the part where it ends.
        # Part 2 ends past the object (206 with a smaller size in
        # Content-Range), and part 3 starts past it (416 InvalidRange).
        client.put_object(Bucket=bucket, Key=key, Body=body[:parts[1]["offset"] + 5])
        result = self.stowage("replicate", "--repo", repo, "--to", self.file_repo(),
                              env=self.s3_env(), expect=3)
        self.assertRegex(result.stderr, r"part [23] of %s \(offset " % re.escape(key))
        self.assertIn("truncated or replaced", result.stderr)

        client.put_object(Bucket=bucket, Key=key, Body=b"short")
        result = self.stowage("replicate", "--repo", repo, "--to", self.file_repo(),
                              env=self.s3_env(), expect=3)
        # Part 1 comes alone in the first ranged GET; the object ends in it.
        self.assertIn("part 1 of %s (offset 0, %d bytes)" % (key, parts[0]["size"]),
                      result.stderr)
        self.assertIn("returned 5 bytes instead of %d" % parts[0]["size"], result.stderr)
        self.assertIn("the object is 5 bytes", result.stderr)

    def test_at_time_picks_newest_before(self):
        manifest = self.show_json(self.repo, self.backup_id)
        started = manifest["started_at"]
        result = self.stowage("show", "--repo", self.repo, "--at", started, "--json")
        self.assertEqual(self.backup_id, json.loads(result.stdout)["id"])
        result = self.stowage("show", "--repo", self.repo, "--at", "2001-01-01T00:00:00+02:00",
                              expect=2)
        self.assertIn("no complete backup", result.stderr)
        self.assertIn("started at or before 2000-12-31T22:00:00Z", result.stderr)

    def test_at_time_counts_microseconds(self):
        # A backup that started later within the same second is not picked.
        repo = self.file_repo()
        self.backup(repo, "hard")
        manifest = self.show_json(repo, "latest")
        started = manifest["started_at"]
        self.assertRegex(started, r"\.\d{6}Z$")
        second, fraction = started[:-1].split(".")
        if int(fraction) == 0:
            self.skipTest("the backup started on a whole second")
        before = "%s.%06dZ" % (second, int(fraction) - 1)

        result = self.stowage("show", "--repo", repo, "--at", before, expect=2)
        self.assertIn("started at or before %s" % before, result.stderr)
        result = self.stowage("show", "--repo", repo, "--at", started, "--json")
        self.assertEqual(manifest["id"], json.loads(result.stdout)["id"])

    def test_missing_role_fails_with_postgres_error(self):
        self.cluster.createdb("owned")
        self.cluster.psql("CREATE ROLE app_owner_%s NOLOGIN" % self.id().split(".")[-1][:8], db="owned")
        role = "app_owner_%s" % self.id().split(".")[-1][:8]
        self.cluster.psql("CREATE TABLE t (id int); ALTER TABLE t OWNER TO %s" % role, db="owned")
        repo = self.file_repo()
        self.stowage("backup", "--repo", repo, "--db", self.cluster.conninfo("owned"),
                     "--recipient", self.pub)

        other = PostgresCluster()
        other.start()
        try:
            other.createdb("owned")
            result = self.stowage("restore", "--repo", repo, "latest", "--key", self.key,
                                  "--target", other.conninfo("owned"), expect=1)
            self.assertIn('role "%s" does not exist' % role, result.stderr)
            self.assertIn("rolled back", result.stderr)
            result = self.stowage("restore", "--repo", repo, "latest", "--key", self.key,
                                  "--target", other.conninfo("owned"), "--with-globals", "--verify")
            self.assertEqual(role, other.query("SELECT tableowner FROM pg_tables WHERE tablename = 't'",
                                               db="owned")[0][0])
        finally:
            other.stop()
            other.cleanup()

    def test_failed_scratch_restore_is_reported_and_removed(self):
        bindir = fake_pg_bindir(self.workdir, "restore-fails-%s" % os.urandom(3).hex(),
                                'exec "$REAL" "$@"', program="pg_restore",
                                replacement='echo "pg_restore: error: simulated failure" >&2; exit 1')
        scratch_parent = os.path.join(self.workdir, "scratch-fail")
        os.makedirs(scratch_parent)
        os.chmod(scratch_parent, 0o755)
        report = os.path.join(self.workdir, "failed-report.json")
        result = self.stowage("restore", "--repo", self.repo, self.backup_id, "--key", self.key,
                              "--scratch", "local", "--verify", "--report", report,
                              env={"STOWAGE_PG_BINDIR": bindir, "STOWAGE_SCRATCH_DIR": scratch_parent},
                              expect=1)
        self.assertIn("simulated failure", result.stderr)
        with open(report) as handle:
            data = json.load(handle)
        self.assertEqual("failed", data["result"])
        self.assertEqual("restore", data["failed_step"])
        self.assertEqual([], os.listdir(scratch_parent))
        # pg_restore failing in a fresh cluster is a finding about the
        # backup, so the failed verification is recorded.
        self.assertNotIn("is not recorded", result.stderr)
        entry = [b for b in self.list_json(self.repo) if b["id"] == self.backup_id][0]
        self.assertEqual("failed", entry["last_verification"])

    def test_environment_failures_not_recorded(self):
        # A verified restore that fails before it reads the backup's data
        # leaves the backup's last verification as it was.
        repo = self.file_repo()
        self.backup(repo, "hard")
        self.stowage("restore", "--repo", repo, "latest", "--key", self.key, "--scratch",
                     "local", "--verify")
        self.assertEqual("passed", self.list_json(repo)[0]["last_verification"])
        other = os.path.join(self.workdir, "other.key")
        if not os.path.exists(other):
            self.stowage("keygen", "--out", other)
        self.cluster.createdb("not_recorded_target")
        cases = [
            ("wrong key", ["--key", other, "--scratch", "local"], {}, 8),
            ("missing scratch directory", ["--key", self.key, "--scratch", "local"],
             {"STOWAGE_SCRATCH_DIR": "/nonexistent"}, 1),
            ("target with tables", ["--key", self.key, "--target", self.cluster.conninfo("hard")],
             {}, 2),
            ("missing target database",
             ["--key", self.key, "--target", self.cluster.conninfo("no_such_database")], {}, 7),
        ]
        records = os.path.join(repo[len("file://"):], "backups", "*", "*", "verifications", "*")
        for name, options, env, code in cases:
            with self.subTest(name):
                result = self.stowage("restore", "--repo", repo, "latest", "--verify", *options,
                                      env=env, expect=code)
                self.assertIn("is not recorded", result.stderr)
                self.assertEqual("passed", self.list_json(repo)[0]["last_verification"])
                self.assertEqual(1, len(glob.glob(records)))

    def test_failed_scratch_start_cancels_downloads(self):
        # The download starts before the scratch cluster. When the cluster
        # fails, its error comes at once, not after the stalled GETs'
        # timeouts and retries.
        bucket = self.new_bucket()
        repo = "s3://%s/db" % bucket
        self.stowage("backup", "--repo", repo, "--db", self.cluster.conninfo("hard"),
                     "--recipient", self.pub, "--part-size", "64KiB", env=self.s3_env())
        bindir = fake_pg_bindir(self.workdir, "postgres-fails-%s" % os.urandom(3).hex(),
                                'echo "FATAL:  simulated start failure" >&2; exit 1',
                                program="postgres")
        scratch_parent = os.path.join(self.workdir, "scratch-start-fails")
        os.makedirs(scratch_parent)
        os.chmod(scratch_parent, 0o755)
        with FaultProxy(self.moto) as proxy:
            proxy.add_fault(STALL, method="GET", path=r"data\.stow$", nth=1, count=None,
                            seconds=120)
            env = self.s3_env(AWS_ENDPOINT_URL=proxy.endpoint, STOWAGE_PG_BINDIR=bindir,
                              STOWAGE_SCRATCH_DIR=scratch_parent)
            started = time.monotonic()
            result = self.stowage("restore", "--repo", repo, "latest", "--key", self.key,
                                  "--scratch", "local", "--verify", env=env, expect=1)
            elapsed = time.monotonic() - started
            self.assertTrue(proxy.requests_matching(method="GET", path=r"data\.stow$",
                                                    fault=STALL))
        self.assertLess(elapsed, 30, result.stderr)
        self.assertIn("starting PostgreSQL 15 on port", result.stderr)
        self.assertIn("simulated start failure", result.stderr)
        self.assertNotIn("cancelled", result.stderr)
        self.assertEqual([], os.listdir(scratch_parent))
        # The error names the cluster's directory, so the hint reports that it is gone.
        self.assertIn("has been removed with the failed cluster", result.stderr)

    @unittest.skipUnless(os.geteuid() == 0, "mounting a small tmpfs needs root")
    def test_full_scratch_disk_during_restore(self):
        # A 64 MiB tmpfs has room for a new cluster (about 40 MB with its
        # first WAL segment) but not for the 55 MB table restored into it.
        self.cluster.createdb("bulky")
        self.cluster.psql("CREATE TABLE filler AS SELECT g, repeat(md5(g::text), 3) AS pad "
                          "FROM generate_series(1, 400000) g", db="bulky")
        repo = self.file_repo()
        self.backup(repo, "bulky")
        scratch_parent = os.path.join(self.workdir, "scratch-full-disk")
        os.makedirs(scratch_parent)
        mount = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m,mode=0755", "tmpfs",
                                scratch_parent], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
        if mount.returncode != 0:
            self.skipTest("mounting a tmpfs failed: %s" % mount.stdout.strip())
        self.addCleanup(subprocess.run, ["umount", "-l", scratch_parent])

        # With --jobs 4 the server's WAL writes PANIC first, and the COPY
        # connections only see the server go away, so its log shows the cause.
        for jobs in ("1", "4"):
            with self.subTest(jobs=jobs):
                result = self.stowage("restore", "--repo", repo, "latest", "--key", self.key,
                                      "--scratch", "local", "--verify", "--jobs", jobs,
                                      env=stowage_environment({"STOWAGE_SCRATCH_DIR":
                                                               scratch_parent}),
                                      expect=1)

                self.assertIn("started scratch PostgreSQL", result.stderr)
                self.assertIn("free space on the file system of %s" % scratch_parent,
                              result.stderr)
                self.assertEqual([], os.listdir(scratch_parent))
                self.assertEqual([], processes_mentioning(scratch_parent))
                # A full disk is no finding about the backup.
                self.assertIn("is not recorded", result.stderr)
                self.assertIsNone(self.list_json(repo)[0]["last_verification"])

    def test_crash_words_in_rows_do_not_hide_failure(self):
        # A dump that cannot restore (a CHECK that reads a table restored
        # later) is a finding about the backup, whatever its rows contain,
        # although the server quotes them in DETAIL and CONTEXT lines.
        self.cluster.createdb("quoting")
        self.cluster.psql(
            "CREATE TABLE z_lookup (code text PRIMARY KEY); INSERT INTO z_lookup VALUES ('ok');"
            "CREATE FUNCTION code_known(c text) RETURNS boolean LANGUAGE plpgsql AS "
            "$$ BEGIN RETURN EXISTS (SELECT 1 FROM public.z_lookup WHERE code = c); END $$;"
            "CREATE TABLE a_events (id int, code text CHECK (public.code_known(code)), msg text);"
            "INSERT INTO a_events VALUES (1, 'ok', 'app01 kernel: PANIC: watchdog reset, "
            "could not extend file: No space left on device; server process (PID 7) was "
            "terminated by signal 9');", db="quoting")
        repo = self.file_repo()
        self.backup(repo, "quoting")

        result = self.stowage("restore", "--repo", repo, "latest", "--key", self.key,
                              "--scratch", "local", "--verify", expect=1)

        self.assertIn("violates check constraint", result.stderr)
        self.assertNotIn("is not recorded", result.stderr)
        self.assertEqual("failed", self.list_json(repo)[0]["last_verification"])

    def test_killed_scratch_server_not_recorded(self):
        # The OOM killer's SIGKILL of the postmaster during pg_restore is the
        # host's failure, not the backup's.
        repo = self.file_repo()
        self.backup(repo, "hard")
        started = os.path.join(self.workdir, "restore-started-%s" % os.urandom(3).hex())
        bindir = fake_pg_bindir(self.workdir, "slow-restore-%s" % os.urandom(3).hex(),
                                'touch %s; sleep 3; exec "$REAL" "$@"' % started,
                                program="pg_restore")
        scratch_parent = os.path.join(self.workdir, "scratch-killed")
        os.makedirs(scratch_parent)
        os.chmod(scratch_parent, 0o755)
        process = subprocess.Popen(
            [stowage_binary(), "restore", "--repo", repo, "latest", "--key", self.key,
             "--scratch", "local", "--verify"],
            env=stowage_environment({"STOWAGE_PG_BINDIR": bindir,
                                     "STOWAGE_SCRATCH_DIR": scratch_parent}),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while not os.path.exists(started) and time.monotonic() < deadline:
            time.sleep(0.05)
        pid_files = glob.glob(os.path.join(scratch_parent, "*", "data", "postmaster.pid"))
        self.assertEqual(1, len(pid_files))
        with open(pid_files[0]) as handle:
            os.kill(int(handle.readline()), signal.SIGKILL)

        _, stderr = process.communicate(timeout=60)

        self.assertEqual(1, process.returncode, stderr)
        self.assertIn("crashed or was killed", stderr)
        self.assertIn("is not recorded", stderr)
        self.assertIsNone(self.list_json(repo)[0]["last_verification"])
        self.assertEqual([], os.listdir(scratch_parent))

    def test_sigterm_while_scratch_server_starts(self):
        # The wrapper is a bash script, which ignores the SIGQUIT of an
        # immediate shutdown, so stowage has to SIGKILL it before it
        # starts the real server.
        bindir = fake_pg_bindir(self.workdir, "postgres-slow-%s" % os.urandom(3).hex(),
                                'sleep 5; exec "$REAL" "$@"', program="postgres")
        scratch_parent = os.path.join(self.workdir, "scratch-slow-start")
        os.makedirs(scratch_parent)
        os.chmod(scratch_parent, 0o755)
        process = subprocess.Popen(
            [stowage_binary(), "restore", "--repo", self.repo, self.backup_id, "--key", self.key,
             "--scratch", "local", "--verify"],
            env=stowage_environment({"STOWAGE_PG_BINDIR": bindir,
                                     "STOWAGE_SCRATCH_DIR": scratch_parent}),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not glob.glob(
                os.path.join(scratch_parent, "*", "server.log")):
            time.sleep(0.05)
        time.sleep(0.3)
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=60)
        self.assertLess(time.monotonic() - started, 15, stderr)
        self.assertEqual(130, process.returncode, stderr)
        self.assertIn("interrupted by SIGTERM", stderr)
        self.assertEqual([], os.listdir(scratch_parent))
        self.assertEqual([], processes_mentioning(scratch_parent))
        time.sleep(6)  # past the wrapper's sleep: the real server must not start
        self.assertEqual([], processes_mentioning(scratch_parent))

    def test_sigterm_while_pg_restore_waits_rolls_back(self):
        self.cluster.createdb("sigterm_target")
        # An open transaction that created the same schema makes pg_restore
        # wait on the unique index of pg_namespace, mid-transaction.
        blocker = subprocess.Popen(
            [self.cluster.tool("psql"), "-X", "-q", "-A", "-t", "-d",
             self.cluster.conninfo("sigterm_target")],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            env=self.cluster.client_environment())
        blocker.stdin.write('BEGIN; CREATE SCHEMA "Sales Data"; SELECT \'created\';\n')
        blocker.stdin.flush()
        self.assertEqual("created", blocker.stdout.readline().strip())
        try:
            process = subprocess.Popen(
                [stowage_binary(), "restore", "--repo", self.repo, self.backup_id, "--key",
                 self.key, "--target", self.cluster.conninfo("sigterm_target")],
                env=stowage_environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                text=True)
            deadline = time.time() + 60
            while time.time() < deadline:
                rows = self.cluster.query(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = 'sigterm_target' "
                    "AND query LIKE 'CREATE SCHEMA%' AND wait_event_type = 'Lock'")
                if rows[0][0] != "0":
                    break
                time.sleep(0.2)
            else:
                self.fail("pg_restore never waited for the schema's lock")
            process.send_signal(signal.SIGTERM)
            stdout, stderr = process.communicate(timeout=60)
        finally:
            blocker.stdin.write("ROLLBACK;\n")
            blocker.stdin.close()
            blocker.wait(timeout=30)
            blocker.stdout.close()
        self.assertEqual(130, process.returncode, stderr)
        self.assertIn("interrupted by SIGTERM", stderr)
        tables = self.cluster.query("SELECT count(*) FROM pg_tables WHERE schemaname NOT IN "
                                    "('pg_catalog', 'information_schema')", db="sigterm_target")
        self.assertEqual("0", tables[0][0])

    def test_password_in_bad_uri_is_masked(self):
        secret = "Pw-%s" % os.urandom(6).hex()
        uri = "postgresql://postgres:%s@[127.0.0.1:%d/hard" % (secret, self.cluster.port)
        result = self.stowage("restore", "--repo", self.repo, "latest", "--key", self.key,
                              "--target", uri, expect=2)
        self.assertIn("invalid connection string", result.stderr)
        self.assertNotIn(secret, result.stdout + result.stderr)

    def test_backup_and_at_together_are_rejected(self):
        result = self.stowage("verify", "--repo", self.repo, self.backup_id, "--at",
                              "2030-01-01T00:00:00Z", "--key", self.key, expect=2)
        self.assertIn("not both", result.stderr)

    def test_wrong_passphrase_is_rejected(self):
        protected = os.path.join(self.workdir, "protected.key")
        passphrase = os.path.join(self.workdir, "passphrase")
        wrong = os.path.join(self.workdir, "wrong-passphrase")
        with open(passphrase, "w") as handle:
            handle.write("correct horse battery staple\n")
        with open(wrong, "w") as handle:
            handle.write("incorrect\n")
        for path in (passphrase, wrong):
            os.chmod(path, 0o600)
        if not os.path.exists(protected):
            self.stowage("keygen", "--out", protected, "--passphrase-file", passphrase)
        repo = self.file_repo()
        self.stowage("backup", "--repo", repo, "--db", self.cluster.conninfo("hard"),
                     "--recipient", protected + ".pub")
        result = self.stowage("verify", "--repo", repo, "latest", "--key", protected,
                              "--passphrase-file", wrong, expect=8)
        self.assertIn("wrong passphrase", result.stderr)
        self.assertNotIn("incorrect", result.stderr)
        self.stowage("verify", "--repo", repo, "latest", "--key", protected,
                     "--passphrase-file", passphrase)

    def test_other_backups_object_is_rejected(self):
        repo_dir = os.path.join(self.workdir, "swap-repo")
        os.makedirs(repo_dir)
        repo = "file://" + repo_dir
        first = json.loads(self.stowage("backup", "--repo", repo, "--db", self.cluster.conninfo("hard"),
                                        "--recipient", self.pub, "--json").stdout)["id"]
        second = json.loads(self.stowage("backup", "--repo", repo, "--db", self.cluster.conninfo("hard"),
                                         "--recipient", self.pub, "--json").stdout)["id"]
        first_key = self.show_json(repo, first)["object"]["key"]
        second_key = self.show_json(repo, second)["object"]["key"]
        shutil.copyfile(os.path.join(repo_dir, first_key), os.path.join(repo_dir, second_key))
        result = self.stowage("verify", "--repo", repo, second, "--key", self.key, expect=3)
        self.assertIn(second, result.stderr)
        # The two objects may differ in size, which verify checks first.
        self.assertRegex(result.stderr, "SHA-256|was replaced|bytes, the manifest of backup")

    def test_archive_digest_sha256_and_blake2b(self):
        repo_dir = os.path.join(self.workdir, "digest-repo")
        os.makedirs(repo_dir)
        repo = "file://" + repo_dir
        backup_id = json.loads(self.stowage("backup", "--repo", repo, "--db",
                                            self.cluster.conninfo("hard"), "--recipient",
                                            self.pub, "--json").stdout)["id"]
        manifest = self.show_json(repo, backup_id)
        manifest_path = os.path.join(repo_dir, os.path.dirname(manifest["object"]["key"]),
                                     "manifest.json")
        self.assertNotIn("blake2b_256", manifest["plaintext"])
        self.assertEqual(2, manifest["format_version"])

        # The digest is the SHA-256 of the archive as recovered without stowage.
        with open(self.key) as handle:
            key_id = handle.read().split()[1]
        wrapped = [r["wrapped_key"] for r in manifest["encryption"]["recipients"]
                   if r["key_id"] == key_id][0]
        recovered = subprocess.run(
            [sys.executable, os.path.join(HERE, "..", "..", "scripts", "recover-by-hand.py"),
             "--secret-key", self.key, "--wrapped-key", wrapped,
             os.path.join(repo_dir, manifest["object"]["key"])],
            check=True, capture_output=True).stdout
        archive = subprocess.run(["zstd", "-d", "-c"], input=recovered, check=True,
                                 capture_output=True).stdout
        self.assertEqual(len(archive), manifest["plaintext"]["bytes"])
        self.assertEqual(hashlib.sha256(archive).hexdigest(), manifest["plaintext"]["sha256"])

        def rewrite(plaintext, version=2):
            manifest["format_version"] = version
            manifest["plaintext"] = dict(plaintext, bytes=len(archive))
            os.chmod(manifest_path, 0o600)
            with open(manifest_path, "w") as handle:
                json.dump(manifest, handle, indent=2)

        # A manifest of an earlier build carries BLAKE2b-256, which is still checked.
        blake2b = hashlib.blake2b(archive, digest_size=32).hexdigest()
        rewrite({"blake2b_256": blake2b}, version=1)
        self.stowage("verify", "--repo", repo, backup_id, "--key", self.key)
        rewrite({"blake2b_256": blake2b}, version=2)
        result = self.stowage("verify", "--repo", repo, backup_id, "--key", self.key, expect=3)
        self.assertIn("no archive digest (plaintext.sha256)", result.stderr)
        rewrite({"blake2b_256": "00" * 32}, version=1)
        result = self.stowage("verify", "--repo", repo, backup_id, "--key", self.key, expect=3)
        self.assertIn("BLAKE2b-256", result.stderr)
        self.assertIn(backup_id, result.stderr)
        rewrite({"sha256": "00" * 32})
        result = self.stowage("verify", "--repo", repo, backup_id, "--key", self.key, expect=3)
        self.assertIn("SHA-256", result.stderr)
        rewrite({"sha256": hashlib.sha256(archive).hexdigest(),
                 "blake2b_256": hashlib.blake2b(archive, digest_size=32).hexdigest()})
        result = self.stowage("verify", "--repo", repo, backup_id, "--key", self.key, expect=3)
        self.assertIn("two archive digests", result.stderr)
        rewrite({})
        result = self.stowage("verify", "--repo", repo, backup_id, "--key", self.key, expect=3)
        self.assertIn("no archive digest", result.stderr)

    def test_kept_scratch_and_verify_against_changed_row(self):
        result = self.stowage("restore", "--repo", self.repo, self.backup_id, "--key", self.key,
                              "--scratch", "local", "--verify", "--keep")
        conninfo = re.search(r'psql "([^"]+)"', result.stdout).group(1)
        directory = re.search(r"kept running in (\S+)", result.stdout).group(1)
        try:
            subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", conninfo, "-c",
                            'UPDATE "ünïcødé"."Tâble with spaces" SET "naïve" = \'changed\' WHERE id = 7'],
                           check=True, env=stowage_environment())
            result = self.stowage("verify", "--repo", self.repo, self.backup_id, "--key", self.key,
                                  "--against", conninfo, expect=3)
            output = result.stdout + result.stderr
            self.assertIn("Tâble with spaces", output)
            self.assertNotIn("documents", output)
        finally:
            data_dir = os.path.join(directory, "data")
            subprocess.run(["runuser", "-u", "postgres", "--", "/usr/lib/postgresql/15/bin/pg_ctl",
                            "-D", data_dir, "-m", "immediate", "stop"], check=False,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
