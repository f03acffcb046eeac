"""End-to-end tests of --metrics-file and --pushgateway: the node_exporter
textfile after backups that succeed and fail, retries counted from the HTTP
layer, and a push to a loopback Pushgateway stand-in.

The textfile is parsed with prometheus_client when it is importable, and
always with the strict checker below, which accepts only what the text
format 0.0.4 allows for the lines stowage writes.
"""

import http.server
import os
import re
import stat
import threading
import unittest

from support import StowageTestCase

from harness import FaultProxy
from harness import faultproxy

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:  # the strict checker below still runs
    text_string_to_metric_families = None

HELP_LINE = re.compile(r"^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) \S.*$")
TYPE_LINE = re.compile(r"^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (gauge|counter)$")
SAMPLE_LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)'
                         r'\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*",?)*)\}'
                         r' (-?[0-9]+(?:\.[0-9]+)?(?:e[+-]?[0-9]+)?)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"')


def parse_strictly(text):
    """Return {(metric, frozenset(labels)): value}; raise AssertionError on any bad line."""
    if not text.endswith("\n"):
        raise AssertionError("the exposition text does not end with a newline")
    typed = {}
    helped = set()
    samples = {}
    for number, line in enumerate(text.splitlines(), 1):
        help_match = HELP_LINE.match(line)
        type_match = TYPE_LINE.match(line)
        sample_match = SAMPLE_LINE.match(line)
        if help_match:
            helped.add(help_match.group(1))
        elif type_match:
            if type_match.group(1) in typed:
                raise AssertionError("line %d: second TYPE for %s" % (number, type_match.group(1)))
            typed[type_match.group(1)] = type_match.group(2)
        elif sample_match:
            name = sample_match.group(1)
            if name not in typed or name not in helped:
                raise AssertionError("line %d: sample of %s before its HELP and TYPE" % (number, name))
            labels = frozenset(LABEL.findall(sample_match.group(2)))
            if (name, labels) in samples:
                raise AssertionError("line %d: duplicate series %s" % (number, line))
            samples[(name, labels)] = float(sample_match.group(3))
        else:
            raise AssertionError("line %d is not valid exposition text: %r" % (number, line))
    return samples


def parse_metrics(test, text):
    """Parse with both parsers when possible; return the strict parser's samples."""
    samples = parse_strictly(text)
    if text_string_to_metric_families is not None:
        parsed = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                parsed[(sample.name, frozenset(sample.labels.items()))] = sample.value
        test.assertEqual(samples, parsed)
    return samples


def value(samples, metric, **labels):
    return samples[(metric, frozenset(labels.items()))]


