"""End-to-end tests of disaster recovery: replicate between regions and
between repository kinds, interrupted copies, repair, foreign objects,
dr status, drills with an escrow key alone, drills into RDS scratch
instances restored from snapshot copies, and interrupted drills.

moto makes RDS instances available at once, and their endpoints lead
nowhere, so RDS drills verify through --connect-host against the class's
PostgreSQL cluster in place of the restored instance."""

import base64
import calendar
import glob
import json
import os
import re
import signal
import time
import unittest

from support import SMALL_PART, StowageTestCase, fake_pg_bindir, open_uploads, redate_backup

from harness import FaultProxy, run_stowage
from harness.faultproxy import REWRITE, STALL
from harness.stowage import spawn_stowage

PRIMARY_REGION = "us-east-1"
REPLICA_REGION = "eu-west-1"
PREFIX = "db"
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_VERIFY = 3
EXIT_OBJECTIVE = 5
EXIT_STORAGE = 6
EXIT_INTERRUPTED = 130


def process_running(pid):
    """Return True while pid is a process that has not exited.

    A postmaster stopped by stowage belongs to init, which may reap it a
    moment later, so a zombie counts as exited."""
    try:
        with open("/proc/%d/stat" % pid) as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def child_names(pid):
    """The program names of pid's child processes."""
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as handle:
            children = [int(child) for child in handle.read().split()]
    except OSError:
        return []
    names = []
    for child in children:
        try:
            with open("/proc/%d/comm" % child) as handle:
                names.append(handle.read().strip())
        except OSError:
            continue
    return names


def parse_time(text):
    """Return the POSIX time of an RFC 3339 UTC time such as 2026-12-04T22:45:15Z."""
    return calendar.timegm(time.strptime(text[:19], "%Y-%m-%dT%H:%M:%S"))


