"""End-to-end tests of --db-iam-auth: RDS IAM authentication tokens as passwords.

A stand-in PostgreSQL server on 127.0.0.1 speaks the start of the
protocol: it declines TLS, reads the startup message, requests a cleartext
password (AuthenticationCleartextPassword) and records it. Then it either
fails the authentication, or relays the connection to the test's real
PostgreSQL cluster (which trusts loopback connections), so that a whole
backup runs through it and every connection, pg_dump's included, is seen.

Each recorded password is checked against botocore: the token is
recomputed with botocore's generate_db_auth_token for the same
credentials, region, host, port and user, with botocore's clock frozen at
the token's X-Amz-Date.
"""

import datetime
import socket
import struct
import threading
import urllib.parse
from unittest import mock

import botocore.session

from support import StowageTestCase

from harness import assert_no_secret

ACCESS_KEY_ID = "AKIAIAMAUTHTEST00001"
SECRET_ACCESS_KEY = "iam-auth-test-secret-key/0123456789abcdef"
REGION = "eu-central-1"
DB_USER = "postgres"

SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104
CANCEL_REQUEST = 80877102


def receive_exactly(sock, count):
    """Return count bytes from sock, or None when the peer closes first."""
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def error_response(message):
    """Return a FATAL ErrorResponse message with SQLSTATE 28P01 (invalid password)."""
    fields = b"SFATAL\0VFATAL\0C28P01\0M" + message.encode() + b"\0\0"
    return b"E" + struct.pack("!I", 4 + len(fields)) + fields


