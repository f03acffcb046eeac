"""Fault tests across commands: S3 faults from the fault proxy during backup,
restore and replicate, RDS API faults, signals (SIGINT, SIGTERM, SIGKILL),
full file systems, and the security checks on keys.

Each test asserts one of two outcomes: "completes, with N retries logged
and a byte-identical result" or "fails with exit code X and this message,
leaving no manifest, no open multipart upload and no scratch cluster".
docs/FAULTS.md lists every fault with its test.
"""

import glob
import hashlib
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse

from support import SMALL_PART, StowageTestCase, fake_pg_bindir, object_keys, open_uploads

from harness import FaultProxy, assert_no_secret, processes_in, run_stowage, wait_until
from harness import faultproxy as fp
from harness.stowage import check_sanitizer_report, spawn_stowage, stowage_binary, stowage_environment
import test_rds

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_VERIFY = 3
EXIT_STORAGE = 6
EXIT_INTERRUPTED = 130

# The HTTP layer logs each retry as "attempt N of M failed (REASON); retrying in D ms".
RETRY_LINE = re.compile(r"attempt (\d+) of (\d+) failed \((.*)\); retrying in (\d+) ms")

# Backoff is full jitter with a 200 ms base, so two retries wait at most 0.6 s.
# The bound leaves room for a loaded 2-CPU machine, not for a timeout.
RETRIED_RUN_SECONDS = 40

# A part whose SHA-256 check fails is fetched again, and logged so.
REFETCH_LINE = re.compile(r"part (\d+) of \S+ failed its SHA-256 check; fetching it again")


# Faults that close the connection without a response. libcurl resends a
# request by itself, without telling stowage, when a reused connection
# closes before any response byte. The resend may go out on another reused
# connection, so each fault costs one logged retry or none.
CONNECTION_DROPS = (fp.DROP_DURING_BODY, fp.DROP_AFTER_BODY, fp.DROP_BEFORE_RESPONSE, fp.STALL)


def logged_retries(kind, injected):
    """Return the numbers of logged retries that injected faults of kind may cost."""
    if kind in CONNECTION_DROPS:
        return tuple(range(0, injected + 1))
    return (injected,)


def retry_lines(stderr, subject=""):
    """Return the retry log lines of stderr that contain subject (such as "part 2 ")."""
    return [line for line in stderr.splitlines() if subject in line and RETRY_LINE.search(line)]


def tree_digests(directory):
    """Return {relative path: SHA-256} of every file under directory."""
    digests = {}
    for root, _, files in os.walk(directory):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as handle:
                digests[os.path.relpath(path, directory)] = hashlib.sha256(handle.read()).hexdigest()
    return digests


class FaultTestCase(StowageTestCase):
    """One database of about 1.5 MB of dump text: some 12 parts of 64 KiB."""

    def terminate_promptly(self, process):
        """Send SIGTERM and check that the run ends within 15 s with exit 130."""
        signalled = time.monotonic()
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
        elapsed = time.monotonic() - signalled
        check_sanitizer_report(stderr)
        self.assertEqual(EXIT_INTERRUPTED, process.returncode, stderr)
        self.assertIn("interrupted by SIGTERM", stderr)
        self.assertLess(elapsed, 15)

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.cluster.createdb("faulty")
        cls.cluster.psql("CREATE TABLE readings AS SELECT g AS id, md5(g::text) || md5((g * 3)::text) "
                         "AS value FROM generate_series(1, 20000) g", db="faulty")

    def s3_repo(self):
        bucket = self.new_bucket()
        return "s3://%s/db" % bucket, bucket

    def timed_backup(self, repo, env, expect=0, *extra):
        started = time.monotonic()
        result = self.backup(repo, "faulty", "--part-size", "64KiB", *extra, env=env, expect=expect)
        return result, time.monotonic() - started

    def assert_nothing_left(self, bucket, env=None):
        self.assertEqual([], open_uploads(self.moto, bucket), "an open multipart upload is left")
        self.assertEqual([], [k for k in object_keys(self.moto, bucket) if k.endswith("manifest.json")])
        self.assertEqual([], self.list_json("s3://%s/db" % bucket, env=env or self.s3_env()))

    def assert_backup_intact(self, repo, bucket):
        """The stored object matches every part checksum of the manifest, and verify passes."""
        listing = self.list_json(repo, env=self.s3_env())
        self.assertEqual(1, len(listing))
        manifest = self.show_json(repo, listing[0]["id"], env=self.s3_env())
        client = self.moto.client("s3")
        stored = client.get_object(Bucket=bucket, Key="db/" + manifest["object"]["key"])["Body"].read()
        self.assertEqual(manifest["object"]["stored_bytes"], len(stored))
        for part in manifest["object"]["parts"]:
            piece = stored[part["offset"]:part["offset"] + part["size"]]
            self.assertEqual(part["sha256"], hashlib.sha256(piece).hexdigest(), "part %d" % part["number"])
        self.stowage("verify", "--repo", repo, listing[0]["id"], "--key", self.key, env=self.s3_env())
        self.assertEqual([], open_uploads(self.moto, bucket))
        return manifest


