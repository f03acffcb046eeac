"""Tests of the test harness itself: PostgreSQL, moto_server, the fault proxy and run_stowage."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import http.client  # noqa: E402
import pwd  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import socket  # noqa: E402
import stat  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import unittest  # noqa: E402
from datetime import datetime, timezone  # noqa: E402
from email.utils import parsedate_to_datetime  # noqa: E402
from unittest import mock  # noqa: E402

import botocore.auth  # noqa: E402
import botocore.awsrequest  # noqa: E402
import botocore.credentials  # noqa: E402
import botocore.exceptions  # noqa: E402

from harness import (  # noqa: E402
    FaultProxy, MotoServer, PostgresCluster, assert_no_secret, clean_environment, port_is_open,
    run_stowage, tagged_processes,
)
from harness import faultproxy  # noqa: E402
from harness.postgres import PostgresError  # noqa: E402
from support import child_pids  # noqa: E402

NO_RETRIES = {"max_attempts": 0, "mode": "standard"}


def process_uid(pid):
    with open("/proc/%d/status" % pid) as handle:
        for line in handle:
            if line.startswith("Uid:"):
                return int(line.split()[1])
    raise AssertionError("no Uid line for process %d" % pid)


def pid_alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class PostgresClusterTest(unittest.TestCase):
    """One shared cluster for the tests that do not start or stop servers."""

    @classmethod
    def setUpClass(cls):
        cls.cluster = PostgresCluster().__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.cluster.__exit__(None, None, None)

    def test_server_runs_unprivileged(self):
        cluster = self.cluster
        expected_uid = pwd.getpwnam("postgres").pw_uid if os.geteuid() == 0 else os.getuid()
        if os.geteuid() == 0:
            self.assertNotEqual(0, process_uid(cluster.pid))
        self.assertEqual(expected_uid, process_uid(cluster.pid))
        self.assertEqual(expected_uid, os.stat(cluster.data_dir).st_uid)
        self.assertEqual("postgres", cluster.psql("SELECT current_user"))
        self.assertEqual("off", cluster.psql("SHOW fsync"))
        self.assertEqual("127.0.0.1", cluster.psql("SHOW listen_addresses"))
        self.assertEqual(cluster.directory, cluster.psql("SHOW unix_socket_directories"))

    def test_pgbench_init_fills_tables(self):
        self.cluster.createdb("bench")
        self.cluster.pgbench_init(scale=1, db="bench")
        self.assertEqual("100000", self.cluster.psql("SELECT count(*) FROM pgbench_accounts", db="bench"))
        self.assertEqual("1", self.cluster.psql("SELECT count(*) FROM pgbench_branches", db="bench"))

    def test_query_returns_rows_and_nulls(self):
        rows = self.cluster.query("SELECT 'a|b', NULL, 3 UNION ALL SELECT '', 'x', 4 ORDER BY 3")
        self.assertEqual([("a|b", None, "3"), ("", "x", "4")], rows)

    def test_psql_error_raises(self):
        with self.assertRaisesRegex(PostgresError, "no_such_table"):
            self.cluster.psql("SELECT * FROM no_such_table")

    def test_connection_strings_work(self):
        cluster = self.cluster
        cluster.createdb("shop")
        for target in (cluster.conninfo("shop"), cluster.uri("shop")):
            result = cluster.run_tool("psql", "-X", "-At", "-d", target, "-c", "SELECT current_database()")
            self.assertEqual("shop\n", result.stdout)

    def test_env_only_when_asked(self):
        cluster = self.cluster
        with mock.patch.dict(os.environ, {"PGHOST": "192.0.2.1", "PGPASSWORD": "host-secret"}):
            self.assertNotIn("PGHOST", cluster.client_environment())
            self.assertNotIn("PGPASSWORD", cluster.client_environment())
        variables = cluster.env("postgres")
        self.assertEqual("127.0.0.1", variables["PGHOST"])
        self.assertEqual(str(cluster.port), variables["PGPORT"])
        result = subprocess.run([cluster.tool("psql"), "-X", "-At", "-c", "SELECT 1"],
                                env=clean_environment(variables), capture_output=True, text=True)
        self.assertEqual("1\n", result.stdout, result.stderr)


class PostgresLifecycleTest(unittest.TestCase):
    """Tests that start and stop their own clusters."""

    def test_two_clusters_are_separate(self):
        with PostgresCluster() as first, PostgresCluster() as second:
            self.assertNotEqual(first.port, second.port)
            first.psql("CREATE TABLE only_here (id int)")
            self.assertEqual("1", first.psql("SELECT count(*) FROM pg_tables WHERE tablename = 'only_here'"))
            self.assertEqual("0", second.psql("SELECT count(*) FROM pg_tables WHERE tablename = 'only_here'"))

    def test_password_required_over_tcp(self):
        with PostgresCluster(password="pw-for-test") as cluster:
            self.assertEqual("1", cluster.psql("SELECT 1"))
            without_password = clean_environment({"PGCONNECT_TIMEOUT": "5"})
            result = subprocess.run([cluster.tool("psql"), "-X", "-w", "-d", cluster.conninfo(), "-c", "SELECT 1"],
                                    env=without_password, capture_output=True, text=True)
            self.assertNotEqual(0, result.returncode)
            self.assertIn("password", result.stderr)

    def test_exit_stops_server_and_backends(self):
        with PostgresCluster() as cluster:
            cluster.psql("SELECT 1")
            postmaster = cluster.pid
            backends = child_pids(postmaster)
            port, directory = cluster.port, cluster.directory
            self.assertTrue(backends)
            self.assertEqual([postmaster], tagged_processes(cluster.tag))
        self.assertFalse(pid_alive(postmaster))
        for pid in backends:
            self.assertFalse(pid_alive(pid), "backend %d still running" % pid)
        self.assertFalse(port_is_open(port))
        self.assertFalse(os.path.exists(directory))

    def test_exception_stops_server(self):
        holder = {}
        with self.assertRaises(RuntimeError):
            with PostgresCluster() as cluster:
                holder["pid"], holder["port"] = cluster.pid, cluster.port
                raise RuntimeError("test failure inside the context")
        self.assertFalse(pid_alive(holder["pid"]))
        self.assertFalse(port_is_open(holder["port"]))

    def test_killed_test_process_stops_server(self):
        """A test process killed with SIGKILL (a ctest timeout) must not leave the server running."""
        script = ("import os, sys, time; sys.path.insert(0, %r)\n"
                  "from harness import PostgresCluster\n"
                  "cluster = PostgresCluster().__enter__()\n"
                  "print(cluster.pid, cluster.port, cluster.directory, flush=True)\n"
                  "time.sleep(600)\n" % os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
        child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        try:
            pid, port, directory = child.stdout.readline().split()
            pid, port = int(pid), int(port)
            self.addCleanup(shutil.rmtree, directory, True)
            self.assertTrue(pid_alive(pid))
        finally:
            child.kill()
            child.wait()
            child.stdout.close()
        deadline = time.monotonic() + 30
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertFalse(pid_alive(pid))
        self.assertFalse(port_is_open(port))
        with PostgresCluster():
            self.assertFalse(os.path.exists(directory), "the next cluster removes the stale directory")


class MotoServerTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.moto = MotoServer(extra_env={"S3_UPLOAD_PART_MIN_SIZE": "1024"}).__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.moto.__exit__(None, None, None)

    def setUp(self):
        self.moto.reset()

    def test_boto3_and_awscli_share_buckets(self):
        self.moto.create_bucket("shared-bucket")
        self.moto.client("s3").put_object(Bucket="shared-bucket", Key="from-boto3", Body=b"one")
        listing = self.moto.aws("s3", "ls", "s3://shared-bucket/").stdout
        self.assertIn("from-boto3", listing)

        with tempfile.NamedTemporaryFile() as source:
            source.write(b"two")
            source.flush()
            self.moto.aws("s3", "cp", source.name, "s3://shared-bucket/from-awscli")
        body = self.moto.client("s3").get_object(Bucket="shared-bucket", Key="from-awscli")["Body"].read()
        self.assertEqual(b"two", body)

    def test_bucket_in_other_region(self):
        self.moto.create_bucket("eu-bucket", region="eu-west-1")
        location = self.moto.client("s3").get_bucket_location(Bucket="eu-bucket")["LocationConstraint"]
        self.assertEqual("eu-west-1", location)

    def test_reset_wipes_state(self):
        self.moto.create_bucket("gone-after-reset")
        self.moto.reset()
        self.assertEqual([], self.moto.client("s3").list_buckets()["Buckets"])

    def test_extra_env_lowers_part_size(self):
        s3 = self.moto.client("s3")
        self.moto.create_bucket("parts")
        upload = s3.create_multipart_upload(Bucket="parts", Key="object")
        etags = []
        for number in (1, 2):
            etags.append(s3.upload_part(Bucket="parts", Key="object", UploadId=upload["UploadId"],
                                        PartNumber=number, Body=b"p" * 2048)["ETag"])
        s3.complete_multipart_upload(
            Bucket="parts", Key="object", UploadId=upload["UploadId"],
            MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in zip((1, 2), etags)]})
        self.assertEqual(4096, s3.head_object(Bucket="parts", Key="object")["ContentLength"])

    def test_env_points_sdk_at_server(self):
        self.moto.create_bucket("seen-from-env")
        script = "import boto3; print([b['Name'] for b in boto3.client('s3').list_buckets()['Buckets']])"
        env = clean_environment(self.moto.env())
        result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                                timeout=60)
        self.assertEqual("['seen-from-env']\n", result.stdout, result.stderr)
        self.assertEqual("true", env["AWS_EC2_METADATA_DISABLED"])

    def test_reset_auth_switches_checks(self):
        self.moto.create_bucket("auth-bucket")
        try:
            self.moto.reset_auth(0)
            with self.assertRaises(botocore.exceptions.ClientError) as raised:
                self.moto.client("s3", retries=NO_RETRIES).list_objects_v2(Bucket="auth-bucket")
            self.assertEqual(403, raised.exception.response["ResponseMetadata"]["HTTPStatusCode"])
        finally:
            self.moto.reset_auth("inf")
        self.moto.client("s3").list_objects_v2(Bucket="auth-bucket")

    def test_exit_leaves_no_process(self):
        with MotoServer() as moto:
            pid, port = moto.pid, moto.port
            self.assertEqual([pid], tagged_processes(moto.tag))
        self.assertEqual([], tagged_processes(moto.tag))
        self.assertFalse(pid_alive(pid))
        self.assertFalse(port_is_open(port))


class FaultProxyTest(unittest.TestCase):
    """Each fault kind, observed by boto3 or by a raw http.client request."""

    @classmethod
    def setUpClass(cls):
        cls.moto = MotoServer(extra_env={"S3_UPLOAD_PART_MIN_SIZE": "1024"}).__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.moto.__exit__(None, None, None)

    def setUp(self):
        self.moto.reset()
        self.proxy = FaultProxy(self.moto).__enter__()
        self.addCleanup(self.proxy.__exit__, None, None, None)
        self.moto.create_bucket("faults")
        self.payload = bytes(range(256)) * 40
        self.moto.client("s3").put_object(Bucket="faults", Key="object", Body=self.payload)

    def s3(self, retries=NO_RETRIES, **config):
        """Return a boto3 S3 client that goes through the proxy and validates response checksums only when required."""
        config.setdefault("response_checksum_validation", "when_required")
        return self.moto.client("s3", endpoint_url=self.proxy.endpoint, retries=retries, **config)

    def signed(self, method, path, headers=None):
        """Return headers with a SigV4 signature for the proxy's host:port, as an SDK would send."""
        request = botocore.awsrequest.AWSRequest(method=method, url=self.proxy.endpoint + path,
                                                 headers=headers or {})
        credentials = botocore.credentials.Credentials("testing", "testing")
        botocore.auth.S3SigV4Auth(credentials, "s3", "us-east-1").add_auth(request)
        return dict(request.headers.items())

    def raw(self, method, path, body=None, headers=None, timeout=10, sign=True):
        """Send one request (signed unless sign is false) through the proxy with http.client; return (response, body)."""
        connection = http.client.HTTPConnection("127.0.0.1", self.proxy.port, timeout=timeout)
        self.addCleanup(connection.close)
        if sign:
            headers = self.signed(method, path, headers)
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response, response.read()

    def stored(self, key):
        """Return the object's bytes from moto directly, or None when it does not exist."""
        try:
            return self.moto.client("s3").get_object(Bucket="faults", Key=key)["Body"].read()
        except botocore.exceptions.ClientError:
            return None

    def test_passthrough_keeps_request(self):
        response, body = self.raw("GET", "/faults/object")
        self.assertEqual(200, response.status)
        self.assertEqual(self.payload, body)
        record = self.proxy.requests[-1]
        self.assertEqual(("GET", "/faults/object", ""), (record.method, record.path, record.query))
        self.assertEqual("127.0.0.1:%d" % self.proxy.port, record.header("Host"))
        self.assertEqual(200, record.status)
        self.assertIsNone(record.fault)

    def test_error_kinds(self):
        cases = [
            (faultproxy.INTERNAL_ERROR, 500, "InternalError"),
            (faultproxy.SLOW_DOWN, 503, "SlowDown"),
            (faultproxy.REQUEST_TIMEOUT, 400, "RequestTimeout"),
            (faultproxy.EXPIRED_TOKEN, 400, "ExpiredToken"),
            (faultproxy.CLOCK_SKEW, 403, "RequestTimeTooSkewed"),
            (faultproxy.REDIRECT, 301, "PermanentRedirect"),
        ]
        for kind, status, code in cases:
            with self.subTest(kind=kind):
                self.proxy.add_fault(kind, method="GET", path=r"^/faults/object$")
                response, body = self.raw("GET", "/faults/object")
                self.assertEqual(status, response.status)
                self.assertEqual("application/xml", response.getheader("Content-Type"))
                self.assertIn(b"<Code>%s</Code>" % code.encode(), body)
                self.assertRegex(body, rb"<RequestId>[0-9A-F]{16}</RequestId>")
                self.assertEqual(kind, self.proxy.requests[-1].fault)
                response, body = self.raw("GET", "/faults/object")
                self.assertEqual(200, response.status)

    def test_slow_down_without_and_with_retries(self):
        self.proxy.add_fault(faultproxy.SLOW_DOWN, method="GET", count=1)
        with self.assertRaises(botocore.exceptions.ClientError) as raised:
            self.s3().get_object(Bucket="faults", Key="object")
        self.assertEqual("SlowDown", raised.exception.response["Error"]["Code"])

        self.proxy.clear()
        self.proxy.add_fault(faultproxy.SLOW_DOWN, method="GET", count=1)
        body = self.s3(retries={"max_attempts": 2, "mode": "standard"}).get_object(
            Bucket="faults", Key="object")["Body"].read()
        self.assertEqual(self.payload, body)
        self.assertEqual([faultproxy.SLOW_DOWN, None], [r.fault for r in self.proxy.requests])

    def test_request_timeout_closes_connection(self):
        self.proxy.add_fault(faultproxy.REQUEST_TIMEOUT, method="GET")
        response, _ = self.raw("GET", "/faults/object")
        self.assertEqual(400, response.status)
        self.assertEqual("close", response.getheader("Connection"))

    def test_expired_token_seen_by_boto3(self):
        self.proxy.add_fault(faultproxy.EXPIRED_TOKEN, method="GET")
        with self.assertRaises(botocore.exceptions.ClientError) as raised:
            self.s3().get_object(Bucket="faults", Key="object")
        self.assertEqual("ExpiredToken", raised.exception.response["Error"]["Code"])

    def test_clock_skew_reports_server_time(self):
        self.proxy.add_fault(faultproxy.CLOCK_SKEW, skew_seconds=7200)
        response, body = self.raw("GET", "/faults/object", headers={"X-Amz-Date": "20200101T000000Z"}, sign=False)
        self.assertEqual(403, response.status)
        self.assertIn(b"<RequestTime>20200101T000000Z</RequestTime>", body)
        server_time = re.search(rb"<ServerTime>([^<]+)</ServerTime>", body).group(1).decode()
        ahead = datetime.strptime(server_time, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc) - \
            datetime.now(timezone.utc)
        self.assertAlmostEqual(7200, ahead.total_seconds(), delta=60)
        date_ahead = parsedate_to_datetime(response.getheader("Date")) - datetime.now(timezone.utc)
        self.assertAlmostEqual(7200, date_ahead.total_seconds(), delta=60)

    def test_redirect_names_region(self):
        self.proxy.add_fault(faultproxy.REDIRECT, method="GET", region="eu-west-1")
        response, body = self.raw("GET", "/faults/object")
        self.assertEqual("eu-west-1", response.getheader("x-amz-bucket-region"))
        self.assertIn(b"<Endpoint>faults.s3.eu-west-1.amazonaws.com</Endpoint>", body)
        self.assertIn(b"<Bucket>faults</Bucket>", body)

    def test_redirect_followed_by_boto3(self):
        self.proxy.add_fault(faultproxy.REDIRECT, method="GET", region="eu-west-1")
        body = self.s3(retries=None).get_object(Bucket="faults", Key="object")["Body"].read()
        self.assertEqual(self.payload, body)
        first, second = self.proxy.requests
        self.assertIn("/us-east-1/s3/", first.header("Authorization"))
        self.assertIn("/eu-west-1/s3/", second.header("Authorization"))
        self.assertEqual(self.proxy.endpoint.split("//")[1], second.header("Host"))

    def test_custom_error_query_shape(self):
        self.proxy.add_fault(faultproxy.ERROR, method="POST", body=r"Action=DescribeDBInstances",
                             status=400, code="Throttling", message="Rate exceeded", shape="query")
        rds = self.moto.client("rds", endpoint_url=self.proxy.endpoint, retries=NO_RETRIES)
        with self.assertRaises(botocore.exceptions.ClientError) as raised:
            rds.describe_db_instances()
        self.assertEqual("Throttling", raised.exception.response["Error"]["Code"])
        self.assertEqual("Rate exceeded", raised.exception.response["Error"]["Message"])
        self.assertEqual([], rds.describe_db_instances()["DBInstances"])
        self.assertIn(b"Action=DescribeDBInstances", self.proxy.requests[0].body)

    def test_drop_during_body(self):
        self.proxy.add_fault(faultproxy.DROP_DURING_BODY, method="PUT", after_bytes=1000)
        with self.assertRaises(botocore.exceptions.ConnectionClosedError):
            self.s3().put_object(Bucket="faults", Key="dropped", Body=b"d" * 200000)
        record = self.proxy.requests[-1]
        self.assertEqual(1000, record.body_size)
        self.assertIsNone(record.status)
        self.assertIsNone(record.upstream_status)
        self.assertIsNone(self.stored("dropped"))

    def test_drop_after_body(self):
        self.proxy.add_fault(faultproxy.DROP_AFTER_BODY, method="PUT")
        with self.assertRaises(botocore.exceptions.ConnectionClosedError):
            self.s3().put_object(Bucket="faults", Key="dropped", Body=b"d" * 5000)
        record = self.proxy.requests[-1]
        self.assertEqual(5000, record.body_size)
        self.assertIsNone(record.upstream_status)
        self.assertIsNone(self.stored("dropped"))

    def test_drop_before_response_still_writes(self):
        self.proxy.add_fault(faultproxy.DROP_BEFORE_RESPONSE, method="PUT")
        with self.assertRaises(botocore.exceptions.ConnectionClosedError):
            self.s3().put_object(Bucket="faults", Key="written", Body=b"w" * 5000)
        record = self.proxy.requests[-1]
        self.assertEqual(200, record.upstream_status)
        self.assertIsNone(record.status)
        self.assertEqual(b"w" * 5000, self.stored("written"))

    def send_raw_get(self):
        """Send a GET on a plain socket and return the socket, so a test can tell a FIN from a reset."""
        sock = socket.create_connection(("127.0.0.1", self.proxy.port), timeout=10)
        self.addCleanup(sock.close)
        sock.sendall(b"GET /faults/object HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % self.proxy.port)
        return sock

    def test_drop_closes_with_fin(self):
        self.proxy.add_fault(faultproxy.DROP_AFTER_BODY, method="GET")
        self.assertEqual(b"", self.send_raw_get().recv(1024))

    def test_drop_with_reset(self):
        self.proxy.add_fault(faultproxy.DROP_AFTER_BODY, method="GET", reset=True)
        with self.assertRaises(ConnectionResetError):
            self.send_raw_get().recv(1024)

    def test_stall_times_out_client(self):
        self.proxy.add_fault(faultproxy.STALL, method="GET", seconds=30)
        started = time.monotonic()
        with self.assertRaises(socket.timeout):
            self.raw("GET", "/faults/object", timeout=0.5)
        self.assertLess(time.monotonic() - started, 5)
        self.assertIsNone(self.proxy.requests[-1].finished)

    def test_stall_then_forward(self):
        self.proxy.add_fault(faultproxy.STALL, method="GET", seconds=0.5)
        started = time.monotonic()
        response, body = self.raw("GET", "/faults/object")
        self.assertGreaterEqual(time.monotonic() - started, 0.5)
        self.assertEqual(self.payload, body)

    def test_stall_body_times_out_mid_body(self):
        self.proxy.add_fault(faultproxy.STALL_BODY, method="GET", seconds=30)
        connection = http.client.HTTPConnection("127.0.0.1", self.proxy.port, timeout=0.5)
        self.addCleanup(connection.close)
        connection.request("GET", "/faults/object", headers=self.signed("GET", "/faults/object"))
        response = connection.getresponse()
        self.assertEqual(200, response.status)
        self.assertEqual(self.payload[:len(self.payload) // 2], response.read(len(self.payload) // 2))
        with self.assertRaises(socket.timeout):
            response.read(1)

    def test_truncate_sends_short_body(self):
        self.proxy.add_fault(faultproxy.TRUNCATE, method="GET", keep_bytes=100)
        connection = http.client.HTTPConnection("127.0.0.1", self.proxy.port, timeout=10)
        self.addCleanup(connection.close)
        connection.request("GET", "/faults/object", headers=self.signed("GET", "/faults/object"))
        response = connection.getresponse()
        self.assertEqual(str(len(self.payload)), response.getheader("Content-Length"))
        with self.assertRaises(http.client.IncompleteRead) as raised:
            response.read()
        self.assertEqual(self.payload[:100], raised.exception.partial)

    def test_truncate_seen_by_boto3(self):
        self.proxy.add_fault(faultproxy.TRUNCATE, method="GET")
        body = self.s3().get_object(Bucket="faults", Key="object")["Body"]
        with self.assertRaises(botocore.exceptions.ResponseStreamingError):
            body.read()

    def test_corrupt_changes_one_byte(self):
        self.proxy.add_fault(faultproxy.CORRUPT, method="GET")
        body = self.s3().get_object(Bucket="faults", Key="object")["Body"].read()
        self.assertEqual(len(self.payload), len(body))
        differences = [i for i, (a, b) in enumerate(zip(self.payload, body)) if a != b]
        self.assertEqual([len(self.payload) // 2], differences)
        self.assertEqual(len(self.payload) // 2, self.proxy.requests[-1].detail["offset"])

    def test_corrupt_caught_by_boto3_checksum(self):
        self.proxy.add_fault(faultproxy.CORRUPT, method="GET", offset=0)
        body = self.s3(response_checksum_validation="when_supported").get_object(
            Bucket="faults", Key="object", ChecksumMode="ENABLED")["Body"]
        with self.assertRaises(botocore.exceptions.FlexibleChecksumError):
            body.read()

    def test_rewrite_changes_response(self):
        def mark_creating(status, headers, body):
            return 200, headers, body.replace(b"faults", b"rewritten")
        self.proxy.add_fault(faultproxy.REWRITE, method="GET", path="^/$", function=mark_creating)
        names = [b["Name"] for b in self.s3().list_buckets()["Buckets"]]
        self.assertEqual(["rewritten"], names)

    def test_rewrite_changes_status(self):
        def not_found(status, headers, body):
            return 404, headers, b"<Error><Code>NoSuchKey</Code></Error>"
        self.proxy.add_fault(faultproxy.REWRITE, method="GET", function=not_found)
        response, body = self.raw("GET", "/faults/object")
        self.assertEqual((404, "Not Found"), (response.status, response.reason))
        self.assertEqual(b"<Error><Code>NoSuchKey</Code></Error>", body)
        self.assertEqual(200, self.proxy.requests[-1].upstream_status)

    def test_head_keeps_content_length(self):
        response, body = self.raw("HEAD", "/faults/object")
        self.assertEqual(200, response.status)
        self.assertEqual(str(len(self.payload)), response.getheader("Content-Length"))
        self.assertEqual(b"", body)

    def test_part_number_query_rule(self):
        self.proxy.add_fault(faultproxy.INTERNAL_ERROR, method="PUT", query=r"(^|&)partNumber=2(&|$)")
        s3 = self.s3(retries={"max_attempts": 2, "mode": "standard"})
        upload = s3.create_multipart_upload(Bucket="faults", Key="multi")
        parts = []
        for number in (1, 2, 3):
            etag = s3.upload_part(Bucket="faults", Key="multi", UploadId=upload["UploadId"],
                                  PartNumber=number, Body=bytes([number]) * 2048)["ETag"]
            parts.append({"PartNumber": number, "ETag": etag})
        s3.complete_multipart_upload(Bucket="faults", Key="multi", UploadId=upload["UploadId"],
                                     MultipartUpload={"Parts": parts})
        second = self.proxy.requests_matching(method="PUT", query=r"partNumber=2")
        self.assertEqual([faultproxy.INTERNAL_ERROR, None], [r.fault for r in second])
        self.assertEqual([500, 200], [r.status for r in second])
        self.assertEqual(1, len(self.proxy.requests_matching(method="PUT", query=r"partNumber=1")))
        self.assertEqual(b"\x01" * 2048 + b"\x02" * 2048 + b"\x03" * 2048, self.stored("multi"))

    def test_nth_and_count(self):
        rule = self.proxy.add_fault(faultproxy.SLOW_DOWN, method="GET", nth=2, count=2)
        statuses = [self.raw("GET", "/faults/object")[0].status for _ in range(5)]
        self.assertEqual([200, 503, 503, 200, 200], statuses)
        self.assertEqual((5, 2), (rule.matched, rule.applied))

    def test_unlimited_count(self):
        self.proxy.add_fault(faultproxy.SLOW_DOWN, method="GET", count=None)
        statuses = [self.raw("GET", "/faults/object")[0].status for _ in range(3)]
        self.assertEqual([503, 503, 503], statuses)

    def test_first_rule_wins_and_all_count(self):
        first = self.proxy.add_fault(faultproxy.SLOW_DOWN, method="GET")
        second = self.proxy.add_fault(faultproxy.INTERNAL_ERROR, method="GET")
        statuses = [self.raw("GET", "/faults/object")[0].status for _ in range(3)]
        self.assertEqual([503, 500, 200], statuses)
        self.assertEqual(3, first.matched)
        self.assertEqual(3, second.matched)

    def test_chunked_body_forwarded(self):
        connection = http.client.HTTPConnection("127.0.0.1", self.proxy.port, timeout=10)
        self.addCleanup(connection.close)
        headers = self.signed("PUT", "/faults/chunked", {"Transfer-Encoding": "chunked",
                                                        "X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"})
        connection.request("PUT", "/faults/chunked", body=iter([b"abc", b"defgh"]),
                           encode_chunked=True, headers=headers)
        self.assertEqual(200, connection.getresponse().status)
        self.assertEqual(b"abcdefgh", self.stored("chunked"))

    def test_expect_continue(self):
        headers = self.signed("PUT", "/faults/expect", {"Content-Length": "5", "Expect": "100-continue",
                                                       "X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"})
        headers["Host"] = "127.0.0.1:%d" % self.proxy.port
        head = "PUT /faults/expect HTTP/1.1\r\n" + "".join("%s: %s\r\n" % item for item in headers.items())
        with socket.create_connection(("127.0.0.1", self.proxy.port), timeout=10) as sock:
            sock.sendall(head.encode() + b"\r\n")
            self.assertTrue(sock.recv(1024).startswith(b"HTTP/1.1 100 Continue"))
            sock.sendall(b"hello")
            self.assertTrue(sock.recv(4096).startswith(b"HTTP/1.1 200"))
        self.assertEqual(b"hello", self.stored("expect"))

    def test_keep_alive_reuses_connection(self):
        connection = http.client.HTTPConnection("127.0.0.1", self.proxy.port, timeout=10)
        self.addCleanup(connection.close)
        for _ in range(3):
            connection.request("GET", "/faults/object", headers=self.signed("GET", "/faults/object"))
            response = connection.getresponse()
            self.assertEqual(self.payload, response.read())
            self.assertIsNone(response.getheader("Connection"))

    def test_stop_ends_stall_and_connections(self):
        proxy = FaultProxy(self.moto).__enter__()
        proxy.add_fault(faultproxy.STALL, seconds=60)
        connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=30)
        self.addCleanup(connection.close)
        connection.request("GET", "/faults/object")
        time.sleep(0.2)
        started = time.monotonic()
        proxy.__exit__(None, None, None)
        self.assertLess(time.monotonic() - started, 5)
        with self.assertRaises((ConnectionError, http.client.HTTPException)):
            connection.getresponse().read()
        self.assertFalse(port_is_open(proxy.port))

    def test_invalid_rules_rejected(self):
        with self.assertRaises(ValueError):
            self.proxy.add_fault("no_such_fault")
        with self.assertRaises(ValueError):
            self.proxy.add_fault(faultproxy.SLOW_DOWN, seconds=3)
        with self.assertRaises(ValueError):
            self.proxy.add_fault(faultproxy.DROP_DURING_BODY, body="x")
        with self.assertRaises(ValueError):
            FaultProxy("http://192.0.2.1:80")


class StowageHelperTest(unittest.TestCase):
    """run_stowage against a stand-in script, so these tests do not depend on the real binary."""

    def make_binary(self, text):
        directory = tempfile.mkdtemp(prefix="stowage-bin-")
        self.addCleanup(subprocess.run, ["rm", "-rf", directory])
        path = os.path.join(directory, "stowage")
        with open(path, "w") as handle:
            handle.write("#!/bin/sh\n" + text)
        os.chmod(path, stat.S_IRWXU)
        return path

    def test_environment_and_input(self):
        binary = self.make_binary('echo "meta=$AWS_EC2_METADATA_DISABLED profile=${AWS_PROFILE:-none} '
                                  'region=$AWS_REGION args=$*"; cat; echo err >&2; exit 3\n')
        with mock.patch.dict(os.environ, {"STOWAGE_BIN": binary, "AWS_PROFILE": "host-profile"}):
            code, stdout, stderr = run_stowage(["list", "--json"], input="from stdin\n",
                                               env={"AWS_REGION": "eu-west-1",
                                                    "AWS_EC2_METADATA_DISABLED": "false"})
        self.assertEqual(3, code)
        self.assertEqual("meta=true profile=none region=eu-west-1 args=list --json\nfrom stdin\n", stdout)
        self.assertEqual("err\n", stderr)

    def test_timeout_kills_process_group(self):
        marker = "stowage-test-child-%d" % os.getpid()
        binary = self.make_binary("STOWAGE_TEST_TAG=%s sleep 60 &\nwait\n" % marker)
        with mock.patch.dict(os.environ, {"STOWAGE_BIN": binary}):
            with self.assertRaises(subprocess.TimeoutExpired):
                run_stowage([], timeout=1)
        time.sleep(0.2)
        self.assertEqual([], tagged_processes(marker))

    def test_sanitizer_report_fails(self):
        binary = self.make_binary("echo '==123==ERROR: AddressSanitizer: heap-use-after-free' >&2; exit 1\n")
        with mock.patch.dict(os.environ, {"STOWAGE_BIN": binary}):
            with self.assertRaisesRegex(AssertionError, "sanitizer"):
                run_stowage(["backup"])

    def test_missing_binary(self):
        with mock.patch.dict(os.environ, {"STOWAGE_BIN": "/nonexistent/stowage"}):
            with self.assertRaisesRegex(FileNotFoundError, "/nonexistent/stowage"):
                run_stowage(["list"])

    def test_assert_no_secret(self):
        assert_no_secret(["nothing here", b"bytes too"], ["s3cr3t-value"])
        with self.assertRaises(AssertionError) as raised:
            assert_no_secret(["ok", "leaked s3cr3t-value here"], ["", "s3cr3t-value"])
        self.assertNotIn("s3cr3t-value", str(raised.exception))
        self.assertIn("text #1", str(raised.exception))
        with self.assertRaises(AssertionError):
            assert_no_secret(b"bytes with s3cr3t-value", "s3cr3t-value")


if __name__ == "__main__":
    unittest.main()