class StandInServer:
    """A loopback server that records the password of every connection.

    upstream_port None: every authentication fails. Otherwise the startup
    message is replayed to the PostgreSQL server on that port and the bytes
    are relayed both ways. connections lists dicts with the startup
    parameters ("user", "database") and "password".
    """

    def __init__(self, upstream_port=None):
        self.upstream_port = upstream_port
        self.connections = []
        self.lock = threading.Lock()
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._accept_loop, daemon=True)
        self.thread.start()

    def close(self):
        self.listener.close()

    def passwords(self):
        with self.lock:
            return [c["password"] for c in self.connections]

    def _accept_loop(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _read_startup(self, client):
        """Return the raw startup message after declining TLS and GSS encryption."""
        while True:
            header = receive_exactly(client, 8)
            if header is None:
                return None
            length, code = struct.unpack("!II", header)
            body = receive_exactly(client, length - 8)
            if body is None:
                return None
            if code in (SSL_REQUEST, GSSENC_REQUEST):
                client.sendall(b"N")
                continue
            return header + body

    def _serve(self, client):
        with client:
            startup = self._read_startup(client)
            if startup is None:
                return
            code = struct.unpack("!I", startup[4:8])[0]
            if code == CANCEL_REQUEST:
                self._forward_cancel(startup)
                return
            pairs = startup[8:].split(b"\0")
            parameters = {pairs[i].decode(): pairs[i + 1].decode()
                          for i in range(0, len(pairs) - 1, 2) if pairs[i]}

            client.sendall(b"R" + struct.pack("!II", 8, 3))
            kind = receive_exactly(client, 1)
            length = receive_exactly(client, 4) if kind == b"p" else None
            if length is None:
                return
            password = receive_exactly(client, struct.unpack("!I", length)[0] - 4)
            if password is None:
                return
            with self.lock:
                self.connections.append(dict(parameters, password=password.rstrip(b"\0").decode()))

            if self.upstream_port is None:
                client.sendall(error_response(
                    'password authentication failed for user "%s"' % parameters.get("user")))
                return
            self._relay(client, startup)

    def _forward_cancel(self, message):
        if self.upstream_port is not None:
            with socket.create_connection(("127.0.0.1", self.upstream_port)) as upstream:
                upstream.sendall(message)

    def _relay(self, client, startup):
        with socket.create_connection(("127.0.0.1", self.upstream_port)) as upstream:
            upstream.sendall(startup)

            def pump(source, destination):
                try:
                    while True:
                        data = source.recv(65536)
                        if not data:
                            break
                        destination.sendall(data)
                except OSError:
                    pass
                try:
                    destination.shutdown(socket.SHUT_WR)
                except OSError:
                    pass

            back = threading.Thread(target=pump, args=(upstream, client), daemon=True)
            back.start()
            pump(client, upstream)
            back.join(timeout=60)


def botocore_token(host, port, user, signing_time):
    """Return botocore's token for the test credentials with its clock frozen at signing_time."""
    client = botocore.session.get_session().create_client(
        "rds", region_name=REGION, aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=SECRET_ACCESS_KEY)
    with mock.patch("botocore.auth.get_current_datetime", return_value=signing_time):
        return client.generate_db_auth_token(host, port, user)


def token_parameters(token):
    """Return (host:port, {name: value}) of a token, with the values decoded."""
    address, _, query = token.partition("/?")
    return address, dict(urllib.parse.parse_qsl(query, keep_blank_values=True))


class IamAuthTestCase(StowageTestCase):
    def iam_env(self, **extra):
        env = {"AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
               "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
               "AWS_REGION": REGION}
        env.update(extra)
        return env

    def assert_valid_token(self, token, port, user=DB_USER):
        address, parameters = token_parameters(token)
        self.assertEqual("127.0.0.1:%d" % port, address)
        self.assertEqual("connect", parameters.get("Action"))
        self.assertEqual(user, parameters.get("DBUser"))
        self.assertEqual("900", parameters.get("X-Amz-Expires"))
        self.assertEqual("host", parameters.get("X-Amz-SignedHeaders"))

        signed_at = datetime.datetime.strptime(parameters["X-Amz-Date"], "%Y%m%dT%H%M%SZ")
        self.assertEqual("%s/%s/%s/rds-db/aws4_request"
                         % (ACCESS_KEY_ID, signed_at.strftime("%Y%m%d"), REGION),
                         parameters.get("X-Amz-Credential"))
        now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
        self.assertLess(abs((now - signed_at).total_seconds()), 600)

        expected = botocore_token("127.0.0.1", port, user, signed_at)
        self.assertEqual(token_parameters(expected), (address, parameters))

    def conninfo(self, port, db="postgres"):
        return "host=127.0.0.1 port=%d user=%s dbname=%s" % (port, DB_USER, db)


class CheckIamAuthTest(IamAuthTestCase):
    def setUp(self):
        self.server = StandInServer()
        self.addCleanup(self.server.close)

    def test_check_sends_token(self):
        result = self.stowage("check", "--repo", self.file_repo(), "--db",
                              self.conninfo(self.server.port), "--db-iam-auth",
                              "--log-level", "debug", env=self.iam_env(), expect=7)
        passwords = self.server.passwords()
        self.assertEqual(1, len(passwords), result.stderr)
        self.assert_valid_token(passwords[0], self.server.port)
        self.assertIn("password authentication failed", result.stdout)
        assert_no_secret([result.stdout, result.stderr], passwords + [SECRET_ACCESS_KEY])

    def test_check_password_overridden(self):
        conninfo = self.conninfo(self.server.port) + " password=not-the-token"
        result = self.stowage("check", "--repo", self.file_repo(), "--db", conninfo,
                              "--db-iam-auth", env=self.iam_env(PGPASSWORD="nor-this"),
                              expect=7)
        passwords = self.server.passwords()
        self.assertEqual(1, len(passwords), result.stderr)
        self.assert_valid_token(passwords[0], self.server.port)

    def test_without_flag_sends_password(self):
        conninfo = self.conninfo(self.server.port) + " password=plain-password"
        self.stowage("check", "--repo", self.file_repo(), "--db", conninfo,
                     env=self.iam_env(), expect=7)
        self.assertEqual(["plain-password"], self.server.passwords())

    def test_remote_host_needs_tls(self):
        conninfo = ("host=mydb.abc123.eu-west-1.rds.amazonaws.com port=5432 user=backup "
                    "dbname=app sslmode=prefer")
        result = self.stowage("check", "--repo", self.file_repo(), "--db", conninfo,
                              "--db-iam-auth", env=self.iam_env(), expect=2)
        self.assertIn('sslmode is "prefer"', result.stdout)
        self.assertIn("sslmode=verify-full", result.stderr)
        self.assertEqual([], self.server.passwords())

    def test_socket_directory_rejected(self):
        result = self.stowage("check", "--repo", self.file_repo(), "--db",
                              "host=/var/run/postgresql user=backup", "--db-iam-auth",
                              env=self.iam_env(), expect=2)
        self.assertIn("needs a TCP host name", result.stdout)

    def test_missing_credentials(self):
        result = self.stowage("check", "--repo", self.file_repo(), "--db",
                              self.conninfo(self.server.port), "--db-iam-auth",
                              env={"AWS_REGION": REGION}, expect=None)
        self.assertNotEqual(0, result.returncode)
        self.assertIn("RDS IAM authentication token", result.stdout + result.stderr)
        self.assertEqual([], self.server.passwords())


class BackupIamAuthTest(IamAuthTestCase):
    def setUp(self):
        self.server = StandInServer(upstream_port=self.cluster.port)
        self.addCleanup(self.server.close)

    def test_backup_every_connection(self):
        repo = self.file_repo()
        result = self.stowage("backup", "--repo", repo, "--db",
                              self.conninfo(self.server.port), "--recipient", self.pub,
                              "--db-iam-auth", "--log-level", "debug", env=self.iam_env())
        passwords = self.server.passwords()

        # stowage's own connection, pg_dumpall --globals-only and pg_dump.
        self.assertGreaterEqual(len(passwords), 3, result.stderr)
        for password in passwords:
            self.assert_valid_token(password, self.server.port)
        self.assertEqual(1, len(self.list_json(repo)))
        assert_no_secret([result.stdout, result.stderr], passwords + [SECRET_ACCESS_KEY])

    def test_restore_create_tokens(self):
        # restore --create connects to postgres and to the temporary
        # database with strings of its own; each gets a token too.
        repo = self.file_repo()
        self.backup(repo, "postgres")
        result = self.stowage("restore", "--repo", repo, "latest", "--key", self.key,
                              "--target", self.conninfo(self.server.port, "iam_created"),
                              "--create", "--db-iam-auth", env=self.iam_env())
        passwords = self.server.passwords()
        self.assertGreaterEqual(len(passwords), 5, result.stderr)
        for password in passwords:
            self.assert_valid_token(password, self.server.port)
        self.assertIn("renamed the restored database", result.stderr)
        self.assertEqual(1, len(self.cluster.query(
            "SELECT 1 FROM pg_database WHERE datname = 'iam_created'")))
        assert_no_secret([result.stdout, result.stderr], passwords)

    def test_restore_target_token(self):
        repo = self.file_repo()
        self.backup(repo, "postgres")
        self.cluster.createdb("iam_restore_target")
        result = self.stowage("restore", "--repo", repo, "latest", "--key", self.key,
                              "--target", self.conninfo(self.server.port, "iam_restore_target"),
                              "--db-iam-auth", env=self.iam_env())
        passwords = self.server.passwords()
        self.assertGreaterEqual(len(passwords), 2, result.stderr)
        for password in passwords:
            self.assert_valid_token(password, self.server.port)
        assert_no_secret([result.stdout, result.stderr], passwords)