class PushgatewayStandIn:
    """Records PUT and POST requests on 127.0.0.1 and returns 200, or 500 while failures remain."""

    def __init__(self, failures=0):
        stand_in = self
        self.pushes = []
        self.failures = failures

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _record(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode()
                stand_in.pushes.append((self.command, self.path,
                                        self.headers.get("Content-Type"), body))
                status = 200
                if stand_in.failures > 0:
                    stand_in.failures -= 1
                    status = 500
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_PUT = _record
            do_POST = _record

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


class MetricsTest(StowageTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.cluster.createdb("shop")
        cls.cluster.psql("CREATE TABLE orders AS SELECT g AS id, md5(g::text) AS note "
                         "FROM generate_series(1, 20000) g", db="shop")

    def metrics_path(self, name):
        directory = os.path.join(self.workdir, "textfile-" + name)
        os.makedirs(directory, exist_ok=True)
        return os.path.join(directory, "stowage.prom")

    def read_metrics(self, path):
        with open(path) as handle:
            return parse_metrics(self, handle.read())

    def test_backup_textfile_success_then_failure(self):
        repo = self.file_repo()
        path = self.metrics_path("backup")
        self.backup(repo, "shop", "--name", "shop", "--metrics-file", path)

        self.assertEqual(0o644, stat.S_IMODE(os.stat(path).st_mode))
        self.assertEqual(["stowage.prom", "stowage.prom.lock"],
                         sorted(os.listdir(os.path.dirname(path))))
        samples = self.read_metrics(path)
        manifest = self.show_json(repo, "latest")
        labels = {"name": "shop", "command": "backup"}
        self.assertEqual(1, value(samples, "stowage_run_success", **labels))
        last_run = value(samples, "stowage_last_run_timestamp_seconds", **labels)
        self.assertEqual(last_run, value(samples, "stowage_last_success_timestamp_seconds", **labels))
        self.assertGreater(value(samples, "stowage_run_duration_seconds", **labels), 0)
        self.assertEqual(0, value(samples, "stowage_retries_total", **labels))
        stored = value(samples, "stowage_backup_bytes", kind="stored", **labels)
        self.assertEqual(manifest["object"]["stored_bytes"], stored)
        self.assertEqual(len(manifest["object"]["parts"]),
                         value(samples, "stowage_backup_parts", **labels))
        archive = value(samples, "stowage_backup_bytes", kind="archive", **labels)
        compressed = value(samples, "stowage_backup_bytes", kind="compressed", **labels)
        self.assertGreater(archive, compressed)
        self.assertAlmostEqual(archive / compressed,
                               value(samples, "stowage_backup_compression_ratio", **labels),
                               places=3)
        self.assertNotIn(("stowage_verification_success", frozenset(labels.items())), samples)

        # A failed run: success 0, and the last success stays.
        result = self.stowage("backup", "--repo", repo, "--db", "host=127.0.0.1 port=1 dbname=x",
                              "--recipient", self.pub, "--name", "shop", "--metrics-file", path,
                              expect=7)
        self.assertIn("error", result.stderr)
        failed = self.read_metrics(path)
        self.assertEqual(0, value(failed, "stowage_run_success", **labels))
        self.assertEqual(last_run, value(failed, "stowage_last_success_timestamp_seconds", **labels))
        self.assertGreaterEqual(value(failed, "stowage_last_run_timestamp_seconds", **labels),
                                last_run)
        self.assertNotIn(("stowage_backup_parts", frozenset(labels.items())), failed)

    def test_retries_counted(self):
        bucket = self.new_bucket()
        repo = "s3://%s/metrics" % bucket
        path = self.metrics_path("retries")
        with FaultProxy(self.moto) as proxy:
            proxy.add_fault(faultproxy.SLOW_DOWN, method="PUT", query=r"partNumber=1&", count=2)
            self.backup(repo, "shop", "--metrics-file", path, "--part-size", "64KiB",
                        env=self.s3_env(AWS_ENDPOINT_URL=proxy.endpoint))
            slowed = len(proxy.requests_matching(fault=faultproxy.SLOW_DOWN))
        samples = self.read_metrics(path)
        labels = {"name": "shop", "command": "backup"}
        self.assertEqual(2, slowed)
        self.assertEqual(2, value(samples, "stowage_retries_total", **labels))
        self.assertEqual(1, value(samples, "stowage_run_success", **labels))

    def test_verify_pushes_to_pushgateway(self):
        repo = self.file_repo()
        self.backup(repo, "shop")
        # A key of another pair fails the second verify with exit code 8 (a
        # missing key file would be bad usage, which pushes nothing).
        other_key = os.path.join(self.workdir, "other-%s.key" % os.urandom(3).hex())
        self.stowage("keygen", "--out", other_key)
        with PushgatewayStandIn(failures=1) as gateway:
            self.stowage("verify", "--repo", repo, "latest", "--key", self.key, "--name", "shop",
                         "--pushgateway", gateway.endpoint)
            self.stowage("verify", "--repo", repo, "latest", "--key", other_key,
                         "--name", "shop", "--pushgateway", gateway.endpoint + "/", expect=8)
        pushes = gateway.pushes

        # The first push got a 500 and was retried.
        self.assertEqual(3, len(pushes), [p[:2] for p in pushes])
        self.assertEqual(["PUT", "PUT", "POST"], [p[0] for p in pushes])
        for method, path, content_type, body in pushes:
            self.assertEqual("/metrics/job/stowage/name/shop/command/verify", path)
            self.assertEqual("text/plain; version=0.0.4", content_type)
        labels = {"name": "shop", "command": "verify"}
        passed = parse_metrics(self, pushes[1][3])
        self.assertEqual(1, value(passed, "stowage_verification_success", **labels))
        self.assertEqual(1, value(passed, "stowage_run_success", **labels))
        self.assertIn(("stowage_last_success_timestamp_seconds", frozenset(labels.items())), passed)
        failed = parse_metrics(self, pushes[2][3])
        self.assertEqual(0, value(failed, "stowage_verification_success", **labels))
        self.assertEqual(0, value(failed, "stowage_run_success", **labels))
        # A failed run leaves the Pushgateway's last success alone.
        self.assertNotIn(("stowage_last_success_timestamp_seconds", frozenset(labels.items())),
                         failed)

    def test_unreachable_pushgateway_keeps_exit_code(self):
        repo = self.file_repo()
        path = self.metrics_path("unreachable")
        with PushgatewayStandIn() as gateway:
            endpoint = gateway.endpoint
        # The stand-in is closed: the push fails, the backup still succeeds.
        result = self.backup(repo, "shop", "--pushgateway", endpoint, "--metrics-file", path)
        self.assertIn("metrics were not pushed", result.stderr)
        self.assertEqual(1, value(self.read_metrics(path), "stowage_run_success", name="shop",
                                  command="backup"))

    def test_drill_textfile(self):
        repo = self.file_repo()
        path = self.metrics_path("drill")
        self.backup(repo, "shop", "--name", "shop")
        self.stowage("drill", "--repo", repo, "--key", self.key, "--metrics-file", path)

        samples = self.read_metrics(path)
        labels = {"name": "", "command": "drill"}
        self.assertEqual(1, value(samples, "stowage_run_success", **labels))
        self.assertEqual(1, value(samples, "stowage_verification_success", **labels))
        self.assertGreaterEqual(value(samples, "stowage_drill_rpo_seconds", **labels), 0)
        self.assertGreater(value(samples, "stowage_drill_rto_seconds", **labels), 0)
        self.assertEqual(value(samples, "stowage_last_run_timestamp_seconds", **labels),
                         value(samples, "stowage_last_success_timestamp_seconds", **labels))

    def test_replicate_textfile(self):
        primary = self.file_repo()
        replica = self.file_repo()
        path = self.metrics_path("replicate")
        self.backup(primary, "shop", "--name", "shop")
        self.stowage("replicate", "--repo", primary, "--to", replica, "--metrics-file", path)

        samples = self.read_metrics(path)
        labels = {"name": "", "command": "replicate"}
        self.assertEqual(1, value(samples, "stowage_run_success", **labels))
        self.assertEqual(1, value(samples, "stowage_replicate_backups", kind="copied", **labels))
        self.assertEqual(0, value(samples, "stowage_replicate_backups", kind="failed", **labels))
        self.assertGreaterEqual(value(samples, "stowage_run_duration_seconds", **labels), 0)

    def test_list_writes_run_record(self):
        repo = self.file_repo()
        path = self.metrics_path("list")
        self.stowage("list", "--repo", repo, "--metrics-file", path)
        samples = self.read_metrics(path)
        labels = {"name": "", "command": "list"}
        self.assertEqual(1, value(samples, "stowage_run_success", **labels))
        self.assertNotIn(("stowage_verification_success", frozenset(labels.items())), samples)

    def test_usage_error_under_invalid_name_writes_nothing(self):
        repo = self.file_repo()
        path = self.metrics_path("usage")
        self.stowage("backup", "--repo", repo, "--name", "bad name", "--db",
                     self.cluster.conninfo("shop"), "--recipient", self.pub,
                     "--metrics-file", path, expect=2)
        self.assertFalse(os.path.exists(path))

        # A key file lost after a deploy is bad usage under a good name:
        # the failure is written.
        self.stowage("backup", "--repo", repo, "--name", "shop", "--db",
                     self.cluster.conninfo("shop"), "--recipient", self.pub + ".missing",
                     "--metrics-file", path, expect=2)
        samples = self.read_metrics(path)
        self.assertEqual(0, value(samples, "stowage_run_success", name="shop", command="backup"))

    def test_config_metrics_file_for_jobs_only(self):
        repo = self.file_repo()
        path = self.metrics_path("config")
        config = os.path.join(self.workdir, "metrics.conf")
        with open(config, "w") as handle:
            handle.write("[defaults]\nrepo = %s\nrecipient = %s\nkey = %s\nmetrics-file = %s\n"
                         % (repo, self.pub, self.key, path))
        os.chmod(config, 0o600)
        self.stowage("backup", "--config", config, "--name", "shop", "--db",
                     self.cluster.conninfo("shop"))
        with open(path) as handle:
            written = handle.read()
        self.assertIn('command="backup"', written)

        # Ad hoc commands leave the file of the scheduled jobs alone.
        self.stowage("list", "--config", config)
        self.stowage("verify", "--config", config, "--name", "shop", "latest")
        with open(path) as handle:
            self.assertEqual(written, handle.read())

        # Given as a flag, list adds its series and keeps the backup's.
        self.stowage("list", "--config", config, "--metrics-file", path)
        samples = self.read_metrics(path)
        self.assertEqual(1, value(samples, "stowage_run_success", name="", command="list"))
        self.assertEqual(1, value(samples, "stowage_run_success", name="shop", command="backup"))
        self.assertGreater(value(samples, "stowage_last_success_timestamp_seconds", name="shop",
                                 command="backup"), 0)


if __name__ == "__main__":
    unittest.main()
