"""End-to-end tests of the AWS credential chain and of stowage check.

Web identity and profile roles go through moto's STS. Container
credentials and instance metadata come from loopback servers that the
tests start. Other tests let credentials expire, or be rejected, in the
middle of a multipart upload.

Every server here listens on 127.0.0.1. Only InstanceMetadataTest enables
instance metadata, and it points AWS_EC2_METADATA_SERVICE_ENDPOINT at its
own loopback server; every other run has AWS_EC2_METADATA_DISABLED=true.
"""

import http.server
import json
import os
import re
import shutil
import secrets
import subprocess
import tempfile
import threading
import time
import unittest

from support import SMALL_PART, StowageTestCase

from harness import FaultProxy, MotoServer, assert_no_secret, run_stowage
from harness import faultproxy
from harness.stowage import check_sanitizer_report, stowage_binary, stowage_environment

ROLE_ARN = "arn:aws:iam::123456789012:role/stowage-backup"
CREDENTIAL_PATTERN = re.compile(r"Credential=([A-Z0-9]+)/")


def signing_key_id(record):
    """Return the access key id in a proxied request's Authorization header, or None."""
    match = CREDENTIAL_PATTERN.search(record.header("Authorization") or "")
    return match.group(1) if match else None


def requests_with_body(proxy, text):
    """Return the proxied requests whose recorded body contains text (bytes)."""
    return [r for r in proxy.requests if text in (r.body or b"")]


def without_static_keys(env):
    """Return env without the static keys, so that the chain looks further."""
    env = dict(env)
    env.pop("AWS_ACCESS_KEY_ID", None)
    env.pop("AWS_SECRET_ACCESS_KEY", None)
    return env


class LoopbackServer:
    """An HTTP server on 127.0.0.1 and a free port, run in a thread.

    Subclasses implement handle(handler) for every request; the request log
    (method, path, headers) is in self.requests.
    """

    def __init__(self):
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                server._dispatch(self)

            def do_PUT(self):
                server._dispatch(self)

            def do_POST(self):
                server._dispatch(self)

        self.requests = []
        self.lock = threading.Lock()
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def endpoint(self):
        return "http://127.0.0.1:%d" % self.httpd.server_address[1]

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(10)

    def _dispatch(self, handler):
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        with self.lock:
            self.requests.append((handler.command, handler.path, dict(handler.headers), body))
        status, content_type, payload = self.handle(handler)
        data = payload.encode() if isinstance(payload, str) else payload
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def handle(self, handler):
        raise NotImplementedError


def credentials_document(key_id, lifetime, code=None):
    """Return (document, secrets) for new random credentials valid lifetime seconds."""
    secret = secrets.token_hex(20)
    token = secrets.token_urlsafe(48)
    expiration = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + lifetime))
    document = {"AccessKeyId": key_id, "SecretAccessKey": secret, "Token": token,
                "Expiration": expiration}
    if code is not None:
        document["Code"] = code
    return json.dumps(document), [secret, token]


class ContainerCredentialsServer(LoopbackServer):
    """The container credentials endpoint: GET /creds with an Authorization token.

    Each successful request hands out new credentials whose key id carries
    the request number (ASIACONTAINER0000001, ...).
    """

    def __init__(self, token, lifetime=3600):
        super().__init__()
        self.token = token
        self.lifetime = lifetime
        self.issued = []       # key ids, in order
        self.secrets = []      # secret keys and session tokens handed out
        self.rejected = 0

    def handle(self, handler):
        if handler.path != "/creds":
            return 404, "application/json", '{"message": "not found"}'
        if handler.headers.get("Authorization") != self.token:
            with self.lock:
                self.rejected += 1
            return 401, "application/json", '{"message": "bad authorization token"}'
        with self.lock:
            key_id = "ASIACONTAINER%07d" % (len(self.issued) + 1)
            document, handed_out = credentials_document(key_id, self.lifetime)
            self.issued.append(key_id)
            self.secrets.extend(handed_out)
        return 200, "application/json", document