class BackupS3FaultTest(FaultTestCase):
    """Faults on the requests of a backup to S3."""

    # Faults that a later attempt does not repeat, each injected twice on the
    # upload of part 2.
    TRANSIENT = [
        (fp.INTERNAL_ERROR, {}),
        (fp.SLOW_DOWN, {}),
        (fp.REQUEST_TIMEOUT, {}),
        (fp.EXPIRED_TOKEN, {}),
        (fp.DROP_DURING_BODY, {}),
        (fp.DROP_DURING_BODY, {"reset": True}),
        (fp.DROP_AFTER_BODY, {}),
        (fp.DROP_BEFORE_RESPONSE, {}),
        (fp.STALL, {"seconds": 0.2, "then": "close"}),
    ]

    def test_transient_part_faults_are_retried(self):
        for kind, params in self.TRANSIENT:
            with self.subTest(fault=kind, **params):
                repo, bucket = self.s3_repo()
                with FaultProxy(self.moto) as proxy:
                    proxy.add_fault(kind, method="PUT", query=r"partNumber=2&", count=2, **params)
                    result, elapsed = self.timed_backup(
                        repo, self.s3_env(AWS_ENDPOINT_URL=proxy.endpoint))
                    faults = [r.fault for r in proxy.requests_matching(method="PUT",
                                                                        query=r"partNumber=2&")]
                self.assertEqual([kind, kind, None], faults)
                retries = retry_lines(result.stderr, "UploadPart")
                self.assertIn(len(retries), logged_retries(kind, 2), result.stderr)
                for line in retries:
                    self.assertIn(" part 2 ", line)
                self.assertLess(elapsed, RETRIED_RUN_SECONDS)
                self.assert_backup_intact(repo, bucket)

    def test_faults_on_create_and_complete_are_retried(self):
        repo, bucket = self.s3_repo()
        with FaultProxy(self.moto) as proxy:
            proxy.add_fault(fp.SLOW_DOWN, method="POST", query=r"^uploads", count=1)
            proxy.add_fault(fp.INTERNAL_ERROR, method="POST", query=r"uploadId=", count=1)
            result, elapsed = self.timed_backup(repo, self.s3_env(AWS_ENDPOINT_URL=proxy.endpoint))
        self.assertEqual(1, len(retry_lines(result.stderr, "CreateMultipartUpload")), result.stderr)
        self.assertEqual(1, len(retry_lines(result.stderr, "CompleteMultipartUpload")), result.stderr)
        self.assertLess(elapsed, RETRIED_RUN_SECONDS)
        self.assert_backup_intact(repo, bucket)

    def test_lost_complete_response_is_retried(self):
        # CompleteMultipartUpload takes effect, but its response is lost; the
        # retry finds the upload already completed.
        repo, bucket = self.s3_repo()
        with FaultProxy(self.moto) as proxy:
            proxy.add_fault(fp.DROP_BEFORE_RESPONSE, method="POST", query=r"uploadId=", count=1)
            result, _ = self.timed_backup(repo, self.s3_env(AWS_ENDPOINT_URL=proxy.endpoint),
                                          expect=None)
        self.assertEqual(0, result.returncode, result.stderr)
        self.assert_backup_intact(repo, bucket)

    def test_lost_create_only_responses_are_retried(self):
        # A create-only put (If-None-Match: *) takes effect, but its response
        # is lost; the retry meets the object it created (412). The manifest
        # is compared byte for byte, the lock by its run id.
        for what, path in (("manifest", r"manifest\.json$"), ("lock", r"/locks/faulty\.json$")):
            with self.subTest(object=what):
                repo, bucket = self.s3_repo()
                with FaultProxy(self.moto) as proxy:
                    proxy.add_fault(fp.DROP_BEFORE_RESPONSE, method="PUT", path=path, count=1)
                    result, _ = self.timed_backup(repo, self.s3_env(AWS_ENDPOINT_URL=proxy.endpoint),
                                                  expect=None)
                    dropped = proxy.requests_matching(fault=fp.DROP_BEFORE_RESPONSE)
                self.assertEqual(1, len(dropped))
                self.assertEqual(0, result.returncode, result.stderr)
                self.assertNotIn("db/locks/faulty.json", object_keys(self.moto, bucket))
                self.assert_backup_intact(repo, bucket)

    def test_persistent_slow_down_exhausts_retries(self):
        repo, bucket = self.s3_repo()
        with FaultProxy(self.moto) as proxy:
            proxy.add_fault(fp.SLOW_DOWN, method="PUT", query=r"partNumber=2&", count=None)
            result, elapsed = self.timed_backup(repo, self.s3_env(AWS_ENDPOINT_URL=proxy.endpoint),
                                                expect=EXIT_FAILURE)
            attempts = proxy.requests_matching(method="PUT", query=r"partNumber=2&")
        self.assertEqual(8, len(attempts))
        self.assertEqual(7, len(retry_lines(result.stderr, " part 2 ")))
        self.assertIn("SlowDown", result.stderr)
        self.assertIn("the bucket is throttling requests", result.stderr)
        self.assertIn("8 attempts", result.stderr)
        # Seven full-jitter waits of at most 0.2, 0.4, ..., 12.8 s: 25.4 s at most.
        self.assertLess(elapsed, 25.4 + RETRIED_RUN_SECONDS)
        self.assert_nothing_left(bucket)

    def test_fatal_faults_fail_at_once(self):
        cases = [
            (fp.CLOCK_SKEW, {}, "RequestTimeTooSkewed", "clock"),
            (fp.REDIRECT, {"region": "eu-west-1"}, "PermanentRedirect", "--region"),
            (fp.ERROR, {"status": 403, "code": "AccessDenied", "message": "Access Denied"},
             "AccessDenied", None),
        ]
        for kind, params, code, hint in cases:
            with self.subTest(fault=kind, code=code):
                repo, bucket = self.s3_repo()
                with FaultProxy(self.moto) as proxy:
                    proxy.add_fault(kind, method="PUT", query=r"partNumber=2&", count=None, **params)
                    result, elapsed = self.timed_backup(
                        repo, self.s3_env(AWS_ENDPOINT_URL=proxy.endpoint), expect=EXIT_STORAGE)
                    attempts = proxy.requests_matching(method="PUT", query=r"partNumber=2&")
                self.assertEqual(1, len(attempts), "a %s is not retried" % code)
                self.assertEqual([], retry_lines(result.stderr, " part 2 "))
                self.assertIn(code, result.stderr)
                if hint:
                    self.assertIn(hint, result.stderr)
                self.assertLess(elapsed, RETRIED_RUN_SECONDS)
                self.assert_nothing_left(bucket)

    def test_redirect_fails_at_repository_check(self):
        repo, bucket = self.s3_repo()
        with FaultProxy(self.moto) as proxy:
            proxy.add_fault(fp.REDIRECT, count=None, region="ap-south-1")
            result, elapsed = self.timed_backup(repo, self.s3_env(AWS_ENDPOINT_URL=proxy.endpoint),
                                                expect=EXIT_STORAGE)
            uploads_started = proxy.requests_matching(method="POST", query=r"^uploads")
        self.assertIn("is not usable: S3 ListObjectsV2 failed", result.stderr)
        self.assertIn("HTTP 301 PermanentRedirect", result.stderr)
        self.assertIn("the bucket is in region ap-south-1: set --region ap-south-1",
                      result.stderr)
        self.assertEqual([], uploads_started)
        self.assertLess(elapsed, RETRIED_RUN_SECONDS)
        self.assert_nothing_left(bucket)