class DrTest(StowageTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.cluster.createdb("app")
        cls.cluster.psql(
            "CREATE TABLE orders AS SELECT g AS id, md5(g::text) AS note "
            "FROM generate_series(1, 5000) g;"
            "CREATE SEQUENCE order_ids START 100;", db="app")
        # Random hex compresses to about half: about 11 MB stored in some
        # 170 parts of 64 KiB.
        cls.cluster.createdb("big")
        cls.cluster.psql(
            "CREATE TABLE samples AS SELECT g AS id, md5(random()::text) || md5(random()::text)"
            " AS a, md5(random()::text) AS b FROM generate_series(1, 200000) g", db="big")

        cls.escrow_key = os.path.join(cls.workdir, "dr-escrow.key")
        cls.run_class_stowage(["keygen", "--out", cls.escrow_key])
        cls.escrow_pub = cls.escrow_key + ".pub"
        with open(cls.escrow_pub) as handle:
            cls.escrow_key_id = handle.read().split()[1]

        # One large backup that the interruption tests copy.
        cls.big_bucket = "stowage-big-%s" % os.urandom(4).hex()
        cls.moto.create_bucket(cls.big_bucket, region=PRIMARY_REGION)
        cls.big_repo = "s3://%s/%s" % (cls.big_bucket, PREFIX)
        result = cls.run_class_stowage(
            ["backup", "--repo", cls.big_repo, "--db", cls.cluster.conninfo("big"),
             "--recipient", cls.pub, "--part-size", "64KiB", "--json"], env=cls.class_s3_env())
        cls.big_id = json.loads(result.stdout)["id"]

    @classmethod
    def class_s3_env(cls, region=PRIMARY_REGION, **extra):
        env = cls.moto.env(region=region)
        env["STOWAGE_MIN_PART_SIZE"] = str(SMALL_PART)
        env.update(extra)
        return env

    @classmethod
    def run_class_stowage(cls, args, env=None):
        result = run_stowage(args, env=env, timeout=600)
        if result.returncode != 0:
            raise RuntimeError("stowage %s failed: %s" % (" ".join(args), result.stderr))
        return result

    # Helpers ---------------------------------------------------------------

    def primary_repo(self):
        bucket = "stowage-primary-%s" % os.urandom(4).hex()
        self.moto.create_bucket(bucket, region=PRIMARY_REGION)
        return "s3://%s/%s" % (bucket, PREFIX), bucket

    def replica_repo(self):
        bucket = "stowage-replica-%s" % os.urandom(4).hex()
        self.moto.create_bucket(bucket, region=REPLICA_REGION)
        return "s3://%s/%s" % (bucket, PREFIX), bucket

    def replica_env(self, **extra):
        return self.class_s3_env(region=REPLICA_REGION, **extra)

    def backup_app(self, repo, env=None, db="app", extra=()):
        """Back up db with the ops key and the escrow key as recipients; return the id."""
        result = self.stowage("backup", "--repo", repo, "--db", self.cluster.conninfo(db),
                              "--recipient", self.pub, "--recipient", self.escrow_pub,
                              "--part-size", "64KiB", "--json", *extra,
                              env=env if env is not None else self.class_s3_env())
        return json.loads(result.stdout)["id"]

    def replicate(self, primary, replica, *extra, env=None, expect=0):
        args = ["replicate", "--repo", primary, "--to", replica, "--json"]
        if replica.startswith("s3://"):
            args += ["--to-region", REPLICA_REGION]
        result = self.stowage(*(args + list(extra)),
                              env=env if env is not None else self.class_s3_env(), expect=expect)
        return json.loads(result.stdout), result

    def replica_ids(self, replica):
        env = self.replica_env() if replica.startswith("s3://") else self.class_s3_env()
        return sorted(entry["id"] for entry in self.list_json(replica, env=env))

    def verify(self, repo, backup_id, env, expect=0, key=None):
        return self.stowage("verify", "--repo", repo, backup_id, "--key", key or self.key,
                            env=env, expect=expect)

    def object_key(self, repo, backup_id, env):
        manifest = self.show_json(repo, backup_id, env=env)
        return "%s/%s" % (PREFIX, manifest["object"]["key"]), manifest

    def copy_requests(self, proxy):
        return [r for r in proxy.requests
                if r.method == "PUT" and r.header("x-amz-copy-source") is not None]

    def start_interrupted_copy(self, replica, proxy):
        """Start replicate of the big backup through proxy; return it once 30 parts are copied."""
        proxy.add_fault(STALL, method="PUT", query=r"partNumber=", nth=20, count=None,
                        seconds=0.5)
        env = self.class_s3_env(AWS_ENDPOINT_URL=proxy.endpoint)
        process = spawn_stowage(["replicate", "--repo", self.big_repo, "--to", replica,
                                 "--to-region", REPLICA_REGION, "--json"], env=env)
        deadline = time.monotonic() + 120
        while len(self.copy_requests(proxy)) < 30 and time.monotonic() < deadline:
            if process.poll() is not None:
                self.fail("replicate ended before the interruption: %s" % (process.communicate(),))
            time.sleep(0.05)
        self.assertGreaterEqual(len(self.copy_requests(proxy)), 30)
        return process

    def replica_keys(self, bucket):
        client = self.moto.client("s3", region=REPLICA_REGION)
        return [item["Key"] for item in
                client.list_objects_v2(Bucket=bucket).get("Contents", [])]

    def manifest_bytes(self, bucket, backup_id, region=REPLICA_REGION, name="app"):
        key = "%s/backups/%s/%s/manifest.json" % (PREFIX, name, backup_id)
        client = self.moto.client("s3", region=region)
        return client.get_object(Bucket=bucket, Key=key)["Body"].read()

    def put_manifest(self, bucket, backup_id, body, region=REPLICA_REGION, name="app"):
        key = "%s/backups/%s/%s/manifest.json" % (PREFIX, name, backup_id)
        self.moto.client("s3", region=region).put_object(Bucket=bucket, Key=key, Body=body)

    def plant_tag(self, bucket, backup_id, name="app"):
        """Give the replica's manifest of backup_id a tag that the primary's lacks."""
        manifest = json.loads(self.manifest_bytes(bucket, backup_id, name=name))
        manifest["tags"] = {"planted": "yes"}
        self.put_manifest(bucket, backup_id, json.dumps(manifest).encode(), name=name)

    def new_key(self, label):
        path = os.path.join(self.workdir, "%s-%s.key" % (label, os.urandom(3).hex()))
        self.stowage("keygen", "--out", path)
        return path

    # Replication between regions -------------------------------------------

    def test_second_run_copies_only_new_backup(self):
        primary, primary_bucket = self.primary_repo()
        replica, replica_bucket = self.replica_repo()
        ids = [self.backup_app(primary), self.backup_app(primary)]

        first, _ = self.replicate(primary, replica)
        self.assertEqual(2, first["copied"])
        self.assertEqual(["server-side", "server-side"],
                         [entry["method"] for entry in first["backups"]])

        ids.append(self.backup_app(primary))
        with FaultProxy(self.moto) as proxy:
            second, _ = self.replicate(primary, replica,
                                       env=self.class_s3_env(AWS_ENDPOINT_URL=proxy.endpoint))
            copies = self.copy_requests(proxy)
            primary_reads = proxy.requests_matching(method="GET", path=r"data\.stow$")
        self.assertEqual(1, second["copied"])
        self.assertEqual(2, second["present"])
        self.assertEqual(0, second["failed"])
        self.assertEqual([ids[2]], [entry["id"] for entry in second["backups"]
                                    if entry["action"] == "copied"])
        self.assertEqual(sorted(ids), self.replica_ids(replica))

        # The new backup's parts were copied inside S3, one request per
        # part, and the only data reads were of the copy in the replica.
        manifest = self.show_json(primary, ids[2], env=self.class_s3_env())
        self.assertEqual(len(manifest["object"]["parts"]), len(copies))
        for record in copies:
            self.assertIn(ids[2], record.header("x-amz-copy-source"))
            self.assertIn(primary_bucket, record.header("x-amz-copy-source"))
            self.assertTrue(record.header("x-amz-copy-source-range").startswith("bytes="))
        self.assertTrue(primary_reads)
        for record in primary_reads:
            self.assertIn(replica_bucket, record.path)

        # The replica's manifests are the primary's bytes.
        primary_client = self.moto.client("s3", region=PRIMARY_REGION)
        replica_client = self.moto.client("s3", region=REPLICA_REGION)
        for backup_id in ids:
            key = "%s/backups/app/%s/manifest.json" % (PREFIX, backup_id)
            self.assertEqual(primary_client.get_object(Bucket=primary_bucket, Key=key)["Body"].read(),
                             replica_client.get_object(Bucket=replica_bucket, Key=key)["Body"].read())
        self.verify(replica, ids[2], self.replica_env())

    def test_other_endpoint_streams_parts(self):
        primary, _ = self.primary_repo()
        replica, _ = self.replica_repo()
        backup_id = self.backup_app(primary)
        other_endpoint = self.moto.endpoint.replace("127.0.0.1", "localhost")

        summary, _ = self.replicate(primary, replica, "--to-endpoint", other_endpoint)
        self.assertEqual(1, summary["copied"])
        self.assertEqual("streamed", summary["backups"][0]["method"])
        self.verify(replica, backup_id, self.replica_env())

    def test_dr_status_shows_lag_and_rpo_basis(self):
        primary, _ = self.primary_repo()
        replica, _ = self.replica_repo()
        first_id = self.backup_app(primary)
        self.replicate(primary, replica)
        time.sleep(1.1)
        second_id = self.backup_app(primary)

        result = self.stowage("dr", "status", "--repo", primary, "--replica", replica,
                              "--replica-region", REPLICA_REGION, "--json",
                              env=self.class_s3_env())
        status = json.loads(result.stdout)
        self.assertEqual(["app"], [entry["name"] for entry in status["names"]])
        entry = status["names"][0]
        self.assertEqual(second_id, entry["primary"]["newest_id"])
        self.assertEqual(first_id, entry["replica"]["newest_id"])
        self.assertEqual(1, entry["replica"]["missing"])
        self.assertGreaterEqual(entry["lag_seconds"], 1)
        self.assertEqual("complete", entry["rpo"]["basis"])
        self.assertEqual(first_id, entry["rpo"]["backup_id"])
        self.assertGreaterEqual(entry["rpo"]["seconds"], 1)

        table = self.stowage("dr", "status", "--repo", primary, "--replica", replica,
                             "--replica-region", REPLICA_REGION, env=self.class_s3_env()).stdout
        self.assertIn(first_id, table)
        self.assertIn("complete " + first_id, table)

    # Interrupted copies -------------------------------------------------------

    def test_sigterm_leaves_no_manifest(self):
        replica, replica_bucket = self.replica_repo()
        manifest = self.show_json(self.big_repo, self.big_id, env=self.class_s3_env())
        self.assertGreater(len(manifest["object"]["parts"]), 100)

        with FaultProxy(self.moto) as proxy:
            process = self.start_interrupted_copy(replica, proxy)
            process.send_signal(signal.SIGTERM)
            stdout, stderr = process.communicate(timeout=120)
        self.assertEqual(130, process.returncode, stderr)
        self.assertIn("SIGTERM", stderr)
        keys = self.replica_keys(replica_bucket)
        self.assertFalse([key for key in keys if key.endswith("manifest.json")], keys)
        self.assertFalse([key for key in keys if key.endswith("data.stow")], keys)
        self.assertEqual([], open_uploads(self.moto, replica_bucket))
        self.assertEqual([], self.replica_ids(replica))

        summary, _ = self.replicate(self.big_repo, replica)
        self.assertEqual(1, summary["copied"])
        self.assertEqual([self.big_id], self.replica_ids(replica))
        self.verify(replica, self.big_id, self.replica_env())

    def test_sigkill_leaves_no_manifest(self):
        replica, replica_bucket = self.replica_repo()
        with FaultProxy(self.moto) as proxy:
            process = self.start_interrupted_copy(replica, proxy)
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate(timeout=60)
        self.assertEqual(-signal.SIGKILL, process.returncode)
        keys = self.replica_keys(replica_bucket)
        self.assertFalse([key for key in keys if key.endswith("manifest.json")], keys)
        self.assertEqual([], self.replica_ids(replica))
        # The killed run's multipart upload stays for stowage gc.
        self.assertEqual(1, len(open_uploads(self.moto, replica_bucket)))

        # Its lock stays too, until it is stale.
        time.sleep(2.5)
        summary, _ = self.replicate(self.big_repo, replica, "--lock-stale-after", "2s")
        self.assertEqual(1, summary["copied"])
        self.assertEqual([self.big_id], self.replica_ids(replica))
        self.verify(replica, self.big_id, self.replica_env())

    # Damaged and foreign objects ------------------------------------------

    def test_checksum_reported_by_copy_is_checked(self):
        primary, backup_id = self.big_repo, self.big_id
        replica, replica_bucket = self.replica_repo()
        parts = self.show_json(primary, backup_id, env=self.class_s3_env())["object"]["parts"]
        self.assertGreater(len(parts), 3)

        def add_checksum(sha256_hex):
            checksum = base64.b64encode(bytes.fromhex(sha256_hex)).decode()

            def rewrite(status, headers, body):
                return status, headers, body.replace(
                    b"</CopyPartResult>",
                    b"<ChecksumSHA256>%s</ChecksumSHA256></CopyPartResult>" % checksum.encode())
            return rewrite

        def error_in_body(status, headers, body):
            return 200, headers, (b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error>"
                                  b"<Code>InternalError</Code><Message>We encountered an "
                                  b"internal error. Please try again.</Message></Error>")

        # S3 computes a copied part's SHA-256; one that differs fails the copy.
        with FaultProxy(self.moto) as proxy:
            proxy.add_fault(REWRITE, method="PUT", query=r"partNumber=3&",
                            function=add_checksum("00" * 32))
            env = self.class_s3_env(AWS_ENDPOINT_URL=proxy.endpoint)
            summary, result = self.replicate(primary, replica, env=env, expect=3)
        self.assertEqual(1, summary["failed"])
        self.assertIn("part 3", summary["backups"][0]["error"])
        self.assertIn(parts[2]["sha256"], summary["backups"][0]["error"])
        self.assertEqual([], self.replica_keys(replica_bucket))
        self.assertEqual([], open_uploads(self.moto, replica_bucket))

        # The right checksum passes, and an error in a 200 response is retried.
        with FaultProxy(self.moto) as proxy:
            proxy.add_fault(REWRITE, method="PUT", query=r"partNumber=2&",
                            function=add_checksum(parts[1]["sha256"]))
            proxy.add_fault(REWRITE, method="PUT", query=r"partNumber=3&", function=error_in_body)
            env = self.class_s3_env(AWS_ENDPOINT_URL=proxy.endpoint)
            summary, result = self.replicate(primary, replica, env=env)
            rewritten = [r for r in proxy.requests if r.detail.get("rewritten")]
        self.assertEqual(2, len(rewritten))
        self.assertEqual(1, summary["copied"])
        self.assertIn("UploadPartCopy", result.stderr)
        self.assertIn("retrying", result.stderr)
        self.verify(replica, backup_id, self.replica_env())

    def test_repair_copies_corrupt_object_again(self):
        primary, _ = self.primary_repo()
        replica, replica_bucket = self.replica_repo()
        backup_id = self.backup_app(primary)
        self.replicate(primary, replica)

        key, manifest = self.object_key(replica, backup_id, self.replica_env())
        client = self.moto.client("s3", region=REPLICA_REGION)
        body = bytearray(client.get_object(Bucket=replica_bucket, Key=key)["Body"].read())
        body[manifest["object"]["parts"][1]["offset"] + 7] ^= 0x20
        client.put_object(Bucket=replica_bucket, Key=key, Body=bytes(body))

        result = self.verify(replica, backup_id, self.replica_env(), expect=3)
        self.assertIn("part 2", result.stderr)
        self.assertIn(backup_id, result.stderr)

        # Without --repair the copies are not read again.
        plain, _ = self.replicate(primary, replica)
        self.assertEqual("present", plain["backups"][0]["action"])

        repaired, _ = self.replicate(primary, replica, "--repair")
        self.assertEqual(1, repaired["repaired"])
        self.assertIn("part 2", repaired["backups"][0]["note"])
        self.verify(replica, backup_id, self.replica_env())

        # So is a truncated object.
        body = client.get_object(Bucket=replica_bucket, Key=key)["Body"].read()
        client.put_object(Bucket=replica_bucket, Key=key, Body=body[:-100])
        repaired, _ = self.replicate(primary, replica, "--repair")
        self.assertEqual(1, repaired["repaired"])
        self.assertIn("%d bytes" % (len(body) - 100), repaired["backups"][0]["note"])
        self.verify(replica, backup_id, self.replica_env())

        # A missing object is copied again as well.
        client.delete_object(Bucket=replica_bucket, Key=key)
        repaired, _ = self.replicate(primary, replica, "--repair")
        self.assertEqual(1, repaired["repaired"])
        self.assertIn("missing", repaired["backups"][0]["note"])
        self.verify(replica, backup_id, self.replica_env())

        # A repair run over good copies changes nothing.
        checked, _ = self.replicate(primary, replica, "--repair")
        self.assertEqual(1, checked["present"])
        self.assertGreater(checked["backups"][0]["check_seconds"], 0)

    def test_foreign_object_is_never_taken(self):
        primary, primary_bucket = self.primary_repo()
        replica, replica_bucket = self.replica_repo()
        same_size_id = self.backup_app(primary)
        other_size_id = self.backup_app(primary)

        # awscli writes objects of its own under both backups' keys.
        for backup_id, size in ((same_size_id, None), (other_size_id, 1000)):
            key, manifest = self.object_key(primary, backup_id, self.class_s3_env())
            path = os.path.join(self.workdir, "foreign-%s" % backup_id)
            with open(path, "wb") as handle:
                handle.write(os.urandom(size or manifest["object"]["stored_bytes"]))
            self.moto.aws("s3", "cp", path, "s3://%s/%s" % (replica_bucket, key),
                          region=REPLICA_REGION)

        summary, _ = self.replicate(primary, replica)
        self.assertEqual(2, summary["copied"])
        notes = {entry["id"]: entry["note"] for entry in summary["backups"]}
        self.assertIn("not a copy of the backup", notes[same_size_id])
        self.assertIn("SHA-256", notes[same_size_id])
        self.assertIn("1000 bytes", notes[other_size_id])
        for backup_id in (same_size_id, other_size_id):
            self.verify(replica, backup_id, self.replica_env())

        # A foreign object beside a manifest that awscli copied as well:
        # verify names it, and repair replaces it.
        key, manifest = self.object_key(primary, same_size_id, self.class_s3_env())
        path = os.path.join(self.workdir, "foreign-again-%s" % same_size_id)
        with open(path, "wb") as handle:
            handle.write(os.urandom(manifest["object"]["stored_bytes"]))
        self.moto.aws("s3", "cp", path, "s3://%s/%s" % (replica_bucket, key),
                      region=REPLICA_REGION)
        result = self.verify(replica, same_size_id, self.replica_env(), expect=3)
        self.assertIn("SHA-256", result.stderr)
        repaired, _ = self.replicate(primary, replica, "--repair")
        self.assertEqual(1, repaired["repaired"])
        self.assertEqual(1, repaired["present"])
        self.verify(replica, same_size_id, self.replica_env())

    def test_leftover_complete_object_is_reused(self):
        primary, primary_bucket = self.primary_repo()
        replica, replica_bucket = self.replica_repo()
        backup_id = self.backup_app(primary)

        # A run that stopped after its upload leaves the object, no manifest.
        key, _ = self.object_key(primary, backup_id, self.class_s3_env())
        self.moto.client("s3", region=REPLICA_REGION).copy_object(
            Bucket=replica_bucket, Key=key, CopySource={"Bucket": primary_bucket, "Key": key})

        summary, _ = self.replicate(primary, replica)
        self.assertEqual(1, summary["reused"])
        self.assertEqual("reused", summary["backups"][0]["action"])
        self.assertIsNone(summary["backups"][0]["method"])
        self.assertGreater(summary["backups"][0]["check_seconds"], 0)
        self.assertEqual([backup_id], self.replica_ids(replica))

    def test_invalid_replica_manifest_needs_repair(self):
        primary, _ = self.primary_repo()
        replica, replica_bucket = self.replica_repo()
        backup_id = self.backup_app(primary)
        self.moto.client("s3", region=REPLICA_REGION).put_object(
            Bucket=replica_bucket, Body=b"{not json",
            Key="%s/backups/app/%s/manifest.json" % (PREFIX, backup_id))

        summary, _ = self.replicate(primary, replica, expect=3)
        self.assertEqual("failed", summary["backups"][0]["action"])
        self.assertIn("invalid manifest", summary["backups"][0]["error"])
        self.assertEqual([], self.replica_ids(replica))

        summary, _ = self.replicate(primary, replica, "--repair")
        self.assertEqual("repaired", summary["backups"][0]["action"])
        self.assertIn("invalid", summary["backups"][0]["note"])
        self.assertEqual([backup_id], self.replica_ids(replica))
        self.verify(replica, backup_id, self.replica_env())

        # A valid manifest that differs from the primary's is replaced too,
        # and the object, which passes its check, is kept.
        key = "%s/backups/app/%s/manifest.json" % (PREFIX, backup_id)
        client = self.moto.client("s3", region=REPLICA_REGION)
        manifest = json.loads(client.get_object(Bucket=replica_bucket, Key=key)["Body"].read())
        manifest["tags"] = {"planted": "yes"}
        client.put_object(Bucket=replica_bucket, Key=key, Body=json.dumps(manifest).encode())
        summary, _ = self.replicate(primary, replica, "--repair")
        self.assertEqual("repaired", summary["backups"][0]["action"])
        self.assertIn("differs", summary["backups"][0]["note"])
        self.assertIsNone(summary["backups"][0]["method"])
        self.assertNotIn("planted", json.dumps(self.show_json(replica, backup_id,
                                                              env=self.replica_env())))

    # Signatures, repair order and races -----------------------------------

    def test_repair_keeps_good_signed_copy(self):
        primary, primary_bucket = self.primary_repo()
        replica, replica_bucket = self.replica_repo()
        signing_key = self.key + ".sign"
        backup_id = self.backup_app(primary, extra=("--signing-key", signing_key))
        self.replicate(primary, replica)
        good = self.manifest_bytes(replica_bucket, backup_id)

        # The primary's manifest is edited after it was signed.
        tampered = self.manifest_bytes(primary_bucket, backup_id, region=PRIMARY_REGION)
        self.assertIn(b'"rows": 5000', tampered)
        self.put_manifest(primary_bucket, backup_id,
                          tampered.replace(b'"rows": 5000', b'"rows": 5001', 1),
                          region=PRIMARY_REGION)

        # Without a trusted key repair cannot tell which copy is genuine.
        summary, result = self.replicate(primary, replica, "--repair", expect=EXIT_VERIFY)
        self.assertEqual("failed", summary["backups"][0]["action"])
        self.assertIn("--trusted-key", result.stderr)
        self.assertEqual(good, self.manifest_bytes(replica_bucket, backup_id))

        # With one, the primary's manifest fails its signature check.
        summary, result = self.replicate(primary, replica, "--repair", "--trusted-key",
                                         signing_key + ".pub", expect=EXIT_VERIFY)
        self.assertIn("changed after it was signed", summary["backups"][0]["error"])
        self.assertEqual(good, self.manifest_bytes(replica_bucket, backup_id))
        self.stowage("verify", "--repo", replica, backup_id, "--key", self.key,
                     "--trusted-key", signing_key + ".pub", env=self.replica_env())

    def test_tampered_manifest_is_not_copied(self):
        primary, primary_bucket = self.primary_repo()
        replica, _ = self.replica_repo()
        signing_key = self.key + ".sign"
        good_id = self.backup_app(primary, extra=("--signing-key", signing_key))
        tampered_id = self.backup_app(primary, extra=("--signing-key", signing_key))
        tampered = self.manifest_bytes(primary_bucket, tampered_id, region=PRIMARY_REGION)
        self.put_manifest(primary_bucket, tampered_id,
                          tampered.replace(b'"rows": 5000', b'"rows": 5001', 1),
                          region=PRIMARY_REGION)

        summary, _ = self.replicate(primary, replica, "--trusted-key", signing_key + ".pub",
                                    expect=EXIT_VERIFY)
        actions = {entry["id"]: entry["action"] for entry in summary["backups"]}
        self.assertEqual({good_id: "copied", tampered_id: "failed"}, actions)
        self.assertEqual([good_id], self.replica_ids(replica))

        # STOWAGE_TRUSTED_KEYS sets the trusted keys too.
        env = self.class_s3_env(STOWAGE_TRUSTED_KEYS=signing_key + ".pub")
        summary, result = self.replicate(primary, replica, env=env, expect=EXIT_VERIFY)
        self.assertIn("changed after it was signed", result.stderr)
        self.assertEqual([good_id], self.replica_ids(replica))

    def test_interrupted_repair_keeps_manifest(self):
        replica, replica_bucket = self.replica_repo()
        self.replicate(self.big_repo, replica)
        self.plant_tag(replica_bucket, self.big_id, name="big")

        # The differing manifest makes repair read the object back, slowly.
        with FaultProxy(self.moto) as proxy:
            proxy.add_fault(STALL, method="GET", path=r"data\.stow$", nth=3, count=None,
                            seconds=0.5)
            env = self.class_s3_env(AWS_ENDPOINT_URL=proxy.endpoint)
            process = spawn_stowage(["replicate", "--repo", self.big_repo, "--to", replica,
                                     "--to-region", REPLICA_REGION, "--repair", "--json"],
                                    env=env)
            deadline = time.monotonic() + 120
            while (len(proxy.requests_matching(method="GET", path=r"data\.stow$")) < 6 and
                   time.monotonic() < deadline):
                if process.poll() is not None:
                    self.fail("replicate ended before the interruption: %s"
                              % (process.communicate(),))
                time.sleep(0.05)
            process.send_signal(signal.SIGTERM)
            _, stderr = process.communicate(timeout=120)
        self.assertEqual(EXIT_INTERRUPTED, process.returncode, stderr)
        self.assertEqual([self.big_id], self.replica_ids(replica))

        summary, result = self.replicate(self.big_repo, replica, "--repair")
        self.assertEqual(1, summary["repaired"])
        self.assertIn("replaced its manifest", result.stderr)
        self.assertNotIn("copied again", result.stderr)
        self.assertNotIn("planted", self.manifest_bytes(replica_bucket, self.big_id,
                                                        name="big").decode())

    def test_rekey_during_copy_reaches_replica(self):
        primary, _ = self.primary_repo()
        replica, _ = self.replica_repo()
        backup_id = self.backup_app(primary)
        added = self.new_key("added")

        # The first part copy stalls while rekey adds a recipient on the primary.
        with FaultProxy(self.moto) as proxy:
            proxy.add_fault(STALL, method="PUT", query=r"partNumber=", nth=1, count=1,
                            seconds=4)
            env = self.class_s3_env(AWS_ENDPOINT_URL=proxy.endpoint)
            process = spawn_stowage(["replicate", "--repo", primary, "--to", replica,
                                     "--to-region", REPLICA_REGION, "--json"], env=env)
            deadline = time.monotonic() + 60
            while not self.copy_requests(proxy) and time.monotonic() < deadline:
                time.sleep(0.05)
            self.assertTrue(self.copy_requests(proxy))
            self.stowage("rekey", "--repo", primary, backup_id, "--key", self.key,
                         "--add-recipient", added + ".pub", "--signing-key",
                         self.key + ".sign", "--accept-unsigned", env=self.class_s3_env())
            stdout, stderr = process.communicate(timeout=120)
        self.assertEqual(0, process.returncode, stderr)
        self.assertEqual(1, json.loads(stdout)["copied"])
        self.assertIn("changed while the backup was copied", stderr)
        self.verify(replica, backup_id, self.replica_env(), key=added)

    # Names, messages and hold copies -------------------------------------

    def test_unknown_name_is_usage_error(self):
        primary, _ = self.primary_repo()
        replica, _ = self.replica_repo()
        self.backup_app(primary)

        result = self.stowage("replicate", "--repo", primary, "--to", replica, "--to-region",
                              REPLICA_REGION, "--name", "nosuch", env=self.class_s3_env(),
                              expect=EXIT_USAGE)
        self.assertIn("no backups of nosuch", result.stderr)
        self.assertIn("catalog names: app", result.stderr)

        result = self.stowage("dr", "status", "--repo", primary, "--replica", replica,
                              "--replica-region", REPLICA_REGION, "--name", "nosuch",
                              env=self.class_s3_env(), expect=EXIT_USAGE)
        self.assertIn("catalog names: app", result.stderr)

        result = self.stowage("replicate", "--repo", primary, "--to", replica, "--to-region",
                              REPLICA_REGION, "--name", "bad/name", env=self.class_s3_env(),
                              expect=EXIT_USAGE)
        self.assertIn("bad/name", result.stderr)

    def test_unreachable_replica_names_its_option(self):
        primary, _ = self.primary_repo()
        replica, _ = self.replica_repo()
        nowhere = "http://127.0.0.1:9"

        result = self.stowage("replicate", "--repo", primary, "--to", replica, "--to-region",
                              REPLICA_REGION, "--to-endpoint", nowhere,
                              env=self.class_s3_env(), expect=None)
        self.assertNotEqual(0, result.returncode)
        self.assertIn("check --to-endpoint", result.stderr)
        self.assertNotIn("check --endpoint", result.stderr)

        result = self.stowage("dr", "status", "--repo", primary, "--replica", replica,
                              "--replica-region", REPLICA_REGION, "--replica-endpoint", nowhere,
                              env=self.class_s3_env(), expect=None)
        self.assertNotEqual(0, result.returncode)
        self.assertIn("check --replica-endpoint", result.stderr)

        missing = "file:///nonexistent-%s/replica" % os.urandom(3).hex()
        result = self.stowage("replicate", "--repo", primary, "--to", missing,
                              env=self.class_s3_env(), expect=EXIT_STORAGE)
        self.assertIn("or fix --to\n", result.stderr)
        result = self.stowage("dr", "status", "--repo", primary, "--replica", missing,
                              env=self.class_s3_env(), expect=EXIT_STORAGE)
        self.assertIn("or fix --replica\n", result.stderr)

    def test_dr_status_without_primary_shows_replica(self):
        # In a disaster the primary is gone: dr status still shows what the
        # replica can restore, and exits 6 for the primary.
        primary, _ = self.primary_repo()
        replica, _ = self.replica_repo()
        backup_id = self.backup_app(primary)
        self.replicate(primary, replica)
        gone = "s3://nosuchbucket-%s/prod" % os.urandom(3).hex()
        args = ["dr", "status", "--repo", gone, "--replica", replica, "--replica-region",
                REPLICA_REGION]

        result = self.stowage(*args, env=self.class_s3_env(), expect=EXIT_STORAGE)
        self.assertIn(backup_id, result.stdout)
        self.assertIn("The primary %s could not be read" % gone, result.stdout)
        self.assertIn("NoSuchBucket", result.stderr)

        result = self.stowage(*args, "--json", env=self.class_s3_env(), expect=EXIT_STORAGE)
        status = json.loads(result.stdout)
        self.assertIn("NoSuchBucket", status["primary_error"])
        [entry] = status["names"]
        self.assertEqual(backup_id, entry["replica"]["newest_id"])
        self.assertIsNone(entry["primary"])
        self.assertIsNone(entry["replica"]["missing"])
        self.assertEqual(backup_id, entry["rpo"]["backup_id"])

        empty = self.file_repo()
        result = self.stowage("dr", "status", "--repo", gone, "--replica", empty, "--name", "app",
                              env=self.class_s3_env(), expect=EXIT_STORAGE)
        self.assertIn("the replica has no backups of app: nothing can be restored from it",
                      result.stderr)

    def test_dr_status_of_future_backup_has_no_rpo(self):
        primary = self.file_repo()
        replica = self.file_repo()
        self.backup(primary, "app")
        backup_id = self.list_json(primary)[0]["id"]
        self.stowage("replicate", "--repo", primary, "--to", replica)
        redate_backup(replica, "app", backup_id)

        result = self.stowage("dr", "status", "--repo", primary, "--replica", replica, "--json")
        [entry] = json.loads(result.stdout)["names"]
        self.assertIsNone(entry["rpo"]["seconds"])
        self.assertEqual("future", entry["rpo"]["basis"])
        self.assertIn("its RPO cannot be measured", result.stderr)

    def test_hold_is_replicated(self):
        primary, _ = self.primary_repo()
        replica, _ = self.replica_repo()
        backup_id = self.backup_app(primary)
        self.replicate(primary, replica)

        self.stowage("hold", "--repo", primary, backup_id, "--reason", "legal hold, case 17",
                     env=self.class_s3_env())
        summary, _ = self.replicate(primary, replica)
        self.assertEqual(1, summary["present"])
        listed = self.list_json(replica, env=self.replica_env())
        self.assertEqual("legal hold, case 17", listed[0]["hold"]["reason"])

    # Other repository kinds ------------------------------------------------

    def test_s3_to_file_and_file_to_s3(self):
        primary, _ = self.primary_repo()
        backup_id = self.backup_app(primary)
        file_replica = self.file_repo()

        summary, _ = self.replicate(primary, file_replica)
        self.assertEqual(1, summary["copied"])
        self.assertEqual("streamed", summary["backups"][0]["method"])
        self.verify(file_replica, backup_id, self.class_s3_env())
        self.assertTrue(os.path.exists(os.path.join(
            file_replica[len("file://"):], "backups", "app", backup_id, "manifest.json")))

        file_primary = self.file_repo()
        file_id = self.backup_app(file_primary, env=self.class_s3_env())
        replica, _ = self.replica_repo()
        summary, _ = self.replicate(file_primary, replica)
        self.assertEqual(1, summary["copied"])
        self.assertEqual("streamed", summary["backups"][0]["method"])
        self.assertEqual([file_id], self.replica_ids(replica))
        self.verify(replica, file_id, self.replica_env())

        again, _ = self.replicate(file_primary, replica)
        self.assertEqual(0, again["copied"])
        self.assertEqual(1, again["present"])

    # RDS snapshots ---------------------------------------------------------

    def test_stowage_snapshots_are_copied_once(self):
        rds = self.moto.client("rds", region=PRIMARY_REGION)
        rds_replica = self.moto.client("rds", region=REPLICA_REGION)
        instance = "drdb-%s" % os.urandom(3).hex()
        rds.create_db_instance(DBInstanceIdentifier=instance, DBInstanceClass="db.t3.micro",
                               Engine="postgres", AllocatedStorage=20,
                               MasterUsername="postgres", MasterUserPassword="not-used-1")
        created = json.loads(self.stowage("snapshot", "create", "--instance", instance,
                                          "--json", "--poll-interval", "1s",
                                          env=self.class_s3_env()).stdout)
        rds.create_db_snapshot(DBInstanceIdentifier=instance,
                               DBSnapshotIdentifier=instance + "-foreign")
        primary, _ = self.primary_repo()
        replica, replica_bucket = self.replica_repo()
        self.backup_app(primary)

        summary, _ = self.replicate(primary, replica, "--snapshots", "--instance", instance,
                                    "--poll-interval", "1s")
        self.assertEqual(1, summary["copied"])
        snapshots = summary["snapshots"]
        self.assertEqual(PRIMARY_REGION, snapshots["source_region"])
        self.assertEqual(REPLICA_REGION, snapshots["target_region"])
        self.assertEqual(1, snapshots["copied"])
        # The foreign manual snapshot and the automated one stay where they are.
        self.assertEqual(2, snapshots["skipped"])
        copy_id = created["id"] + "-" + REPLICA_REGION
        self.assertEqual([(created["id"], copy_id, "copied")],
                         [(item["id"], item["copy_id"], item["action"])
                          for item in snapshots["snapshots"]])
        described = rds_replica.describe_db_snapshots(
            DBSnapshotIdentifier=copy_id)["DBSnapshots"][0]
        self.assertEqual("available", described["Status"])
        tags = {tag["Key"]: tag["Value"] for tag in rds_replica.list_tags_for_resource(
            ResourceName=described["DBSnapshotArn"])["TagList"]}
        self.assertEqual(created["arn"], tags["stowage:copied-from"])
        self.assertEqual([], [s["DBSnapshotIdentifier"] for s in rds_replica.describe_db_snapshots(
            DBInstanceIdentifier=instance)["DBSnapshots"] if "foreign" in s["DBSnapshotIdentifier"]])
        manifest_key = "%s/snapshots/%s/%s/manifest.json" % (PREFIX, instance, copy_id)
        self.assertIn(manifest_key, self.replica_keys(replica_bucket))

        # A second run finds the copy and records nothing twice.
        again, _ = self.replicate(primary, replica, "--snapshots", "--instance", instance,
                                  "--poll-interval", "1s")
        self.assertEqual(0, again["snapshots"]["copied"])
        self.assertEqual(1, again["snapshots"]["present"])
        self.assertEqual(1, again["present"])

        # A copy whose manifest an interrupted run did not write is recorded.
        self.moto.client("s3", region=REPLICA_REGION).delete_object(Bucket=replica_bucket,
                                                                    Key=manifest_key)
        again, _ = self.replicate(primary, replica, "--snapshots", "--instance", instance,
                                  "--poll-interval", "1s")
        self.assertEqual(1, again["snapshots"]["present"])
        self.assertIn(manifest_key, self.replica_keys(replica_bucket))

    # Drills ----------------------------------------------------------------

    def test_drill_with_escrow_key_alone(self):
        primary, _ = self.primary_repo()
        replica, _ = self.replica_repo()
        self.backup_app(primary)
        # Start times have whole seconds: the newer backup must start later.
        time.sleep(1.1)
        backup_id = self.backup_app(primary)
        self.replicate(primary, replica)
        manifest = self.show_json(replica, backup_id, env=self.replica_env())
        key_ids = [entry["key_id"] for entry in manifest["encryption"]["recipients"]]
        self.assertEqual(2, len(key_ids))
        self.assertIn(self.escrow_key_id, key_ids)

        report_path = os.path.join(self.workdir, "drill-%s.json" % backup_id)
        markdown_path = os.path.join(self.workdir, "drill-%s.md" % backup_id)
        result = self.stowage("drill", "--repo", replica, "--key", self.escrow_key,
                              "--rpo-objective", "1h", "--rto-objective", "10m",
                              "--report", report_path, "--markdown", markdown_path,
                              env=self.replica_env())
        self.assertIn("passed", result.stdout)
        with open(report_path) as handle:
            report = json.load(handle)
        self.assertEqual("passed", report["result"])
        self.assertEqual(backup_id, report["backup"]["id"])
        self.assertEqual(replica, report["repository"])
        self.assertEqual(REPLICA_REGION, report["region"])
        self.assertTrue(report["verification"]["passed"])
        steps = {step["step"]: step for step in report["steps"]}
        for name in ("select-backup", "open-key", "scratch-create", "restore", "verify",
                     "scratch-remove"):
            self.assertIn(name, steps)
            self.assertEqual("ok", steps[name]["status"])
            self.assertGreaterEqual(steps[name]["seconds"], 0)
        self.assertGreaterEqual(report["rpo"]["measured_seconds"], 0)
        self.assertEqual(3600, report["rpo"]["objective_seconds"])
        self.assertTrue(report["rpo"]["met"])
        self.assertGreater(report["rto"]["measured_seconds"], 0)
        self.assertLess(report["rto"]["measured_seconds"],
                        report["restore_report"]["total_seconds"] + steps["select-backup"]["seconds"] + 1)
        self.assertTrue(report["rto"]["met"])
        with open(markdown_path) as handle:
            markdown = handle.read()
        for text in ("# DR drill: app", backup_id, "RPO", "RTO", "**passed**", "| verify |"):
            self.assertIn(text, markdown)

        # The drill's verified restore is the replica's RPO basis now.
        status = json.loads(self.stowage(
            "dr", "status", "--repo", primary, "--replica", replica, "--replica-region",
            REPLICA_REGION, "--json", env=self.class_s3_env()).stdout)
        self.assertEqual("verified", status["names"][0]["rpo"]["basis"])
        self.assertEqual(backup_id, status["names"][0]["rpo"]["backup_id"])

        # The same backup against a one-second RPO objective, once it is older.
        time.sleep(2)
        result = self.stowage("drill", "--repo", replica, "--key", self.escrow_key,
                              "--rpo-objective", "1s", "--report", report_path,
                              env=self.replica_env(), expect=5)
        self.assertIn("RPO objective", result.stderr)
        with open(report_path) as handle:
            report = json.load(handle)
        self.assertEqual("objective missed", report["result"])
        self.assertFalse(report["rpo"]["met"])
        self.assertGreaterEqual(report["rpo"]["measured_seconds"], 2)
        self.assertTrue(report["verification"]["passed"])
        self.assertEqual(5, report["exit_code"])

    def test_drill_of_corrupt_replica_fails_verification(self):
        primary, _ = self.primary_repo()
        replica, replica_bucket = self.replica_repo()
        backup_id = self.backup_app(primary)
        self.replicate(primary, replica)
        key, manifest = self.object_key(replica, backup_id, self.replica_env())
        client = self.moto.client("s3", region=REPLICA_REGION)
        body = bytearray(client.get_object(Bucket=replica_bucket, Key=key)["Body"].read())
        body[manifest["object"]["parts"][0]["offset"] + 100] ^= 0x01
        client.put_object(Bucket=replica_bucket, Key=key, Body=bytes(body))

        report_path = os.path.join(self.workdir, "drill-corrupt-%s.json" % backup_id)
        result = self.stowage("drill", "--repo", replica, "--key", self.escrow_key,
                              "--rto-objective", "2h", "--report", report_path,
                              env=self.replica_env(), expect=3)
        self.assertIn("part 1", result.stderr)
        with open(report_path) as handle:
            report = json.load(handle)
        self.assertEqual("failed", report["result"])
        self.assertIsNone(report["rto"]["measured_seconds"])
        self.assertEqual(7200, report["rto"]["objective_seconds"])
        self.assertIsNone(report["rto"]["met"])
        self.assertEqual("the verified restore did not pass", report["rto"]["not_measured_reason"])
        self.assertIsNone(report["rpo"]["not_measured_reason"])
        self.assertIn("RTO  not measured: the verified restore did not pass (objective 2h)",
                      result.stdout)
        self.assertNotIn("MISSED", result.stdout)

    def report_paths(self, name):
        return (os.path.join(self.workdir, "%s.json" % name),
                os.path.join(self.workdir, "%s.md" % name))

    def test_drill_of_missing_repository_writes_reports(self):
        repo = "s3://nosuchbucket-%s/t1" % os.urandom(3).hex()
        rds = ["--scratch", "rds", "--rds-region", REPLICA_REGION, "--instance", "db1"]
        for scratch, options in (("local", ["--key", self.escrow_key]), ("rds", rds)):
            with self.subTest(scratch=scratch):
                report_path, markdown_path = self.report_paths("missing-repo-" + scratch)
                result = self.stowage("drill", "--repo", repo, "--report", report_path,
                                      "--markdown", markdown_path, *options,
                                      env=self.replica_env(), expect=EXIT_STORAGE)
                with open(report_path) as handle:
                    report = json.load(handle)
                self.assertEqual("failed", report["result"])
                self.assertEqual(EXIT_STORAGE, report["exit_code"])
                self.assertEqual(repo, report["repository"])
                self.assertEqual(scratch, report["scratch"])
                self.assertEqual(REPLICA_REGION, report["region"])
                self.assertIn("nosuchbucket", report["error"])
                self.assertIsNone(report["rpo"]["measured_seconds"])
                with open(markdown_path) as handle:
                    self.assertIn("**failed**", handle.read())
                self.assertIn("failed", result.stdout)

    def test_drill_checks_report_paths_first(self):
        repo = self.file_repo()
        self.backup(repo, "app")
        for option in ("--report", "--markdown"):
            with self.subTest(option=option):
                result = self.stowage("drill", "--repo", repo, "--key", self.key, option,
                                      "/nonexistent/d8.out", expect=EXIT_USAGE)
                self.assertEqual(1, result.stderr.count("cannot write %s /nonexistent/d8.out"
                                                        % option), result.stderr)
                self.assertNotIn("drill of", result.stdout)
                self.assertIsNone(self.list_json(repo)[0]["last_verification"])

    def test_drill_of_future_backup_cannot_measure_rpo(self):
        # A host whose clock ran ahead dated the backup in 2099: its age is
        # negative and proves nothing about the RPO objective.
        repo = self.file_repo()
        self.backup(repo, "app")
        backup_id = self.list_json(repo)[0]["id"]
        redate_backup(repo, "app", backup_id)

        report_path, _ = self.report_paths("future-%s" % backup_id)
        result = self.stowage("drill", "--repo", repo, "--key", self.key, "--rpo-objective", "1h",
                              "--report", report_path, expect=5)
        self.assertIn("the drill cannot measure its RPO: backup %s is dated" % backup_id,
                      result.stderr)
        self.assertIn("clock of the host that took it", result.stderr)
        self.assertNotIn("RPO -", result.stdout)
        self.assertIn("RPO  not measured: the recovery point is dated", result.stdout)
        with open(report_path) as handle:
            report = json.load(handle)
        self.assertIsNone(report["rpo"]["measured_seconds"])
        self.assertIn("the clock that dated it was wrong", report["rpo"]["not_measured_reason"])

        # Without an objective there is nothing to miss.
        self.stowage("drill", "--repo", repo, "--key", self.key)

    def test_drill_of_empty_repository_fails(self):
        report_path, _ = self.report_paths("empty-repo")
        result = self.stowage("drill", "--repo", self.file_repo(), "--key", self.key,
                              "--report", report_path, expect=EXIT_FAILURE)
        self.assertIn("no complete backup in file://", result.stderr)
        with open(report_path) as handle:
            report = json.load(handle)
        self.assertEqual("failed", report["result"])
        self.assertEqual(EXIT_FAILURE, report["exit_code"])
        self.assertEqual("failed", report["steps"][0]["status"])

    def test_drill_failures_outside_backup_not_recorded(self):
        repo = self.file_repo()
        self.backup(repo, "app")
        self.stowage("drill", "--repo", repo, "--key", self.key)
        self.assertEqual("passed", self.list_json(repo)[0]["last_verification"])
        records = os.path.join(repo[len("file://"):], "backups", "*", "*", "verifications", "*")
        bindir = fake_pg_bindir(self.workdir, "no-pg-restore-%s" % os.urandom(3).hex(),
                                'exec "$REAL" "$@"', program="pg_restore")
        os.chmod(os.path.join(bindir, "pg_restore"), 0o644)
        cases = [("missing scratch directory", {"STOWAGE_SCRATCH_DIR": "/nonexistent"},
                  EXIT_FAILURE),
                 ("pg_restore not executable", {"STOWAGE_PG_BINDIR": bindir}, EXIT_USAGE)]
        for name, env, code in cases:
            with self.subTest(name):
                report_path, _ = self.report_paths("outside-" + name.replace(" ", "-"))
                result = self.stowage("drill", "--repo", repo, "--key", self.key, "--report",
                                      report_path, env=env, expect=code)
                self.assertIn("is not recorded", result.stderr)
                self.assertEqual("passed", self.list_json(repo)[0]["last_verification"])
                self.assertEqual(1, len(glob.glob(records)))
                with open(report_path) as handle:
                    self.assertEqual("failed", json.load(handle)["result"])

    # RDS drills ------------------------------------------------------------

    def rds_instance(self):
        """Create an instance in the primary region; its master user is the cluster's superuser."""
        instance = "drill-%s" % os.urandom(3).hex()
        self.moto.client("rds", region=PRIMARY_REGION).create_db_instance(
            DBInstanceIdentifier=instance, DBInstanceClass="db.t3.micro", Engine="postgres",
            AllocatedStorage=20, MasterUsername=self.cluster.superuser,
            MasterUserPassword="not-used-1")
        return instance

    def create_rds_snapshot(self, instance):
        result = self.stowage("snapshot", "create", "--instance", instance, "--json",
                              "--poll-interval", "1s", env=self.class_s3_env())
        return json.loads(result.stdout)

    def replicated_snapshot(self):
        """Return (instance, snapshot, copy id, replica): a Stowage snapshot of a new
        instance and a backup of app, both replicated to the replica region."""
        instance = self.rds_instance()
        snapshot = self.create_rds_snapshot(instance)
        primary, _ = self.primary_repo()
        replica, _ = self.replica_repo()
        self.backup_app(primary)
        # The copy is made at least a second after its original, so the
        # report shows which of the two times the RPO counts from.
        time.sleep(1.1)
        summary, _ = self.replicate(primary, replica, "--snapshots", "--instance", instance,
                                    "--poll-interval", "1s")
        self.assertEqual(1, summary["snapshots"]["copied"])
        return instance, snapshot, snapshot["id"] + "-" + REPLICA_REGION, replica

    def rds_drill_args(self, replica, instance, *extra):
        return ["drill", "--repo", replica, "--scratch", "rds", "--rds-region", REPLICA_REGION,
                "--instance", instance, "--connect-host",
                "%s:%d" % (self.cluster.host, self.cluster.port), "--database", "app",
                "--poll-interval", "1s"] + list(extra)

    def replica_scratch_instances(self):
        client = self.moto.client("rds", region=REPLICA_REGION)
        return [item["DBInstanceIdentifier"]
                for item in client.describe_db_instances()["DBInstances"]
                if item["DBInstanceIdentifier"].startswith("stowage-scratch-")]

    def test_rds_drill_from_snapshot_copy(self):
        instance, snapshot, copy_id, replica = self.replicated_snapshot()
        copy = self.moto.client("rds", region=REPLICA_REGION).describe_db_snapshots(
            DBSnapshotIdentifier=copy_id)["DBSnapshots"][0]
        original_time = calendar.timegm(copy["OriginalSnapshotCreateTime"].utctimetuple())
        copy_time = calendar.timegm(copy["SnapshotCreateTime"].utctimetuple())
        self.assertLess(original_time, copy_time)

        report_path = os.path.join(self.workdir, "rds-drill-%s.json" % instance)
        markdown_path = os.path.join(self.workdir, "rds-drill-%s.md" % instance)
        result = self.stowage(*self.rds_drill_args(
            replica, instance, "--rpo-objective", "1h", "--rto-objective", "10m", "--report",
            report_path, "--markdown", markdown_path), env=self.replica_env())
        self.assertIn("drill of snapshot copy %s in %s: passed" % (copy_id, REPLICA_REGION),
                      result.stdout)

        with open(report_path) as handle:
            report = json.load(handle)
        self.assertEqual("passed", report["result"])
        self.assertEqual("rds", report["scratch"])
        self.assertEqual(REPLICA_REGION, report["region"])
        self.assertIsNone(report["backup"])
        self.assertEqual(copy_id, report["snapshot"]["id"])
        self.assertEqual(instance, report["snapshot"]["instance"])
        self.assertEqual(snapshot["arn"], report["snapshot"]["copied_from"])
        self.assertEqual("OriginalSnapshotCreateTime", report["snapshot"]["recovery_point_basis"])
        self.assertEqual(original_time, parse_time(report["snapshot"]["recovery_point"]))

        # The RPO counts from the original snapshot, not from the copy.
        self.assertEqual(parse_time(report["started_at"]) - original_time,
                         report["rpo"]["measured_seconds"])
        self.assertEqual(3600, report["rpo"]["objective_seconds"])
        self.assertTrue(report["rpo"]["met"])
        self.assertGreater(report["rto"]["measured_seconds"], 0)
        self.assertEqual(600, report["rto"]["objective_seconds"])
        self.assertTrue(report["rto"]["met"])

        steps = {step["step"]: step for step in report["steps"]}
        for name in ("select-snapshot", "describe-source", "scratch-create", "scratch-wait",
                     "connect", "verify", "scratch-delete"):
            self.assertIn(name, steps)
            self.assertEqual("ok", steps[name]["status"])
            self.assertGreaterEqual(steps[name]["seconds"], 0)
        self.assertLess(report["rto"]["measured_seconds"],
                        report["restore_report"]["total_seconds"]
                        + steps["select-snapshot"]["seconds"] + 1)

        self.assertTrue(report["verification"]["passed"])
        self.assertEqual(0, report["verification"]["difference_count"])
        database = report["restore_report"]["databases"][0]
        self.assertEqual("app", database["name"])
        self.assertEqual(1, database["tables_present"])
        self.assertEqual("deleted", report["restore_report"]["scratch_instance"]["status"])
        self.assertEqual([], self.replica_scratch_instances())

        with open(markdown_path) as handle:
            markdown = handle.read()
        for text in ("# DR drill: instance " + instance, copy_id, "**passed**",
                     "OriginalSnapshotCreateTime", "| scratch-delete |"):
            self.assertIn(text, markdown)
        self.assertNotIn("decrypt+decompress", markdown)

    def test_rds_drill_misses_rpo_objective(self):
        instance, _, copy_id, replica = self.replicated_snapshot()
        time.sleep(1)
        report_path = os.path.join(self.workdir, "rds-drill-rpo-%s.json" % instance)
        result = self.stowage(*self.rds_drill_args(replica, instance, "--rpo-objective", "1s",
                                                   "--report", report_path),
                              env=self.replica_env(), expect=EXIT_OBJECTIVE)
        self.assertIn("RPO objective", result.stderr)
        self.assertIn(copy_id, result.stderr)
        with open(report_path) as handle:
            report = json.load(handle)
        self.assertEqual("objective missed", report["result"])
        self.assertEqual(EXIT_OBJECTIVE, report["exit_code"])
        self.assertFalse(report["rpo"]["met"])
        self.assertGreaterEqual(report["rpo"]["measured_seconds"], 2)
        self.assertTrue(report["verification"]["passed"])
        self.assertEqual([], self.replica_scratch_instances())

    def test_rds_drill_falls_back_to_name(self):
        instance, snapshot, copy_id, replica = self.replicated_snapshot()

        def drop_original_time(status, headers, body):
            return status, headers, re.sub(
                rb"<OriginalSnapshotCreateTime>[^<]*</OriginalSnapshotCreateTime>", b"", body)

        report_path = os.path.join(self.workdir, "rds-drill-name-%s.json" % instance)
        with FaultProxy(self.moto) as proxy:
            proxy.add_fault(REWRITE, method="POST", body=r"Action=DescribeDBSnapshots",
                            count=None, function=drop_original_time)
            self.stowage(*self.rds_drill_args(replica, instance, "--report", report_path),
                         env=self.replica_env(AWS_ENDPOINT_URL=proxy.endpoint))
        with open(report_path) as handle:
            report = json.load(handle)
        self.assertEqual("passed", report["result"])
        self.assertIsNone(report["snapshot"]["original_created_at"])
        self.assertEqual("name of the original snapshot",
                         report["snapshot"]["recovery_point_basis"])
        # stowage-INSTANCE-YYYYMMDD-HHMMSS: the time snapshot create named it.
        stamp = snapshot["id"][-len("YYYYMMDD-HHMMSS"):]
        named = calendar.timegm(time.strptime(stamp, "%Y%m%d-%H%M%S"))
        self.assertEqual(named, parse_time(report["snapshot"]["recovery_point"]))
        self.assertEqual(parse_time(report["started_at"]) - named,
                         report["rpo"]["measured_seconds"])

    def test_rds_drill_without_copy_fails(self):
        instance = self.rds_instance()
        self.create_rds_snapshot(instance)
        replica, _ = self.replica_repo()
        report_path = os.path.join(self.workdir, "rds-drill-none-%s.json" % instance)
        result = self.stowage(*self.rds_drill_args(replica, instance, "--report", report_path),
                              env=self.replica_env(), expect=EXIT_USAGE)
        self.assertIn("no available snapshot copy", result.stderr)
        self.assertIn(REPLICA_REGION, result.stderr)
        self.assertIn(instance, result.stderr)
        self.assertIn("stowage replicate --snapshots --to-region %s" % REPLICA_REGION,
                      result.stderr)
        with open(report_path) as handle:
            report = json.load(handle)
        self.assertEqual("failed", report["result"])
        self.assertIsNone(report["snapshot"])
        self.assertIsNone(report["rpo"]["measured_seconds"])
        self.assertEqual([], self.replica_scratch_instances())

    def test_rds_drill_sigterm_deletes_scratch(self):
        instance, _, copy_id, replica = self.replicated_snapshot()
        report_path = os.path.join(self.workdir, "rds-drill-sigterm-%s.json" % instance)
        lock = self.hold_table_lock("app", "orders")
        process = spawn_stowage(self.rds_drill_args(replica, instance, "--report", report_path,
                                                    "--rpo-objective", "1d",
                                                    "--rto-objective", "1d"),
                                env=self.replica_env())
        self.wait_for_blocked_verification(process)
        self.assertEqual(1, len(self.replica_scratch_instances()))

        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=120)
        self.release_table_lock(lock)
        self.assertEqual(EXIT_INTERRUPTED, process.returncode, stderr)
        self.assertIn("interrupted by SIGTERM", stderr)
        self.assertEqual([], self.replica_scratch_instances())
        with open(report_path) as handle:
            report = json.load(handle)
        self.assertEqual("interrupted", report["result"])
        self.assertEqual(EXIT_INTERRUPTED, report["exit_code"])
        for measure in ("rpo", "rto"):
            self.assertIsNone(report[measure]["measured_seconds"], measure)
            self.assertIsNone(report[measure]["met"], measure)
            self.assertEqual("the drill was interrupted by SIGTERM",
                             report[measure]["not_measured_reason"], measure)
        self.assertNotIn(": met)", stdout)
        self.assertEqual("deleted", report["restore_report"]["scratch_instance"]["status"])

    # Interrupted local drills -------------------------------------------------

    def interrupt_local_drill(self, signum):
        """Stop a local drill of the big backup with signum while it restores into the
        scratch cluster.

        Return (process, stdout, stderr, scratch parent, postmaster pid, report path)."""
        scratch_parent = os.path.join(self.workdir, "drill-scratch-%s" % os.urandom(3).hex())
        os.makedirs(scratch_parent)
        os.chmod(scratch_parent, 0o755)
        report_path = os.path.join(scratch_parent + "-report.json")
        markdown_path = os.path.join(scratch_parent + "-report.md")
        with FaultProxy(self.moto) as proxy:
            # From the third GET on, each download waits 2 s, so the restore
            # step lasts minutes. The first GETs start before the scratch
            # cluster is created, so the signal waits for pg_restore too.
            proxy.add_fault(STALL, method="GET", path=r"data\.stow$", nth=3, count=None,
                            seconds=2)
            env = self.class_s3_env(AWS_ENDPOINT_URL=proxy.endpoint,
                                    STOWAGE_SCRATCH_DIR=scratch_parent)
            # The backup is minutes old, so only the interruption keeps the
            # RPO objective from being met.
            process = spawn_stowage(["drill", "--repo", self.big_repo, "--key", self.key,
                                     "--report", report_path, "--markdown", markdown_path,
                                     "--rpo-objective", "1d", "--rto-objective", "1d"],
                                    env=env)
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and not (proxy.requests_matching(
                    method="GET", path=r"data\.stow$", fault=STALL)
                    and "pg_restore" in child_names(process.pid)):
                if process.poll() is not None:
                    self.fail("the drill ended early: %s" % (process.communicate(),))
                time.sleep(0.05)
            pid_files = glob.glob(os.path.join(scratch_parent, "*", "data", "postmaster.pid"))
            self.assertEqual(1, len(pid_files))
            with open(pid_files[0]) as handle:
                postmaster = int(handle.readline())
            process.send_signal(signum)
            stdout, stderr = process.communicate(timeout=120)
        return process, stdout, stderr, scratch_parent, postmaster, report_path

    def check_interrupted_local_drill(self, signum, name):
        process, stdout, stderr, scratch_parent, postmaster, report_path = \
            self.interrupt_local_drill(signum)
        self.assertEqual(EXIT_INTERRUPTED, process.returncode, stderr)
        self.assertIn("interrupted by %s" % name, stderr)
        self.assertIn("scratch-remove", stdout)
        self.assertEqual([], os.listdir(scratch_parent))
        self.assertFalse(process_running(postmaster))
        with open(report_path) as handle:
            report = json.load(handle)
        steps = {step["step"]: step["status"] for step in report["steps"]}
        self.assertEqual("ok", steps["scratch-create"])
        self.assertEqual("interrupted", steps["restore"])
        self.assertEqual("ok", steps["scratch-remove"])
        self.assertEqual("interrupted", report["restore_report"]["result"])
        self.assertNotIn(": failed", stdout)
        self.assertIn("interrupted by %s" % name, report["error"])
        self.assertEqual("interrupted", report["result"])
        self.assertEqual(EXIT_INTERRUPTED, report["exit_code"])
        self.assertNotEqual(True, (report["verification"] or {}).get("passed"))

        # An interrupted drill measured nothing, in every report.
        reason = "the drill was interrupted by %s" % name
        for measure in ("rpo", "rto"):
            self.assertIsNone(report[measure]["measured_seconds"], measure)
            self.assertEqual(86400, report[measure]["objective_seconds"], measure)
            self.assertIsNone(report[measure]["met"], measure)
            self.assertEqual(reason, report[measure]["not_measured_reason"], measure)
        self.assertIn(": interrupted\n", stdout)
        self.assertIn("RPO  not measured: %s (objective 1d)" % reason, stdout)
        self.assertIn("RTO  not measured: %s (objective 1d)" % reason, stdout)
        self.assertNotIn(": met)", stdout)
        with open(report_path[:-len(".json")] + ".md") as handle:
            markdown = handle.read()
        self.assertIn("| Result | **interrupted** |", markdown)
        self.assertIn("| RPO | not measured: %s (objective 1d) |" % reason, markdown)
        self.assertIn("| RTO | not measured: %s (objective 1d) |" % reason, markdown)
        self.assertNotIn(": met)", markdown)

    def test_local_drill_sigterm_removes_scratch(self):
        self.check_interrupted_local_drill(signal.SIGTERM, "SIGTERM")

    def test_local_drill_sigint_removes_scratch(self):
        self.check_interrupted_local_drill(signal.SIGINT, "SIGINT")

    # Usage -------------------------------------------------------------------

    def test_snapshots_need_target_region(self):
        primary, _ = self.primary_repo()
        result = self.stowage("replicate", "--repo", primary, "--to", self.file_repo(),
                              "--snapshots", env=self.class_s3_env(), expect=2)
        self.assertIn("--to-region", result.stderr)

    def test_drill_rds_needs_region(self):
        result = self.stowage("drill", "--repo", self.file_repo(), "--scratch", "rds",
                              expect=EXIT_USAGE)
        self.assertIn("--rds-region", result.stderr)

    def test_drill_rds_options_need_rds_scratch(self):
        result = self.stowage("drill", "--repo", self.file_repo(), "--key", self.escrow_key,
                              "--connect-host", "127.0.0.1:5432", expect=EXIT_USAGE)
        self.assertIn("--scratch rds only", result.stderr)

    def test_drill_rejects_unknown_scratch(self):
        result = self.stowage("drill", "--repo", self.file_repo(), "--key", self.escrow_key,
                              "--scratch", "cloud", expect=EXIT_USAGE)
        self.assertIn("invalid --scratch \"cloud\"", result.stderr)


if __name__ == "__main__":
    unittest.main()