class InstanceMetadataServer(LoopbackServer):
    """An IMDSv2 stand-in: PUT /latest/api/token, then GETs with that token."""

    ROLE = "stowage-role"

    def __init__(self):
        super().__init__()
        self.session_token = secrets.token_urlsafe(32)
        self.secrets = [self.session_token]
        self.unauthorized = 0

    def handle(self, handler):
        base = "/latest/meta-data/iam/security-credentials/"
        if handler.command == "PUT" and handler.path == "/latest/api/token":
            if not handler.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
                return 400, "text/plain", "missing TTL"
            return 200, "text/plain", self.session_token
        if handler.headers.get("X-aws-ec2-metadata-token") != self.session_token:
            with self.lock:
                self.unauthorized += 1
            return 401, "text/plain", "Unauthorized"
        if handler.command == "GET" and handler.path == base:
            return 200, "text/plain", self.ROLE
        if handler.command == "GET" and handler.path == base + self.ROLE:
            document, handed_out = credentials_document("ASIAINSTANCE00000001", 3600,
                                                        code="Success")
            self.secrets.extend(handed_out)
            return 200, "application/json", document
        return 404, "text/plain", "Not Found"


class CredentialChainTest(StowageTestCase):
    """Web identity, container credentials and refresh, against moto without signature checks."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # About 4 MB of hexadecimal text, so a backup spans many 64 KiB parts.
        cls.cluster.createdb("noise")
        cls.cluster.psql("CREATE TABLE noise AS SELECT g AS id, md5(g::text) || md5((g * 7)::text) "
                         "AS filler FROM generate_series(1, 60000) g", db="noise")

    def setUp(self):
        self.bucket = self.new_bucket()
        self.repo = "s3://%s/creds" % self.bucket
        self.tmp = tempfile.mkdtemp(prefix="creds-", dir=self.workdir)

    def write(self, name, text, mode=0o600):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as handle:
            handle.write(text)
        os.chmod(path, mode)
        return path

    def test_web_identity_through_moto_sts(self):
        web_token = "eyJhbGciOiJSUzI1NiJ9." + secrets.token_urlsafe(64)
        token_file = self.write("token", web_token + "\n")
        with FaultProxy(self.moto) as proxy:
            env = without_static_keys(self.moto.env(endpoint_url=proxy.endpoint))
            env.update({"AWS_WEB_IDENTITY_TOKEN_FILE": token_file, "AWS_ROLE_ARN": ROLE_ARN,
                        "AWS_ROLE_SESSION_NAME": "nightly-backup"})
            result = self.stowage("check", "--repo", self.repo, "--log-level", "debug", env=env)

            sts_calls = requests_with_body(proxy, b"Action=AssumeRoleWithWebIdentity")
            s3_calls = proxy.requests_matching(method="GET", path="/" + self.bucket)
            session_tokens = [r.header("X-Amz-Security-Token") for r in s3_calls]

        # One call for the credentials check and one for the repository check.
        self.assertTrue(sts_calls, [r.path for r in proxy.requests])
        for call in sts_calls:
            self.assertIsNone(call.header("Authorization"), "web identity must not be signed")
            self.assertEqual(200, call.upstream_status)
            self.assertIn(b"RoleSessionName=nightly-backup", call.body)
            self.assertIn(b"RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fstowage-backup",
                          call.body)
        self.assertTrue(s3_calls)
        self.assertTrue(all(signing_key_id(r).startswith("ASIA") for r in s3_calls))
        self.assertTrue(all(session_tokens), "S3 requests must carry the session token")
        self.assertRegex(result.stdout, r"credentials +ok +role %s assumed with web identity "
                                        r"token file %s \(STS AssumeRoleWithWebIdentity\) "
                                        r"\(access key id ending \w{4}, expiring at "
                         % (re.escape(ROLE_ARN), re.escape(token_file)))
        self.assertRegex(result.stdout, r"repository +ok +s3://%s/creds is reachable" % self.bucket)
        self.assertIn("using AWS credentials from role", result.stderr)
        assert_no_secret([result.stdout, result.stderr], [web_token] + session_tokens)

    def test_check_file_repository_and_database(self):
        self.moto.client("rds").create_db_instance(
            DBInstanceIdentifier="orders", DBInstanceClass="db.t3.micro", Engine="postgres",
            MasterUsername="admin", MasterUserPassword="admin-password", AllocatedStorage=20)
        result = self.stowage("check", "--repo", self.file_repo(), "--db",
                              self.cluster.conninfo("noise"), "--rds-region", "us-east-1",
                              env=self.moto.env())
        lines = result.stdout.splitlines()
        self.assertRegex(lines[0], r"^credentials +ok +environment variables \(AWS_ACCESS_KEY_ID\) "
                                   r"\(long-term key\)$")
        self.assertRegex(lines[1], r"^repository +ok +file://.* is reachable$")
        self.assertRegex(lines[2], r"^database +ok +PostgreSQL 15\.\d+.*, database noise on ")
        self.assertRegex(lines[3], r"^rds +ok +DescribeDBInstances in us-east-1 lists 1 instance$")

    def test_check_exit_code_of_first_failure(self):
        result = self.stowage("check", "--repo", "s3://%s-missing/x" % self.bucket, "--db",
                              "host=127.0.0.1 port=1 dbname=none connect_timeout=2",
                              env=self.moto.env(), expect=6)
        lines = result.stdout.splitlines()
        self.assertRegex(lines[0], r"^credentials +ok ")
        self.assertRegex(lines[1], r"^repository +failed +.*NoSuchBucket")
        self.assertRegex(lines[2], r"^database +failed ")
        self.assertRegex(lines[3], r"^rds +skipped +no --rds-region given$")

        result = self.stowage("check", "--repo", self.file_repo(), "--db",
                              "host=127.0.0.1 port=1 dbname=none connect_timeout=2", expect=7)
        self.assertRegex(result.stdout, r"credentials +skipped +not needed for this repository")

    def test_check_and_gc_take_name(self):
        repo = self.file_repo()
        config = self.write("named.conf", "[database noise]\nrepo = %s\ndb = %s\n"
                            % (repo, self.cluster.conninfo("noise")))
        os.chmod(config, 0o600)

        result = self.stowage("check", "--config", config, "--name", "noise")
        self.assertRegex(result.stdout, r"database +ok +PostgreSQL 15\.\d+.*, database noise on ")
        self.assertRegex(result.stdout, r"repository +ok +file://")
        result = self.stowage("gc", "--config", config, "--name", "noise", "--dry-run")
        self.assertIn("dry run", result.stdout)

        for command in ("check", "gc"):
            result = self.stowage(command, "--config", config, "--name", "nosuch", expect=2)
            self.assertIn("no [database nosuch] section in %s" % config, result.stderr)
        result = self.stowage("check", "--name", "bad/name", "--repo", repo, expect=2)
        self.assertIn("bad/name", result.stderr)

    def test_web_identity_without_role_arn_fails(self):
        token_file = self.write("token", "header.payload.signature")
        env = without_static_keys(self.moto.env())
        env["AWS_WEB_IDENTITY_TOKEN_FILE"] = token_file
        result = self.stowage("check", "--repo", self.repo, env=env, expect=2)
        self.assertIn("AWS_WEB_IDENTITY_TOKEN_FILE is set but AWS_ROLE_ARN is not", result.stdout)
        assert_no_secret([result.stdout, result.stderr], ["header.payload.signature"])

    def test_container_credentials_with_token_file(self):
        auth_token = "container-" + secrets.token_hex(16)
        token_file = self.write("auth", auth_token + "\n")
        with ContainerCredentialsServer(auth_token) as server, FaultProxy(self.moto) as proxy:
            env = without_static_keys(self.moto.env(endpoint_url=proxy.endpoint))
            env.update({"AWS_CONTAINER_CREDENTIALS_FULL_URI": server.endpoint + "/creds",
                        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": token_file})
            result = self.stowage("check", "--repo", self.repo, "--log-level", "debug", env=env)
            s3_keys = {signing_key_id(r) for r in proxy.requests}

        self.assertIn("ASIACONTAINER0000001", server.issued)
        self.assertEqual(0, server.rejected)
        self.assertTrue(s3_keys)
        self.assertLessEqual(s3_keys, set(server.issued))
        self.assertIn("the container credentials endpoint %s/creds" % server.endpoint, result.stdout)
        self.assertIn("access key id ending 0001", result.stdout)
        self.assertNotIn("ASIACONTAINER", result.stdout + result.stderr)
        assert_no_secret([result.stdout, result.stderr], [auth_token] + server.secrets)

    def test_container_credentials_wrong_token(self):
        with ContainerCredentialsServer("right-" + secrets.token_hex(8)) as server:
            env = without_static_keys(self.moto.env())
            env.update({"AWS_CONTAINER_CREDENTIALS_FULL_URI": server.endpoint + "/creds",
                        "AWS_CONTAINER_AUTHORIZATION_TOKEN": "wrong-token-value"})
            result = self.stowage("check", "--repo", self.repo, env=env, expect=6)
        self.assertGreaterEqual(server.rejected, 1)
        self.assertEqual([], server.issued)
        self.assertRegex(result.stdout, r"credentials +failed +.*container credentials.*HTTP 401")
        assert_no_secret([result.stdout, result.stderr], ["wrong-token-value", server.token])

    def test_container_full_uri_to_other_host_rejected(self):
        env = without_static_keys(self.moto.env())
        # Never contacted: the address is rejected before any connection.
        env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = "http://192.0.2.10/creds"
        env["AWS_CONTAINER_AUTHORIZATION_TOKEN"] = "must-not-leave"
        result = self.stowage("check", "--repo", self.repo, env=env, expect=2)
        self.assertIn("must use https, or http to a loopback address", result.stdout)

    def test_credentials_refreshed_during_multipart_upload(self):
        auth_token = secrets.token_hex(16)
        # Credentials live 20 s and are refreshed 10 s before they expire.
        # Four UploadPart requests stall 6 s each, so one upload outlives
        # several sets of credentials.
        with ContainerCredentialsServer(auth_token, lifetime=20) as server, \
                FaultProxy(self.moto) as proxy:
            proxy.add_fault(faultproxy.STALL, method="PUT", query=r"partNumber=", nth=2, count=4,
                            seconds=6)
            env = without_static_keys(self.s3_env(AWS_ENDPOINT_URL=proxy.endpoint))
            env.update({"AWS_CONTAINER_CREDENTIALS_FULL_URI": server.endpoint + "/creds",
                        "AWS_CONTAINER_AUTHORIZATION_TOKEN": auth_token,
                        "STOWAGE_CREDENTIALS_REFRESH_MARGIN": "10"})
            started = time.monotonic()
            result = self.backup(self.repo, "noise", "--part-size", "64KiB", "--transfers", "1",
                                 "--log-level", "detail", env=env)
            elapsed = time.monotonic() - started
            parts = proxy.requests_matching(method="PUT", query=r"partNumber=")
            part_keys = [signing_key_id(r) for r in parts]

        self.assertGreater(elapsed, 20, "the upload must outlive the first credentials")
        self.assertGreaterEqual(len(server.issued), 2, "credentials were never refreshed")
        used = [key for i, key in enumerate(part_keys) if key not in part_keys[:i]]
        self.assertGreaterEqual(len(used), 2, "UploadPart never switched credentials: %s" % used)
        self.assertEqual(sorted(used), used, "parts went back to older credentials")
        self.assertIn("using AWS credentials from the container credentials endpoint",
                      result.stderr)
        assert_no_secret([result.stdout, result.stderr], [auth_token] + server.secrets)

        self.stowage("verify", "--repo", self.repo, "latest", "--key", self.key,
                     env=self.s3_env())

    def test_expired_token_retried_with_fresh_credentials(self):
        auth_token = secrets.token_hex(16)
        with ContainerCredentialsServer(auth_token) as server, FaultProxy(self.moto) as proxy:
            proxy.add_fault(faultproxy.EXPIRED_TOKEN, method="PUT", query=r"partNumber=2&")
            env = without_static_keys(self.s3_env(AWS_ENDPOINT_URL=proxy.endpoint))
            env.update({"AWS_CONTAINER_CREDENTIALS_FULL_URI": server.endpoint + "/creds",
                        "AWS_CONTAINER_AUTHORIZATION_TOKEN": auth_token})
            result = self.backup(self.repo, "noise", "--part-size", "64KiB", "--transfers", "1",
                                 env=env)
            part_two = proxy.requests_matching(method="PUT", query=r"partNumber=2&")

        self.assertEqual([faultproxy.EXPIRED_TOKEN, None], [r.fault for r in part_two])
        rejected_key, retry_key = [signing_key_id(r) for r in part_two]
        # Other clients of the run (the repository lock) fetch their own
        # credentials, so only the order of the two keys is fixed.
        self.assertIn(rejected_key, server.issued)
        self.assertIn(retry_key, server.issued)
        self.assertGreater(server.issued.index(retry_key), server.issued.index(rejected_key))
        self.assertIn("ExpiredToken", result.stderr)
        assert_no_secret([result.stdout, result.stderr], [auth_token] + server.secrets)
        self.stowage("verify", "--repo", self.repo, "latest", "--key", self.key,
                     env=self.s3_env())


class ProfileRoleTest(unittest.TestCase):
    """A profile with role_arn and source_profile, on a moto that checks every signature.

    The repository has no prefix because moto 5.2's verifier rejects even
    botocore's signatures for a ListObjectsV2 prefix that contains '/'.
    """

    @classmethod
    def setUpClass(cls):
        cls.moto = MotoServer(extra_env={"INITIAL_NO_AUTH_ACTION_COUNT": "5"}).__enter__()
        cls.addClassCleanup(cls.moto.__exit__, None, None, None)
        # The five unauthenticated requests: a user with a key and a policy,
        # and a role that the user may assume, with its own policy.
        iam = cls.moto.client("iam")
        iam.create_user(UserName="base")
        cls.base_key = iam.create_access_key(UserName="base")["AccessKey"]
        iam.put_user_policy(UserName="base", PolicyName="assume", PolicyDocument=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": ["sts:AssumeRole", "s3:CreateBucket"],
                           "Resource": "*"}]}))
        trust = {"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}]}
        cls.role_arn = iam.create_role(RoleName="backup",
                                       AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
        iam.put_role_policy(RoleName="backup", PolicyName="s3", PolicyDocument=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": ["s3:*"], "Resource": "*"}]}))
        cls.moto.client("s3", access_key=cls.base_key["AccessKeyId"],
                        secret_key=cls.base_key["SecretAccessKey"]).create_bucket(Bucket="profiles")
        cls.tmp = tempfile.mkdtemp(prefix="stowage-profiles-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, ignore_errors=True)

    def files(self, config, credentials):
        config_path = os.path.join(self.tmp, "config")
        credentials_path = os.path.join(self.tmp, "credentials")
        with open(config_path, "w") as handle:
            handle.write(config)
        with open(credentials_path, "w") as handle:
            handle.write(credentials)
        return {"AWS_CONFIG_FILE": config_path, "AWS_SHARED_CREDENTIALS_FILE": credentials_path}

    def environment(self, proxy, profile, config, credentials):
        env = {"AWS_ENDPOINT_URL": proxy.endpoint, "AWS_REGION": "us-east-1",
               "AWS_PROFILE": profile}
        env.update(self.files(config, credentials))
        return env

    def base_credentials(self):
        return ("[base]\naws_access_key_id = %s\naws_secret_access_key = %s\n"
                % (self.base_key["AccessKeyId"], self.base_key["SecretAccessKey"]))

    def test_role_arn_with_source_profile(self):
        config = ("[profile ops]\nrole_arn = %s\nsource_profile = base\n"
                  "role_session_name = stowage-profile-test\nregion = eu-west-1\n" % self.role_arn)
        with FaultProxy(self.moto) as proxy:
            env = self.environment(proxy, "ops", config, self.base_credentials())
            result = run_stowage(["check", "--repo", "s3://profiles", "--log-level",
                                  "debug"], env=env)
            assume = requests_with_body(proxy, b"Action=AssumeRole&")
            s3_calls = proxy.requests_matching(method="GET", path="/profiles")

        self.assertEqual(0, result.returncode, result.stdout + result.stderr)
        self.assertTrue(assume)
        for call in assume:
            self.assertEqual(200, call.upstream_status)
            self.assertEqual(self.base_key["AccessKeyId"], signing_key_id(call))
            self.assertIn(b"RoleSessionName=stowage-profile-test", call.body)
        self.assertTrue(s3_calls)
        self.assertTrue(all(r.upstream_status == 200 for r in s3_calls))
        self.assertTrue(all(signing_key_id(r).startswith("ASIA") for r in s3_calls))
        self.assertIn("role %s assumed with profile ops (STS AssumeRole)" % self.role_arn,
                      result.stdout)
        session_tokens = [r.header("X-Amz-Security-Token") for r in s3_calls]
        self.assertTrue(all(session_tokens))
        assert_no_secret([result.stdout, result.stderr],
                         [self.base_key["SecretAccessKey"]] + session_tokens)

    def test_wrong_source_secret_rejected_by_sts(self):
        config = "[profile ops]\nrole_arn = %s\nsource_profile = base\n" % self.role_arn
        credentials = ("[base]\naws_access_key_id = %s\naws_secret_access_key = not-the-secret\n"
                       % self.base_key["AccessKeyId"])
        with FaultProxy(self.moto) as proxy:
            env = self.environment(proxy, "ops", config, credentials)
            result = run_stowage(["check", "--repo", "s3://profiles"], env=env)
        self.assertEqual(6, result.returncode, result.stdout + result.stderr)
        self.assertRegex(result.stdout, r"credentials +failed +getting AWS credentials for role "
                                        r".*profile ops.*STS AssumeRole failed.*HTTP 403")
        assert_no_secret([result.stdout, result.stderr],
                         ["not-the-secret", self.base_key["SecretAccessKey"]])

    def test_profile_sourcing_itself_without_keys(self):
        config = "[profile loop]\nrole_arn = %s\nsource_profile = loop\n" % self.role_arn
        with FaultProxy(self.moto) as proxy:
            env = self.environment(proxy, "loop", config, "")
            result = run_stowage(["check", "--repo", "s3://profiles"], env=env)
        self.assertNotEqual(0, result.returncode)
        self.assertIn("profile loop in %s names itself as source_profile but has no "
                      "aws_access_key_id" % env["AWS_CONFIG_FILE"], result.stdout)
        self.assertEqual([], proxy.requests)

    def test_missing_profile_named_in_aws_profile(self):
        with FaultProxy(self.moto) as proxy:
            env = self.environment(proxy, "absent", "", self.base_credentials())
            result = run_stowage(["check", "--repo", "s3://profiles"], env=env)
        self.assertEqual(6, result.returncode, result.stdout + result.stderr)
        self.assertIn("AWS credentials file %s has no profile absent, and the config file %s has "
                      "none either" % (env["AWS_SHARED_CREDENTIALS_FILE"], env["AWS_CONFIG_FILE"]),
                      result.stdout)
        self.assertEqual([], proxy.requests)


class InstanceMetadataTest(unittest.TestCase):
    """The one run with instance metadata enabled: pointed at a loopback stand-in."""

    @classmethod
    def setUpClass(cls):
        cls.moto = MotoServer().__enter__()
        cls.addClassCleanup(cls.moto.__exit__, None, None, None)
        cls.moto.create_bucket("imds")

    def test_imdsv2_token_then_role_credentials(self):
        with InstanceMetadataServer() as server:
            env = stowage_environment(without_static_keys(self.moto.env()))
            # run_stowage always disables instance metadata, so this test
            # builds the environment itself, with the endpoint on loopback.
            env["AWS_EC2_METADATA_DISABLED"] = "false"
            env["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = server.endpoint
            self.assertTrue(env["AWS_EC2_METADATA_SERVICE_ENDPOINT"].startswith("http://127.0.0.1:"))
            result = subprocess.run([stowage_binary(), "check", "--repo", "s3://imds/x",
                                     "--log-level", "debug"],
                                    env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True, timeout=120)
            check_sanitizer_report(result.stderr)
            requests = [(method, path) for method, path, _, _ in server.requests]

        self.assertEqual(0, result.returncode, result.stdout + result.stderr)
        expected = [("PUT", "/latest/api/token"),
                    ("GET", "/latest/meta-data/iam/security-credentials/"),
                    ("GET", "/latest/meta-data/iam/security-credentials/stowage-role")]
        # The credentials check and the repository check each fetch once.
        self.assertEqual(expected, requests[:3])
        self.assertEqual(set(expected), set(requests))
        self.assertEqual(0, server.unauthorized)
        self.assertIn("instance metadata (IMDSv2), role stowage-role (access key id ending 0001",
                      result.stdout)
        assert_no_secret([result.stdout, result.stderr], server.secrets)


if __name__ == "__main__":
    unittest.main()