class RestoreS3FaultTest(FaultTestCase):
    """Faults on the GETs of extract; the output must match a fault-free extract."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.bucket = "stowage-restore-%s" % os.urandom(4).hex()
        cls.moto.create_bucket(cls.bucket)
        cls.repo = "s3://%s/db" % cls.bucket
        env = cls.moto.env()
        env["STOWAGE_MIN_PART_SIZE"] = str(SMALL_PART)
        result = run_stowage(["backup", "--repo", cls.repo, "--db", cls.cluster.conninfo("faulty"),
                              "--recipient", cls.pub, "--part-size", "64KiB", "--json"], env=env)
        if result.returncode != 0:
            raise RuntimeError("backup failed: %s" % result.stderr)
        cls.backup_id = json.loads(result.stdout)["id"]
        cls.expected = cls.extract_digests(env)

    @classmethod
    def extract_digests(cls, env):
        target = tempfile.mkdtemp(prefix="extract-", dir=cls.workdir)
        os.rmdir(target)
        result = run_stowage(["extract", "--repo", cls.repo, cls.backup_id, "--key", cls.key,
                              "--to", target], env=env)
        if result.returncode != 0:
            raise RuntimeError("extract failed: %s" % result.stderr)
        return tree_digests(target)

    def extract(self, env, *options, expect=0):
        target = tempfile.mkdtemp(prefix="extract-", dir=self.workdir)
        os.rmdir(target)
        started = time.monotonic()
        result = self.stowage("extract", "--repo", self.repo, self.backup_id, "--key", self.key,
                              "--to", target, *options, env=env, expect=expect)
        return result, time.monotonic() - started, target

    DATA_GET = r"data\.stow$"

    def test_transient_get_faults_are_retried(self):
        cases = [
            (fp.INTERNAL_ERROR, {}),
            (fp.SLOW_DOWN, {}),
            (fp.REQUEST_TIMEOUT, {}),
            (fp.EXPIRED_TOKEN, {}),
            (fp.DROP_AFTER_BODY, {}),
            (fp.DROP_BEFORE_RESPONSE, {"reset": True}),
            (fp.TRUNCATE, {}),
            (fp.CORRUPT, {}),
        ]
        for kind, params in cases:
            with self.subTest(fault=kind, **params):
                with FaultProxy(self.moto) as proxy:
                    proxy.add_fault(kind, method="GET", path=self.DATA_GET, nth=2, count=2, **params)
                    result, elapsed, target = self.extract(self.s3_env(AWS_ENDPOINT_URL=proxy.endpoint))
                    applied = [r for r in proxy.requests if r.fault == kind]
                self.assertEqual(2, len(applied))
                if kind == fp.CORRUPT:
                    # The HTTP exchange succeeds; the part's SHA-256 check fails.
                    retried = REFETCH_LINE.findall(result.stderr)
                else:
                    retried = retry_lines(result.stderr)
                self.assertIn(len(retried), logged_retries(kind, 2), result.stderr)
                self.assertLess(elapsed, RETRIED_RUN_SECONDS)
                self.assertEqual(self.expected, tree_digests(target))

    def manifest_parts(self):
        client = self.moto.client("s3")
        key = [k for k in object_keys(self.moto, self.bucket)
               if k.endswith("/%s/manifest.json" % self.backup_id)][0]
        manifest = json.loads(client.get_object(Bucket=self.bucket, Key=key)["Body"].read())
        return manifest["object"]["parts"]

    def test_parts_are_fetched_two_per_ranged_get(self):
        parts = self.manifest_parts()
        self.assertGreater(len(parts), 4)
        with FaultProxy(self.moto) as proxy:
            result, elapsed, target = self.extract(self.s3_env(AWS_ENDPOINT_URL=proxy.endpoint))
            gets = proxy.requests_matching(method="GET", path=self.DATA_GET)
        ranges = sorted(r.header("Range") for r in gets)
        # The first part alone, so that the restore starts sooner, then pairs.
        groups = [[0]] + [list(range(i, min(i + 2, len(parts)))) for i in range(1, len(parts), 2)]
        expected = sorted("bytes=%d-%d" % (parts[g[0]]["offset"],
                                           parts[g[-1]]["offset"] + parts[g[-1]]["size"] - 1)
                          for g in groups)
        self.assertEqual(expected, ranges)
        self.assertEqual(self.expected, tree_digests(target))

    def test_read_ahead_is_sized_by_the_settings(self):
        # The buffers follow --transfers and the default part size, not the
        # object of 64 KiB parts: 8 x 8 MiB of read-ahead in buffers for
        # GETs of two default-sized parts.
        fetches = 1 + len(self.manifest_parts()) // 2
        result, _, target = self.extract(self.s3_env(), "--transfers", "8",
                                         "--log-level", "detail")
        self.assertIn("allocated 4 fetch buffers of %d bytes and one part buffer of %d bytes"
                      % (16 << 20, 8 << 20), result.stderr)
        self.assertIn("in %d ranged GETs" % fetches, result.stderr)
        self.assertEqual(self.expected, tree_digests(target))

    def test_cut_joined_fetch_is_retried(self):
        # The connection closes inside the first of the two parts: the whole
        # ranged GET is retried, and neither part reaches the restore short.
        with FaultProxy(self.moto) as proxy:
            proxy.add_fault(fp.TRUNCATE, method="GET", path=self.DATA_GET, nth=2, count=1,
                            keep_bytes=1000)
            result, elapsed, target = self.extract(self.s3_env(AWS_ENDPOINT_URL=proxy.endpoint))
            truncated = proxy.requests_matching(method="GET", path=self.DATA_GET, fault=fp.TRUNCATE)
        self.assertEqual(1, len(truncated))
        self.assertEqual(self.expected, tree_digests(target))
        self.assertLess(elapsed, RETRIED_RUN_SECONDS)

    def test_sigterm_during_stalled_get_exits_at_once(self):
        # The transfer would only fail after libcurl's 60 s low-speed limit;
        # the signal ends it within the HTTP engine's 1 s poll instead.
        self.cluster.createdb("faulty_stalled")
        with FaultProxy(self.moto) as proxy:
            proxy.add_fault(fp.STALL, method="GET", path=self.DATA_GET, nth=2, count=None,
                            seconds=120)
            env = self.s3_env(AWS_ENDPOINT_URL=proxy.endpoint)
            process = spawn_stowage(["restore", "--repo", self.repo, self.backup_id, "--key",
                                     self.key, "--target", self.cluster.conninfo("faulty_stalled")],
                                    env=env)
            self.addCleanup(SignalTest.kill_group, process)
            wait_until(lambda: proxy.requests_matching(method="GET", path=self.DATA_GET,
                                                       fault=fp.STALL), 60,
                       description="the stalled GET")
            self.terminate_promptly(process)
        self.assertEqual([], self.cluster.query(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'", db="faulty_stalled"))

    def test_stalled_body_past_timeout_is_retried(self):
        # libcurl abandons a transfer slower than 1 KiB/s for 60 s (the
        # HTTP layer's fixed low-speed limit), so this is the one test here
        # that takes a minute.
        with FaultProxy(self.moto) as proxy:
            proxy.add_fault(fp.STALL_BODY, method="GET", path=self.DATA_GET, nth=2, count=1,
                            seconds=120)
            result, elapsed, target = self.extract(self.s3_env(AWS_ENDPOINT_URL=proxy.endpoint))
        retries = retry_lines(result.stderr)
        self.assertEqual(1, len(retries), result.stderr)
        self.assertIn("less than 1024 bytes/sec transferred the last 60 seconds", retries[0].lower())
        self.assertGreater(elapsed, 59)
        self.assertLess(elapsed, 60 + RETRIED_RUN_SECONDS)
        self.assertEqual(self.expected, tree_digests(target))

    def test_part_corrupt_on_every_fetch_fails(self):
        with FaultProxy(self.moto) as proxy:
            proxy.add_fault(fp.CORRUPT, method="GET", path=self.DATA_GET, nth=2, count=None)
            result, elapsed, target = self.extract(self.s3_env(AWS_ENDPOINT_URL=proxy.endpoint),
                                                   expect=EXIT_VERIFY)
        self.assertIn("SHA-256", result.stderr)
        self.assertIn("data.stow", result.stderr)
        self.assertLess(elapsed, RETRIED_RUN_SECONDS)
        self.assertEqual([], glob.glob(os.path.join(target, "database.dump.*")))
        self.assertFalse(os.path.exists(target), "the directory that extract created is left")

    def test_fatal_fault_during_scratch_restore(self):
        base = tempfile.mkdtemp(prefix="scratch-", dir="/tmp")
        os.chmod(base, 0o755)
        self.addCleanup(shutil.rmtree, base, ignore_errors=True)
        with FaultProxy(self.moto) as proxy:
            proxy.add_fault(fp.CLOCK_SKEW, method="GET", path=self.DATA_GET, count=None)
            result = self.stowage("restore", "--repo", self.repo, self.backup_id, "--key", self.key,
                                  "--scratch", "local", "--verify",
                                  env=self.s3_env(AWS_ENDPOINT_URL=proxy.endpoint,
                                                  STOWAGE_SCRATCH_DIR=base),
                                  expect=EXIT_STORAGE)
        self.assertIn("RequestTimeTooSkewed", result.stderr)
        self.assertEqual([], os.listdir(base), "the scratch cluster was not removed")
        self.assertEqual([], processes_in(base))

    def test_fatal_get_faults_fail_at_once(self):
        cases = [
            (fp.CLOCK_SKEW, {}, "RequestTimeTooSkewed"),
            (fp.REDIRECT, {}, "PermanentRedirect"),
        ]
        for kind, params, code in cases:
            with self.subTest(fault=kind):
                with FaultProxy(self.moto) as proxy:
                    proxy.add_fault(kind, method="GET", path=self.DATA_GET, count=None, **params)
                    result, elapsed, target = self.extract(
                        self.s3_env(AWS_ENDPOINT_URL=proxy.endpoint), expect=EXIT_STORAGE)
                    applied = [r for r in proxy.requests if r.fault == kind]
                self.assertIn(code, result.stderr)
                self.assertEqual([], retry_lines(result.stderr))
                self.assertLessEqual(len(applied), 4, "one attempt per part in flight at most")
                self.assertLess(elapsed, RETRIED_RUN_SECONDS)
                self.assertFalse(glob.glob(os.path.join(target, "database.dump.*")),
                                 "a failed extract leaves dump segments behind")


class ReplicateFaultTest(FaultTestCase):
    """Faults on the server-side part copies of replicate."""

    REPLICA_REGION = "eu-west-1"

    def replicate_through(self, proxy, primary, expect=0):
        replica_bucket = "stowage-replica-%s" % os.urandom(4).hex()
        self.moto.create_bucket(replica_bucket, region=self.REPLICA_REGION)
        replica = "s3://%s/db" % replica_bucket
        started = time.monotonic()
        result = self.stowage("replicate", "--repo", primary, "--to", replica, "--to-region",
                              self.REPLICA_REGION, "--json",
                              env=self.s3_env(AWS_ENDPOINT_URL=proxy.endpoint), expect=expect)
        return result, time.monotonic() - started, replica, replica_bucket

    def primary_with_backup(self):
        repo, bucket = self.s3_repo()
        self.timed_backup(repo, self.s3_env())
        return repo, bucket

    def replica_manifests(self, bucket):
        client = self.moto.client("s3", region=self.REPLICA_REGION)
        keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])]
        return [k for k in keys if k.endswith("manifest.json")]

    def replica_uploads(self, bucket):
        client = self.moto.client("s3", region=self.REPLICA_REGION)
        return client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])

    def test_transient_copy_faults_are_retried(self):
        primary, primary_bucket = self.primary_with_backup()
        for kind in (fp.SLOW_DOWN, fp.INTERNAL_ERROR, fp.DROP_BEFORE_RESPONSE):
            with self.subTest(fault=kind):
                with FaultProxy(self.moto) as proxy:
                    proxy.add_fault(kind, method="PUT", path=r"^/stowage-replica-",
                                    query=r"partNumber=3&", count=2)
                    result, elapsed, replica, replica_bucket = self.replicate_through(proxy, primary)
                self.assertEqual(1, json.loads(result.stdout)["copied"])
                self.assertIn(len(retry_lines(result.stderr)), logged_retries(kind, 2), result.stderr)
                self.assertLess(elapsed, RETRIED_RUN_SECONDS)
                self.assertEqual([], self.replica_uploads(replica_bucket))
                backup_id = self.list_json(primary, env=self.s3_env())[0]["id"]
                self.stowage("verify", "--repo", replica, backup_id, "--key", self.key,
                             env=self.s3_env(AWS_REGION=self.REPLICA_REGION))
                primary_manifest = self.moto.client("s3").get_object(
                    Bucket=primary_bucket, Key=[k for k in object_keys(self.moto, primary_bucket)
                                                if k.endswith("manifest.json")][0])["Body"].read()
                replica_manifest = self.moto.client("s3", region=self.REPLICA_REGION).get_object(
                    Bucket=replica_bucket, Key=self.replica_manifests(replica_bucket)[0])["Body"].read()
                self.assertEqual(primary_manifest, replica_manifest)

    def test_fatal_copy_fault_leaves_nothing(self):
        primary, _ = self.primary_with_backup()
        with FaultProxy(self.moto) as proxy:
            proxy.add_fault(fp.ERROR, method="PUT", path=r"^/stowage-replica-", query=r"partNumber=3&",
                            count=None, status=403, code="AccessDenied", message="Access Denied")
            result, elapsed, _, replica_bucket = self.replicate_through(proxy, primary, expect=None)
        self.assertNotEqual(0, result.returncode)
        self.assertIn("AccessDenied", result.stderr)
        self.assertLess(elapsed, RETRIED_RUN_SECONDS)
        self.assertEqual([], self.replica_manifests(replica_bucket))
        self.assertEqual([], self.replica_uploads(replica_bucket))


class RdsApiFaultTest(test_rds.RdsTestCase):
    """Faults on the RDS Query API calls of stowage snapshot create."""

    def create_through(self, proxy, expect=0):
        started = time.monotonic()
        result = self.snapshot("create", "--instance", test_rds.INSTANCE, "--repo", self.repo, "--json",
                               endpoint_url=proxy.endpoint, expect=expect)
        return result, time.monotonic() - started

    def stowage_snapshots(self):
        return [s for s in self.snapshot_ids() if s.startswith("stowage-")]

    def test_transient_rds_faults_are_retried(self):
        cases = [
            (fp.INTERNAL_ERROR, {}),
            (fp.ERROR, {"status": 503, "code": "ServiceUnavailable", "message": "try again",
                        "shape": "query"}),
            (fp.ERROR, {"status": 400, "code": "ExpiredToken",
                        "message": "The security token included in the request is expired",
                        "shape": "query"}),
            (fp.DROP_AFTER_BODY, {}),
        ]
        for kind, params in cases:
            with self.subTest(fault=kind, code=params.get("code")):
                self.moto.reset()
                self.setUp()
                with FaultProxy(self.moto) as proxy:
                    proxy.add_fault(kind, method="POST", body="Action=CreateDBSnapshot", count=2, **params)
                    result, elapsed = self.create_through(proxy)
                    attempts = proxy.requests_matching(method="POST")
                    creates = [r for r in attempts if b"Action=CreateDBSnapshot" in (r.body or b"")]
                self.assertEqual([kind, kind, None], [r.fault for r in creates])
                self.assertIn(len(retry_lines(result.stderr, "CreateDBSnapshot")),
                              logged_retries(kind, 2), result.stderr)
                self.assertLess(elapsed, RETRIED_RUN_SECONDS)
                created = json.loads(result.stdout)
                self.assertEqual([created["id"]], self.stowage_snapshots())

    def test_lost_create_response_is_retried(self):
        # CreateDBSnapshot takes effect, but its response is lost; the retry
        # meets the snapshot it created (DBSnapshotAlreadyExists).
        with FaultProxy(self.moto) as proxy:
            proxy.add_fault(fp.DROP_BEFORE_RESPONSE, method="POST", body="Action=CreateDBSnapshot",
                            count=1)
            result, _ = self.create_through(proxy, expect=None)
        self.assertEqual(0, result.returncode, result.stderr)
        self.assertEqual(1, len(self.stowage_snapshots()))

    def test_fatal_rds_fault_leaves_nothing(self):
        with FaultProxy(self.moto) as proxy:
            proxy.add_fault(fp.ERROR, method="POST", body="Action=CreateDBSnapshot", count=None,
                            status=403, code="AccessDenied",
                            message="User is not authorized to perform rds:CreateDBSnapshot",
                            shape="query")
            result, elapsed = self.create_through(proxy, expect=None)
            creates = [r for r in proxy.requests if b"Action=CreateDBSnapshot" in (r.body or b"")]
        self.assertNotEqual(0, result.returncode)
        self.assertIn("AccessDenied", result.stderr)
        self.assertEqual(1, len(creates))
        self.assertLess(elapsed, RETRIED_RUN_SECONDS)
        self.assertEqual([], self.stowage_snapshots())
        self.assertEqual([], os.listdir(self.repo[len("file://"):]))


    def test_signed_copy_url_never_printed(self):
        created = json.loads(self.create_through_direct().stdout)
        with FaultProxy(self.moto) as proxy:
            # A failed copy prints its error; the debug log shows each call.
            proxy.add_fault(fp.ERROR, method="POST", body="Action=CopyDBSnapshot", count=None,
                            status=400, code="InvalidParameterValue", message="rejected", shape="query")
            result = self.stowage("snapshot", "copy", created["id"], "--to-region", test_rds.DR_REGION,
                                  "--kms-key", self.kms_key, "--log-level", "debug",
                                  env=self.env(proxy.endpoint), expect=None)
            copies = test_rds.requests_for(proxy, "CopyDBSnapshot")
        self.assertEqual(EXIT_FAILURE, result.returncode, result.stderr)
        self.assertIn("InvalidParameterValue", result.stderr)
        signed_url = test_rds.form_of(copies[0])["PreSignedUrl"]
        signature = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(signed_url).query))["X-Amz-Signature"]
        assert_no_secret([result.stdout, result.stderr], [signed_url, signature])

    def create_through_direct(self):
        return self.snapshot("create", "--instance", test_rds.INSTANCE, "--json")


class RdsScratchSignalTest(test_rds.RdsTestCase):
    """SIGINT while an RDS scratch instance is verified: a table lock held by
    the test keeps the verification waiting until the signal arrives. The
    SIGTERM and SIGKILL cases are in test_rds."""

    def test_sigint_during_verification_deletes_scratch(self):
        lock = self.hold_table_lock("appdb", "sales.orders")
        created = self.create_snapshot()
        process = spawn_stowage(self.restore_args("--from-snapshot", created["id"], "--verify",
                                                  "--database", "appdb", "--repo", self.backup_repo),
                                env=self.env())
        self.wait_for_blocked_verification(process)
        self.assertEqual(1, len(self.scratch_instances()))
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=120)
        check_sanitizer_report(stderr)
        self.assertEqual(EXIT_INTERRUPTED, process.returncode, stderr)
        self.assertIn("interrupted by SIGINT", stderr)
        self.assertEqual([], self.scratch_instances())
        self.release_table_lock(lock)


class SignalTest(FaultTestCase):
    """SIGINT, SIGTERM and SIGKILL in the middle of runs."""

    def slow_dump_bindir(self):
        return fake_pg_bindir(self.workdir, "slow-%s" % os.urandom(3).hex(),
                              '"$REAL" "$@" | (head -c 300000; sleep 60; cat)')

    def start_slow_backup(self, repo, bucket):
        env = self.s3_env(STOWAGE_PG_BINDIR=self.slow_dump_bindir())
        process = spawn_stowage(["backup", "--repo", repo, "--db", self.cluster.conninfo("faulty"),
                                 "--recipient", self.pub, "--part-size", "64KiB"], env=env)
        self.addCleanup(self.kill_group, process)
        wait_until(lambda: open_uploads(self.moto, bucket), 60, description="the upload to start")
        return process

    def start_backup_through(self, proxy, repo, **env):
        """Start a backup of about 12 parts to repo through the fault proxy."""
        env = self.s3_env(AWS_ENDPOINT_URL=proxy.endpoint, **env)
        process = spawn_stowage(["backup", "--repo", repo, "--db", self.cluster.conninfo("faulty"),
                                 "--recipient", self.pub, "--part-size", "64KiB"], env=env)
        self.addCleanup(self.kill_group, process)
        return process

    def start_backup_with_stalled_cleanup(self, proxy, repo, **env):
        """Start a backup whose parts and whose upload's abort stall for two
        minutes; return once a part stalls."""
        proxy.add_fault(fp.STALL, method="PUT", query=r"partNumber=", count=None, seconds=120)
        proxy.add_fault(fp.STALL, method="DELETE", query=r"uploadId=", count=None, seconds=120)
        process = self.start_backup_through(proxy, repo, **env)
        wait_until(lambda: proxy.requests_matching(method="PUT", fault=fp.STALL), 60,
                   description="a stalled UploadPart")
        return process

    @staticmethod
    def kill_group(process):
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.communicate()

    def test_sigint_during_backup_cleans_up(self):
        repo, bucket = self.s3_repo()
        process = self.start_slow_backup(repo, bucket)
        started = time.monotonic()
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
        check_sanitizer_report(stderr)
        self.assertLess(time.monotonic() - started, 20)
        self.assertEqual(EXIT_INTERRUPTED, process.returncode, stderr)
        self.assertIn("SIGINT", stderr)
        self.assert_nothing_left(bucket)
        self.assertNotIn("db/locks/faulty.json", object_keys(self.moto, bucket))

    def test_sigterm_while_roles_dump_runs(self):
        # pg_dumpall starts first and is still running at the signal: the
        # error is the interruption, not a missing privilege, and pg_dump
        # never starts.
        marker = os.path.join(self.workdir, "dumpall-started-%s" % os.urandom(3).hex())
        bindir = fake_pg_bindir(self.workdir, "slow-dumpall-%s" % os.urandom(3).hex(),
                                'touch %s; sleep 30; exec "$REAL" "$@"' % marker,
                                program="pg_dumpall")
        repo = self.file_repo()
        process = spawn_stowage(["backup", "--repo", repo, "--db", self.cluster.conninfo("faulty"),
                                 "--recipient", self.pub],
                                env=stowage_environment({"STOWAGE_PG_BINDIR": bindir}))
        self.addCleanup(self.kill_group, process)
        wait_until(lambda: os.path.exists(marker), 60, description="pg_dumpall to start")

        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)

        check_sanitizer_report(stderr)
        self.assertEqual(EXIT_INTERRUPTED, process.returncode, stderr)
        self.assertIn("interrupted by SIGTERM", stderr)
        self.assertNotIn("pg_roles", stderr)
        self.assertEqual([], self.list_json(repo))

    def test_sighup_cleans_up_unless_ignored(self):
        # A closed terminal's SIGHUP stops a backup with the cleanup of
        # SIGTERM; under nohup (SIGHUP ignored) the backup goes on.
        marker = os.path.join(self.workdir, "hup-dump-%s" % os.urandom(3).hex())
        bindir = fake_pg_bindir(self.workdir, "hup-%s" % os.urandom(3).hex(),
                                'touch %s.$$; sleep 5; exec "$REAL" "$@"' % marker)
        for ignored in (False, True):
            with self.subTest(ignored=ignored):
                repo = self.file_repo()
                previous = signal.signal(signal.SIGHUP, signal.SIG_IGN if ignored else signal.SIG_DFL)
                try:
                    process = spawn_stowage(["backup", "--repo", repo, "--db",
                                             self.cluster.conninfo("faulty"), "--recipient", self.pub],
                                            env=stowage_environment({"STOWAGE_PG_BINDIR": bindir}))
                finally:
                    signal.signal(signal.SIGHUP, previous)
                self.addCleanup(self.kill_group, process)
                wait_until(lambda: glob.glob(marker + ".*"), 60, description="pg_dump to start")
                for path in glob.glob(marker + ".*"):
                    os.unlink(path)

                process.send_signal(signal.SIGHUP)
                _, stderr = process.communicate(timeout=60)

                check_sanitizer_report(stderr)
                if ignored:
                    self.assertEqual(0, process.returncode, stderr)
                    self.assertEqual(1, len(self.list_json(repo)))
                else:
                    self.assertEqual(EXIT_INTERRUPTED, process.returncode, stderr)
                    self.assertIn("received SIGHUP: stopping and cleaning up", stderr)
                    self.assertEqual([], self.list_json(repo))

    def test_sigterm_during_stalled_upload_cleans_up(self):
        # Every UploadPart stalls for two minutes: the signal ends them, and
        # the abort of the upload and the lock's removal, sent after it, run.
        repo, bucket = self.s3_repo()
        with FaultProxy(self.moto) as proxy:
            proxy.add_fault(fp.STALL, method="PUT", query=r"partNumber=", count=None, seconds=120)
            process = self.start_backup_through(proxy, repo)
            wait_until(lambda: proxy.requests_matching(method="PUT", fault=fp.STALL), 60,
                       description="a stalled UploadPart")
            self.terminate_promptly(process)
        self.assert_nothing_left(bucket)
        self.assertNotIn("db/locks/faulty.json", object_keys(self.moto, bucket))

    def test_second_sigterm_skips_stalled_cleanup(self):
        # The abort of the upload stalls as well: the first signal's cleanup
        # would wait for it, the second signal exits at once.
        repo, _ = self.s3_repo()
        with FaultProxy(self.moto) as proxy:
            process = self.start_backup_with_stalled_cleanup(proxy, repo)
            first = time.monotonic()
            process.send_signal(signal.SIGTERM)
            wait_until(lambda: proxy.requests_matching(method="DELETE", fault=fp.STALL), 30,
                       description="the stalled AbortMultipartUpload")
            # A repeat within a second of stowage taking the first counts as
            # the same signal; the margin covers a late signal thread.
            time.sleep(max(0.0, 2.5 - (time.monotonic() - first)))
            signalled = time.monotonic()
            process.send_signal(signal.SIGTERM)
            _, stderr = process.communicate(timeout=60)
            elapsed = time.monotonic() - signalled
        self.assertEqual(EXIT_INTERRUPTED, process.returncode, stderr)
        self.assertIn("a second signal exits at once", stderr)
        self.assertIn("received SIGTERM while cleaning up: exiting without cleanup", stderr)
        self.assertLess(elapsed, 5)

    def test_cleanup_timeout_ends_stalled_cleanup(self):
        # One signal, and the abort of the upload stalls: the run exits
        # when STOWAGE_CLEANUP_TIMEOUT has passed, before a SIGKILL would.
        repo, _ = self.s3_repo()
        with FaultProxy(self.moto) as proxy:
            process = self.start_backup_with_stalled_cleanup(proxy, repo,
                                                             STOWAGE_CLEANUP_TIMEOUT="4s")
            signalled = time.monotonic()
            process.send_signal(signal.SIGTERM)
            _, stderr = process.communicate(timeout=60)
            elapsed = time.monotonic() - signalled
            self.assertTrue(proxy.requests_matching(method="DELETE", fault=fp.STALL),
                            "the abort of the upload was not sent")
        self.assertEqual(EXIT_INTERRUPTED, process.returncode, stderr)
        self.assertIn("cleaning up, for at most 4s", stderr)
        self.assertIn("the cleanup after SIGTERM did not finish within 4s "
                      "(STOWAGE_CLEANUP_TIMEOUT): exiting without it", stderr)
        self.assertIn("stowage gc removes", stderr)
        self.assertGreaterEqual(elapsed, 4)
        self.assertLess(elapsed, 8)

    def test_invalid_cleanup_timeout_rejected(self):
        result = self.stowage("list", "--repo", self.file_repo(),
                              env={"STOWAGE_CLEANUP_TIMEOUT": "20"}, expect=2)
        self.assertIn('invalid duration for STOWAGE_CLEANUP_TIMEOUT: "20"', result.stderr)
        result = self.stowage("keygen", "--help", env={"STOWAGE_CLEANUP_TIMEOUT": "20"})
        self.assertIn("keygen", result.stdout)

    def test_sigterm_during_completion_deletes_object(self):
        # The signal comes while CompleteMultipartUpload stalls: the object
        # is complete, but the run stops before its manifest and deletes it.
        repo, bucket = self.s3_repo()
        with FaultProxy(self.moto) as proxy:
            proxy.add_fault(fp.STALL, method="POST", query=r"uploadId=", count=None, seconds=3)
            process = self.start_backup_through(proxy, repo)
            wait_until(lambda: proxy.requests_matching(method="POST", fault=fp.STALL), 60,
                       description="the stalled CompleteMultipartUpload")
            process.send_signal(signal.SIGTERM)
            _, stderr = process.communicate(timeout=60)
        check_sanitizer_report(stderr)
        self.assertEqual(EXIT_INTERRUPTED, process.returncode, stderr)
        self.assertIn("before its manifest was written", stderr)
        self.assertIn("deleted the data object", stderr)
        self.assertEqual([], object_keys(self.moto, bucket))

    def test_sigterm_while_manifest_put_stalls(self):
        # The manifest's put is the backup's commit: a signal must not leave
        # it in flight while the run reports the backup as not written.
        repo, bucket = self.s3_repo()
        with FaultProxy(self.moto) as proxy:
            proxy.add_fault(fp.STALL, method="PUT", path=r"manifest\.json$", count=None,
                            seconds=5)
            process = self.start_backup_through(proxy, repo)
            wait_until(lambda: proxy.requests_matching(method="PUT", fault=fp.STALL), 60,
                       description="the stalled manifest put")
            process.send_signal(signal.SIGTERM)
            _, stderr = process.communicate(timeout=60)
        check_sanitizer_report(stderr)

        # The put runs to its end, so the backup is complete and reported so.
        self.assertEqual(0, process.returncode, stderr)
        self.assertIn("received SIGTERM", stderr)
        self.assertIn("complete: manifest", stderr)
        keys = object_keys(self.moto, bucket)
        self.assertEqual(1, len([k for k in keys if k.endswith("manifest.json")]), keys)
        self.assertNotIn("db/locks/faulty.json", keys)
        self.stowage("verify", "--repo", repo, "latest", "--key", self.key, env=self.s3_env())

    def test_claim_of_killed_takeover_is_replaced(self):
        # A run killed while it takes over a dead run's lock leaves its
        # takeover claim. Its pid is gone too, so the next run replaces the
        # claim at once instead of failing until --lock-stale-after.
        repo, bucket = self.s3_repo()
        first = self.start_slow_backup(repo, bucket)
        wait_until(lambda: "db/locks/faulty.json" in object_keys(self.moto, bucket), 30,
                   description="the lock")
        os.killpg(first.pid, signal.SIGKILL)
        first.communicate()
        with FaultProxy(self.moto) as proxy:
            proxy.add_fault(fp.STALL, method="DELETE", path=r"/db/locks/faulty\.json$",
                            count=None, seconds=60)
            second = self.start_backup_through(proxy, repo)
            wait_until(lambda: proxy.requests_matching(method="DELETE", fault=fp.STALL), 60,
                       description="the takeover's stalled delete of the lock")
            os.killpg(second.pid, signal.SIGKILL)
            second.communicate()
        claims = [k for k in object_keys(self.moto, bucket) if ".takeover-" in k]
        self.assertEqual(1, len(claims))

        result, elapsed = self.timed_backup(repo, self.s3_env())
        self.assertIn("deleting the takeover claim %s" % claims[0][len("db/"):], result.stderr)
        self.assertIn("its run no longer exists on this host", result.stderr)
        self.assertLess(elapsed, RETRIED_RUN_SECONDS)
        self.assertEqual(1, len(self.list_json(repo, env=self.s3_env())))
        self.assertEqual([], [k for k in object_keys(self.moto, bucket) if "/locks/" in k])

    def test_killed_backup_lock_and_upload(self):
        repo, bucket = self.s3_repo()
        process = self.start_slow_backup(repo, bucket)
        wait_until(lambda: "db/locks/faulty.json" in object_keys(self.moto, bucket), 30, description="the lock")
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        abandoned = open_uploads(self.moto, bucket)
        self.assertEqual(1, len(abandoned))

        # The lock is fresh (default stale time 10 minutes), but its holder is gone.
        result, elapsed = self.timed_backup(repo, self.s3_env())
        self.assertIn("no longer exists", result.stderr)
        self.assertIn("pid %d" % process.pid, result.stderr)
        self.assertLess(elapsed, RETRIED_RUN_SECONDS)
        self.assertEqual(1, len(self.list_json(repo, env=self.s3_env())))

        time.sleep(1.1)  # --older-than takes whole seconds, at least 1
        result = self.stowage("gc", "--repo", repo, "--older-than", "1s", env=self.s3_env())
        self.assertIn("aborted: upload of", result.stdout)
        self.assertEqual([], open_uploads(self.moto, bucket))
        self.assertEqual(1, len(self.list_json(repo, env=self.s3_env())))

    def test_live_holder_on_this_host_still_blocks(self):
        repo, bucket = self.s3_repo()
        process = self.start_slow_backup(repo, bucket)
        wait_until(lambda: "db/locks/faulty.json" in object_keys(self.moto, bucket), 30, description="the lock")
        result = self.backup(repo, "faulty", env=self.s3_env(), expect=4)
        self.assertIn("pid %d" % process.pid, result.stderr)
        process.send_signal(signal.SIGTERM)
        self.assertEqual(EXIT_INTERRUPTED, process.wait(60))

    def test_sigint_during_restore_rolls_back(self):
        repo = self.file_repo()
        self.backup(repo, "faulty")
        self.cluster.createdb("faulty_sigint")
        started = os.path.join(self.workdir, "pg_restore-started-%s" % os.urandom(3).hex())
        bindir = fake_pg_bindir(self.workdir, "slow-restore-%s" % os.urandom(3).hex(),
                                'exec "$REAL" "$@"', program="pg_restore",
                                replacement='touch %s; sleep 60; exec "$REAL" "$@"' % started)
        process = spawn_stowage(["restore", "--repo", repo, "latest", "--key", self.key,
                                 "--target", self.cluster.conninfo("faulty_sigint")],
                                env={"STOWAGE_PG_BINDIR": bindir})
        self.addCleanup(self.kill_group, process)
        wait_until(lambda: os.path.exists(started), 60, description="pg_restore to start")
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
        check_sanitizer_report(stderr)
        self.assertEqual(EXIT_INTERRUPTED, process.returncode, stderr)
        self.assertEqual([], self.cluster.query(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'", db="faulty_sigint"))

    def test_sigint_during_replicate_leaves_no_manifest(self):
        primary, _ = self.s3_repo()
        self.timed_backup(primary, self.s3_env())
        replica_bucket = "stowage-replica-%s" % os.urandom(4).hex()
        self.moto.create_bucket(replica_bucket, region="eu-west-1")
        with FaultProxy(self.moto) as proxy:
            proxy.add_fault(fp.STALL, method="PUT", path=r"^/stowage-replica-", query=r"partNumber=",
                            nth=3, count=None, seconds=5)
            process = spawn_stowage(["replicate", "--repo", primary, "--to",
                                     "s3://%s/db" % replica_bucket, "--to-region", "eu-west-1"],
                                    env=self.s3_env(AWS_ENDPOINT_URL=proxy.endpoint))
            self.addCleanup(self.kill_group, process)
            wait_until(lambda: len(proxy.requests_matching(method="PUT", query=r"partNumber=")) >= 4,
                       60, description="the part copies")
            process.send_signal(signal.SIGINT)
            _, stderr = process.communicate(timeout=60)
        check_sanitizer_report(stderr)
        self.assertEqual(EXIT_INTERRUPTED, process.returncode, stderr)
        client = self.moto.client("s3", region="eu-west-1")
        keys = [o["Key"] for o in client.list_objects_v2(Bucket=replica_bucket).get("Contents", [])]
        self.assertEqual([], [k for k in keys if k.endswith("manifest.json")])
        self.assertEqual([], client.list_multipart_uploads(Bucket=replica_bucket).get("Uploads", []))


class ScratchLocalKillTest(FaultTestCase):
    """A SIGKILLed restore --scratch local leaves a cluster that gc --scratch local removes."""

    def setUp(self):
        self.base = tempfile.mkdtemp(prefix="scratch-kill-", dir="/tmp")
        os.chmod(self.base, 0o755)
        self.addCleanup(self.remove_base)

    def remove_base(self):
        for pid in processes_in(self.base):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(self.base, ignore_errors=True)

    def gc(self, *extra):
        return self.stowage("gc", "--scratch", "local", *extra, env={"STOWAGE_SCRATCH_DIR": self.base})

    def test_killed_scratch_restore_gc(self):
        repo = self.file_repo()
        self.backup(repo, "faulty")
        started = os.path.join(self.workdir, "pg_restore-started-%s" % os.urandom(3).hex())
        bindir = fake_pg_bindir(self.workdir, "hang-restore-%s" % os.urandom(3).hex(),
                                'exec "$REAL" "$@"', program="pg_restore",
                                replacement='touch %s; sleep 120; exec "$REAL" "$@"' % started)
        process = spawn_stowage(["restore", "--repo", repo, "latest", "--key", self.key,
                                 "--scratch", "local", "--verify"],
                                env={"STOWAGE_SCRATCH_DIR": self.base, "STOWAGE_PG_BINDIR": bindir})
        self.addCleanup(self.kill_group, process)
        wait_until(lambda: os.path.exists(started), 90, description="pg_restore in the scratch cluster")
        pid_files = glob.glob(os.path.join(self.base, "*", "data", "postmaster.pid"))
        self.assertEqual(1, len(pid_files))
        directory = os.path.dirname(os.path.dirname(pid_files[0]))
        with open(os.path.join(directory, "stowage-scratch.json")) as handle:
            marker = json.load(handle)
        self.assertEqual(process.pid, marker["owner_pid"])
        os.killpg(process.pid, signal.SIGKILL)  # stowage and pg_restore; the server lives on
        process.communicate()
        self.assertTrue(processes_in(directory), "the orphaned server should still run")

        dry = self.gc("--dry-run")
        self.assertIn("would remove: %s (owner pid %d no longer exists)" % (directory, process.pid),
                      dry.stdout)
        self.assertTrue(os.path.isdir(directory))

        started = time.monotonic()
        result = self.gc()
        self.assertIn("removed: %s" % directory, result.stdout)
        self.assertLess(time.monotonic() - started, 30)
        self.assertFalse(os.path.exists(directory), result.stdout + result.stderr)
        self.assertEqual([], processes_in(self.base))

    @staticmethod
    def kill_group(process):
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.communicate()

    def test_gc_keeps_cluster_of_live_owner(self):
        directory = os.path.join(self.base, "stowage-scratch-live01")
        os.mkdir(directory, 0o700)
        with open("/proc/sys/kernel/random/boot_id") as handle:
            boot_id = handle.read().strip()
        marker = {"format": "stowage-scratch", "format_version": 1, "owner_pid": os.getpid(),
                  "host": socket.gethostname(), "boot_id": boot_id,
                  "pid_namespace": os.readlink("/proc/self/ns/pid"),
                  "created_at": "2026-01-01T00:00:00Z", "major": 15}
        with open(os.path.join(directory, "stowage-scratch.json"), "w") as handle:
            json.dump(marker, handle)
        unmarked = os.path.join(self.base, "stowage-scratch-nomark")
        os.mkdir(unmarked, 0o700)

        result = self.gc()
        self.assertIn("kept: %s (owner pid %d is running)" % (directory, os.getpid()), result.stdout)
        self.assertIn("kept (not judged): %s" % unmarked, result.stdout)
        self.assertTrue(os.path.isdir(directory))
        self.assertTrue(os.path.isdir(unmarked))

    def test_gc_rejects_extra_arguments(self):
        result = self.stowage("gc", "--scratch", "local", "--repo", "file:///tmp", expect=EXIT_USAGE)
        self.assertIn("unknown option or missing value: --repo", result.stderr)

    def test_gc_takes_config_and_json(self):
        config = os.path.join(self.workdir, "gc-%s.conf" % os.urandom(3).hex())
        with open(config, "w") as handle:
            handle.write("[defaults]\nlog-level = detail\n")
        os.chmod(config, 0o600)

        result = self.gc("--config", config, "--json", "--log-format", "json")

        document = json.loads(result.stdout)
        self.assertFalse(document["dry_run"])
        self.assertEqual(0, document["removed"])
        for line in result.stderr.splitlines():
            json.loads(line)


def fill_limit_method():
    """Return "tmpfs" when a size-limited tmpfs can be mounted here, else "RLIMIT_FSIZE".

    STOWAGE_TEST_FILL=RLIMIT_FSIZE forces the fallback, to test it where mount works.
    """
    if os.environ.get("STOWAGE_TEST_FILL") == "RLIMIT_FSIZE":
        return "RLIMIT_FSIZE"
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return "RLIMIT_FSIZE"
    probe = tempfile.mkdtemp(prefix="stowage-mount-probe-")
    try:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", probe],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0
        if mounted:
            subprocess.run(["umount", probe], check=False)
        return "tmpfs" if mounted else "RLIMIT_FSIZE"
    finally:
        os.rmdir(probe)


class DiskFullTest(FaultTestCase):
    """A file:// repository or an extract target that runs out of room.

    A 256 KiB tmpfs when mount works (root outside a restricted container),
    else a 256 KiB file size limit (RLIMIT_FSIZE with SIGXFSZ ignored, so
    write(2) fails with EFBIG). The method used is printed to stderr.
    """

    LIMIT = 256 * 1024

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.method = fill_limit_method()
        sys.stderr.write("\nDiskFullTest: filling up with %s\n" % cls.method)

    def small_directory(self):
        directory = tempfile.mkdtemp(prefix="small-", dir=self.workdir)
        if self.method == "tmpfs":
            subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%d" % self.LIMIT, "tmpfs", directory],
                           check=True)
            self.addCleanup(subprocess.run, ["umount", "-l", directory], check=False)
        return directory

    def run_limited(self, args, env=None):
        limit = self.LIMIT if self.method == "RLIMIT_FSIZE" else None

        def limit_file_size():
            if limit is not None:
                signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
                resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

        process = subprocess.run([stowage_binary()] + args, env=stowage_environment(env),
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 timeout=300, preexec_fn=limit_file_size, start_new_session=True)
        check_sanitizer_report(process.stderr)
        return process

    def expected_error(self):
        return "No space left on device" if self.method == "tmpfs" else "File too large"

    def test_file_size_limit_fails_the_write(self):
        # ulimit -f with SIGXFSZ at its default, which would kill a process
        # that does not ignore it: stowage reports EFBIG and cleans up.
        directory = tempfile.mkdtemp(prefix="fsize-", dir=self.workdir)
        repo = "file://" + directory

        def limit_file_size():
            resource.setrlimit(resource.RLIMIT_FSIZE, (self.LIMIT, self.LIMIT))

        process = subprocess.run([stowage_binary(), "backup", "--repo", repo, "--db",
                                  self.cluster.conninfo("faulty"), "--recipient", self.pub],
                                 env=stowage_environment(), stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, timeout=300,
                                 preexec_fn=limit_file_size, start_new_session=True)
        check_sanitizer_report(process.stderr)
        self.assertEqual(EXIT_STORAGE, process.returncode, process.stderr)
        self.assertIn("File too large", process.stderr)
        self.assertIn("ulimit -f", process.stderr)
        self.assertEqual([], self.list_json(repo))
        self.assertEqual([], [os.path.join(d, f) for d, _, files in os.walk(directory)
                              for f in files])

    def test_backup_to_full_repository(self):
        directory = self.small_directory()
        repo = "file://" + directory
        result = self.run_limited(["backup", "--repo", repo, "--db", self.cluster.conninfo("faulty"),
                                   "--recipient", self.pub])
        self.assertEqual(EXIT_STORAGE, result.returncode, result.stderr)
        self.assertIn(self.expected_error(), result.stderr)
        self.assertIn(directory, result.stderr)
        self.assertIn("free space" if self.method == "tmpfs" else "ulimit -f", result.stderr)
        self.assertIn("use another repository", result.stderr)

        self.assertEqual([], self.list_json(repo))
        self.assertEqual([], glob.glob(os.path.join(directory, "**", "manifest.json"), recursive=True))
        leftovers = [p for p in glob.glob(os.path.join(directory, "**", ".*"), recursive=True)
                     if os.path.isfile(p)]
        time.sleep(1.1)
        result = self.stowage("gc", "--repo", repo, "--older-than", "1s")
        for path in leftovers:
            self.assertFalse(os.path.exists(path), "gc left %s" % path)
        self.assertEqual([], [p for p in glob.glob(os.path.join(directory, "**", "*"), recursive=True)
                              if os.path.isfile(p) and not p.endswith(".json")])

    def test_extract_to_full_directory(self):
        repo = self.file_repo()
        self.backup(repo, "faulty")
        directory = self.small_directory()
        target = os.path.join(directory, "out")
        result = self.run_limited(["extract", "--repo", repo, "latest", "--key", self.key, "--to", target])
        self.assertEqual(EXIT_FAILURE, result.returncode, result.stderr)
        self.assertIn(self.expected_error(), result.stderr)
        self.assertIn("writing %s/database.dump." % target, result.stderr)
        self.assertIn("extract to another directory", result.stderr)
        # extract created the directory, so it removes it with the partial files.
        self.assertFalse(os.path.exists(target), "a failed extract leaves %s" % target)


class KeyAndOptionFaultTest(FaultTestCase):
    """Key files passed wrongly, and an unwritable metrics file."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.repo = "file://" + tempfile.mkdtemp(prefix="repo-", dir=cls.workdir)
        result = run_stowage(["backup", "--repo", cls.repo, "--db", cls.cluster.conninfo("faulty"),
                              "--recipient", cls.pub])
        if result.returncode != 0:
            raise RuntimeError("backup failed: %s" % result.stderr)

    def test_public_key_as_secret_key_is_named(self):
        self.assertEqual(0o644, os.stat(self.pub).st_mode & 0o777)
        result = self.stowage("restore", "--repo", self.repo, "latest", "--key", self.pub,
                              "--scratch", "local", expect=EXIT_USAGE)
        self.assertIn("%s is a public key file; a secret key file is expected here" % self.pub,
                      result.stderr)
        self.assertIn("without .pub", result.stderr)
        self.assertNotIn("readable by group", result.stderr)

    def test_group_readable_secret_key_is_rejected(self):
        key = os.path.join(self.workdir, "loose.key")
        shutil.copy(self.key, key)
        os.chmod(key, 0o640)
        result = self.stowage("verify", "--repo", self.repo, "latest", "--key", key, expect=EXIT_USAGE)
        self.assertIn("readable by group or others (mode 0640)", result.stderr)
        self.assertIn("chmod 600 %s" % key, result.stderr)

    def test_unwritable_metrics_file_only_warns(self):
        # Documented in docs/DEPLOYMENT.md: the exit code reports the run,
        # and the age alert on stowage_last_success_timestamp_seconds
        # catches a metrics file that stops being updated.
        path = os.path.join(self.workdir, "no-such-directory", "stowage.prom")
        result = self.stowage("verify", "--repo", self.repo, "latest", "--key", self.key,
                              "--metrics-file", path)
        self.assertIn("metrics were not written", result.stderr)
        self.assertIn(path, result.stderr)
        self.assertFalse(os.path.exists(os.path.dirname(path)))


if __name__ == "__main__":
    unittest.main()
