"""End-to-end tests of the configuration file, `stowage config show` and
`stowage run`.

The fleet file names two databases on a PostgreSQL server that requires a
password, given in the file's connection strings. They are backed up into
file:// and moto S3 repositories. Other cases are a misconfigured database
and an interrupted run. No test output may contain the database password or
the moto secret key.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

from support import child_pids, fake_pg_bindir, redate_backup
from test_metrics import parse_strictly

from harness import MotoServer, PostgresCluster, run_stowage, wait_until
from harness.moto import SECRET_ACCESS_KEY
from harness.stowage import assert_no_secret, check_sanitizer_report, spawn_stowage

PASSWORD = "pw-" + os.urandom(8).hex()
SMALL_PART = 64 * 1024
SAMPLE = re.compile(r'^(\w+)\{name="([^"]*)",command="([^"]*)"\} (\S+)$', re.MULTILINE)


def kill_group(pid, group=True):
    """Send SIGKILL to the process group pid (or the process alone), if it still exists."""
    try:
        if group:
            os.killpg(pid, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


class RunTest(unittest.TestCase):
    """One password-protected cluster with databases orders and billing, and moto."""

    @classmethod
    def setUpClass(cls):
        cls.workdir = tempfile.mkdtemp(prefix="stowage-run-")
        os.chmod(cls.workdir, 0o755)
        cls.cluster = PostgresCluster(password=PASSWORD)
        cls.cluster.start()
        cls.moto = MotoServer(extra_env={"S3_UPLOAD_PART_MIN_SIZE": str(SMALL_PART)})
        cls.moto.start()
        for db in ("orders", "billing"):
            cls.cluster.createdb(db)
            cls.cluster.psql("CREATE TABLE items (id int PRIMARY KEY, label text);"
                             "INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 500) g;",
                             db=db)
        cls.key = os.path.join(cls.workdir, "backup.key")
        result = run_stowage(["keygen", "--out", cls.key])
        if result.returncode != 0:
            raise RuntimeError("keygen failed: %s" % result.stderr)
        cls.outputs = []

    @classmethod
    def tearDownClass(cls):
        cls.moto.stop()
        cls.cluster.stop()
        cls.cluster.cleanup()
        shutil.rmtree(cls.workdir, ignore_errors=True)

    def tearDown(self):
        assert_no_secret(self.outputs, [PASSWORD, SECRET_ACCESS_KEY])

    # Helpers ---------------------------------------------------------------

    def conninfo(self, db):
        return "host=127.0.0.1 port=%d user=postgres password=%s dbname=%s" % (
            self.cluster.port, PASSWORD, db)

    def new_dir(self, prefix):
        return tempfile.mkdtemp(prefix=prefix, dir=self.workdir)

    def write_config(self, text, mode=0o600):
        path = os.path.join(self.new_dir("config-"), "stowage.conf")
        with open(path, "w") as handle:
            handle.write(text)
        os.chmod(path, mode)
        return path

    def fleet(self, repo, state_file, extra_defaults="", databases=("orders", "billing")):
        text = ("[defaults]\n"
                "repo = %s\n"
                "recipient = %s.pub\n"
                "key = %s\n"
                "state-file = %s\n%s\n") % (repo, self.key, self.key, state_file, extra_defaults)
        for db in databases:
            text += "[database %s]\ndb = %s\n\n" % (db, self.conninfo(db))
        return text

    def stowage(self, *args, env=None, expect=0, timeout=600):
        result = run_stowage(list(args), env=env, timeout=timeout)
        self.outputs += [result.stdout, result.stderr]
        if expect is not None:
            self.assertEqual(expect, result.returncode,
                             "stowage %s exited %d\nstdout:\n%s\nstderr:\n%s"
                             % (args[0], result.returncode, result.stdout, result.stderr))
        return result

    def terminate(self, process):
        """Send SIGTERM to a run and return its (stdout, stderr) once it exits."""
        process.send_signal(signal.SIGTERM)
        try:
            stdout, stderr = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            raise
        self.outputs += [stdout, stderr]
        return stdout, stderr

    def run_with_stuck_pg_dump(self, tag, run_args, defaults, **fleet_options):
        """Start stowage run --all whose pg_dump ignores SIGTERM and SIGINT, so
        that the backup step's cleanup waits for it. Return (process, pg_dump
        pid) once pg_dump runs."""
        repo = "file://" + self.new_dir("repo-")
        marker = os.path.join(self.workdir, "pg_dump-started-%s" % tag)
        bindir = fake_pg_bindir(self.workdir, "stuck-bin-%s" % tag,
                                "trap '' TERM INT; echo $$ > %s; sleep 60; exec \"$REAL\" \"$@\""
                                % marker)
        state = os.path.join(self.workdir, "state-%s.json" % tag)
        config = self.write_config(self.fleet(repo, state, defaults, **fleet_options))
        process = spawn_stowage(["run", "--all", "--config", config] + run_args,
                                env={"STOWAGE_PG_BINDIR": bindir,
                                     "STOWAGE_CLEANUP_TIMEOUT": "60s"})
        self.addCleanup(lambda: process.poll() is None and os.killpg(process.pid, signal.SIGKILL))
        wait_until(lambda: os.path.exists(marker) and os.path.getsize(marker) > 0, 60,
                   description="pg_dump to start")
        with open(marker) as handle:
            pg_dump = int(handle.read())
        self.addCleanup(kill_group, pg_dump)
        return process, pg_dump

    def second_signal(self, process, signum, pg_dump):
        """Send signum to run again; return its (stdout, stderr) once it exits.

        The step left running keeps run's stderr open, so it and its
        pg_dump (pid and group pg_dump) are killed once run has exited."""
        process.send_signal(signum)
        started = time.monotonic()
        try:
            process.wait(timeout=30)
        finally:
            kill_group(process.pid)
            kill_group(pg_dump)
        self.assertLess(time.monotonic() - started, 10, "run waited for the step's cleanup")
        stdout, stderr = process.communicate(timeout=60)
        self.outputs += [stdout, stderr]
        return stdout, stderr

    def steps(self, report, name):
        for database in report["databases"]:
            if database["name"] == name:
                return {step["step"]: step for step in database["steps"]}
        self.fail("no database %s in the report" % name)

    def backup_names(self, repo, env=None):
        listing = json.loads(self.stowage("list", "--repo", repo, "--json", env=env).stdout)
        return sorted(item["name"] for item in listing)

    def metrics(self, path):
        with open(path) as handle:
            text = handle.read()
        self.outputs.append(text)
        parse_strictly(text)  # one HELP and TYPE per family, no duplicate series
        return {(metric, name, command): float(value)
                for metric, name, command, value in SAMPLE.findall(text)}

    # Tests -----------------------------------------------------------------

    def test_run_all_file_repository(self):
        repo = "file://" + self.new_dir("repo-")
        state = os.path.join(self.workdir, "state-all.json")
        prom = os.path.join(self.workdir, "run-all.prom")
        config = self.write_config(self.fleet(repo, state, "keep-daily = 7\nverify-every = 2\n"))

        result = self.stowage("run", "--all", "--json", "--config", config, "--metrics-file", prom)
        report = json.loads(result.stdout)
        self.assertEqual(0, report["exit_code"])
        for name in ("orders", "billing"):
            steps = self.steps(report, name)
            self.assertEqual("skipped", steps["snapshot"]["outcome"])
            self.assertEqual("ok", steps["backup"]["outcome"])
            self.assertEqual("skipped", steps["replicate"]["outcome"])
            self.assertEqual("ok", steps["expire"]["outcome"])
            self.assertEqual("ok", steps["verify"]["outcome"], steps["verify"])
        self.assertEqual(["billing", "orders"], self.backup_names(repo))

        samples = self.metrics(prom)
        for name in ("orders", "billing"):
            for command in ("backup", "expire", "verify", "run"):
                self.assertEqual(1, samples[("stowage_run_success", name, command)])
            self.assertGreater(samples[("stowage_last_success_timestamp_seconds", name, "backup")], 0)
            self.assertEqual(1, samples[("stowage_verification_success", name, "verify")])

        with open(state) as handle:
            recorded = json.load(handle)["databases"]
        self.assertEqual(0, recorded["orders"]["runs_since_verification"])
        self.assertTrue(recorded["orders"]["last_verification_passed"])

        # The second run is not due to verify (verify-every = 2).
        report = json.loads(self.stowage("run", "--name", "orders", "--json", "--config",
                                         config).stdout)
        verify = self.steps(report, "orders")["verify"]
        self.assertEqual("skipped", verify["outcome"])
        self.assertIn("not due", verify["detail"])

    def test_parallel_runs_share_state_and_metrics(self):
        # One timer per database: two runs at once, on one state file and
        # one textfile, each keep the other's entries and series.
        repo = "file://" + self.new_dir("repo-")
        state = os.path.join(self.workdir, "state-parallel.json")
        prom = os.path.join(self.workdir, "run-parallel.prom")
        config = self.write_config(self.fleet(repo, state, "verify-every = 0\n"))

        processes = [spawn_stowage(["run", "--name", name, "--config", config,
                                    "--metrics-file", prom])
                     for name in ("orders", "billing")]
        for process in processes:
            stdout, stderr = process.communicate(timeout=600)
            self.outputs += [stdout, stderr]
            check_sanitizer_report(stderr)
            self.assertEqual(0, process.returncode, stderr)

        with open(state) as handle:
            recorded = json.load(handle)["databases"]
        self.assertEqual(["billing", "orders"], sorted(recorded))
        samples = self.metrics(prom)
        for name in ("orders", "billing"):
            self.assertEqual(1, samples[("stowage_run_success", name, "run")], name)

        # A later run of one database keeps the other's series and entry.
        self.stowage("run", "--name", "orders", "--config", config, "--metrics-file", prom)
        samples = self.metrics(prom)
        self.assertEqual(1, samples[("stowage_run_success", "billing", "backup")])
        with open(state) as handle:
            recorded = json.load(handle)["databases"]
        self.assertEqual(1, recorded["billing"]["runs_since_verification"])
        self.assertEqual(2, recorded["orders"]["runs_since_verification"])

    def test_run_verifies_its_own_backup(self):
        repo = "file://" + self.new_dir("repo-")
        state = os.path.join(self.workdir, "state-own.json")
        config = self.write_config(self.fleet(repo, state, "verify-every = 1\n",
                                              databases=("orders",)))

        # A backup dated 30 days ahead, as from a host whose clock was wrong.
        self.stowage("backup", "--name", "orders", "--config", config)
        [future] = json.loads(self.stowage("list", "--repo", repo, "--json").stdout)
        ahead = time.gmtime(time.time() + 30 * 86400)
        redate_backup(repo, "orders", future["id"], time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", ahead))

        report = json.loads(self.stowage("run", "--name", "orders", "--json", "--config",
                                         config).stdout)
        verify = self.steps(report, "orders")["verify"]
        self.assertEqual("ok", verify["outcome"], verify)
        listing = {item["id"]: item
                   for item in json.loads(self.stowage("list", "--repo", repo, "--json").stdout)}
        [taken] = [backup_id for backup_id in listing if backup_id != future["id"]]
        self.assertIn("--verify %s" % taken, verify["detail"])
        self.assertEqual("passed", listing[taken]["last_verification"])
        self.assertIsNone(listing[future["id"]]["last_verification"])

    def test_run_missing_database_fails_alone(self):
        repo = "file://" + self.new_dir("repo-")
        state = os.path.join(self.workdir, "state-missing.json")
        prom = os.path.join(self.workdir, "run-missing.prom")
        config = self.write_config(self.fleet(repo, state, "verify-every = 0\n",
                                              databases=("nosuchdb", "orders")))

        result = self.stowage("run", "--all", "--json", "--config", config, "--metrics-file", prom,
                              expect=7)
        report = json.loads(result.stdout)
        self.assertEqual(7, report["exit_code"])
        missing = self.steps(report, "nosuchdb")
        self.assertEqual("failed", missing["backup"]["outcome"])
        self.assertEqual(7, missing["backup"]["exit_code"])
        self.assertEqual("skipped", missing["verify"]["outcome"])
        self.assertEqual("the backup failed", missing["verify"]["detail"])
        self.assertEqual("ok", self.steps(report, "orders")["backup"]["outcome"])
        self.assertEqual(["orders"], self.backup_names(repo))

        samples = self.metrics(prom)
        self.assertEqual(0, samples[("stowage_run_success", "nosuchdb", "backup")])
        self.assertEqual(0, samples[("stowage_run_success", "nosuchdb", "run")])
        self.assertEqual(1, samples[("stowage_run_success", "orders", "backup")])
        self.assertNotIn(("stowage_last_success_timestamp_seconds", "nosuchdb", "backup"), samples)

        # The table names the failed step too.
        result = self.stowage("run", "--all", "--config", config, expect=7)
        self.assertRegex(result.stdout, r"nosuchdb\s+backup\s+failed\s+7")
        self.assertRegex(result.stdout, r"orders\s+backup\s+ok\s+0")

    def verification_state(self, state):
        with open(state) as handle:
            return json.load(handle)["databases"]["orders"]

    def newest_verification(self, repo):
        listing = json.loads(self.stowage("list", "--repo", repo, "--json").stdout)
        return [item["last_verification"] for item in listing]

    def test_run_failed_verify_outside_backup(self):
        # A verify step that fails for a reason outside the backup (a
        # missing key file, SIGTERM) leaves last_verification_passed and the
        # catalog's records as they were.
        repo = "file://" + self.new_dir("repo-")
        state = os.path.join(self.workdir, "state-outside.json")
        config = self.write_config(self.fleet(repo, state, "verify-every = 1\n",
                                              databases=("orders",)))
        report = json.loads(self.stowage("run", "--name", "orders", "--json", "--config",
                                         config).stdout)
        self.assertEqual("ok", self.steps(report, "orders")["verify"]["outcome"])
        self.assertTrue(self.verification_state(state)["last_verification_passed"])

        missing_key = self.write_config(
            self.fleet(repo, state, "verify-every = 1\n", databases=("orders",)).replace(
                "key = %s\n" % self.key, "key = %s\n" % os.path.join(self.workdir, "no.key")))
        result = self.stowage("run", "--name", "orders", "--json", "--config", missing_key,
                              expect=None)
        verify = self.steps(json.loads(result.stdout), "orders")["verify"]
        self.assertEqual("failed", verify["outcome"])
        self.assertNotIn(verify["exit_code"], (0, 1, 3), result.stderr)
        self.assertIn("is not recorded", result.stderr)
        recorded = self.verification_state(state)
        self.assertTrue(recorded["last_verification_passed"])
        self.assertEqual(1, recorded["runs_since_verification"])
        self.assertEqual(["passed", None], self.newest_verification(repo))

        marker = os.path.join(self.workdir, "pg_restore-started")
        bindir = fake_pg_bindir(self.workdir, "slow-restore-bin",
                                'touch %s; sleep 30; exec "$REAL" "$@"' % marker,
                                program="pg_restore")
        process = spawn_stowage(["run", "--name", "orders", "--json", "--config", config],
                                env={"STOWAGE_PG_BINDIR": bindir})
        deadline = time.monotonic() + 120
        while not os.path.exists(marker) and time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertTrue(os.path.exists(marker), "pg_restore did not start")
        stdout, stderr = self.terminate(process)
        self.assertEqual(130, process.returncode, stderr)
        self.assertEqual("interrupted", self.steps(json.loads(stdout), "orders")["verify"]["outcome"])
        recorded = self.verification_state(state)
        self.assertTrue(recorded["last_verification_passed"])
        self.assertEqual(2, recorded["runs_since_verification"])
        self.assertEqual(["passed", None, None], self.newest_verification(repo))

    def test_run_to_s3(self):
        bucket = "stowage-run-%s" % os.urandom(4).hex()
        self.moto.create_bucket(bucket)
        repo = "s3://%s/fleet" % bucket
        env = self.moto.env()
        env["STOWAGE_MIN_PART_SIZE"] = str(SMALL_PART)
        state = os.path.join(self.workdir, "state-s3.json")
        config = self.write_config(self.fleet(repo, state, "verify-every = 0\n",
                                              databases=("orders",)))

        report = json.loads(self.stowage("run", "--name", "orders", "--json", "--config", config,
                                         env=env).stdout)
        self.assertEqual("ok", self.steps(report, "orders")["backup"]["outcome"])
        self.assertEqual(["orders"], self.backup_names(repo, env=env))

    def test_config_show_sources_and_redaction(self):
        repo = "file://" + self.new_dir("repo-")
        config = self.write_config(self.fleet(repo, "/nonexistent/state.json",
                                              "compress-level = 5\n"))
        env = {"STOWAGE_TRANSFERS": "3"}
        result = self.stowage("config", "show", "--name", "orders", "--json", "--config", config,
                              "--compress-level", "7", env=env)
        settings = {item["key"]: item for item in
                    json.loads(result.stdout)["databases"][0]["settings"]}
        self.assertEqual({"value": "7", "source": "flag"},
                         {k: settings["compress-level"][k] for k in ("value", "source")})
        self.assertEqual("env STOWAGE_TRANSFERS", settings["transfers"]["source"])
        self.assertEqual("%s:2" % config, settings["repo"]["source"])
        self.assertEqual("default", settings["compress-threads"]["source"])
        self.assertIn("password=*****", settings["db"]["value"])
        self.assertRegex(settings["db"]["source"], r":\d+$")

        text = self.stowage("config", "show", "--config", config).stdout
        self.assertIn("[database orders]", text)
        self.assertIn("[database billing]", text)

    def test_config_errors_long_names_and_values(self):
        long_name = "a" * 100
        config = self.write_config("[defaults]\nrepo = file:///tmp\n\n[database %s]\n"
                                   "db = dbname=x\n" % long_name)
        result = self.stowage("run", "--all", "--config", config, expect=2)
        self.assertIn("%s:4: invalid database name \"%s\"" % (config, long_name), result.stderr)

        config = self.write_config("[defaults]\nlog-format = xml\n")
        result = self.stowage("config", "show", "--config", config, expect=2)
        self.assertIn("%s:2: invalid value for log-format: \"xml\"" % config, result.stderr)

        config = self.write_config("[defaults]\n[database orders]\nstate-file = /tmp/s.json\n")
        result = self.stowage("config", "show", "--config", config, expect=2)
        self.assertIn("%s:3: key state-file is set in [database orders]" % config, result.stderr)

        config = self.write_config(self.fleet("file:///tmp", "/tmp/state"))
        started = time.monotonic()
        result = self.stowage("run", "--all", "--config", config, "--pushgateway",
                              "ftp://127.0.0.1:1/", expect=2)
        self.assertIn("invalid Pushgateway URL \"ftp://127.0.0.1:1/\"", result.stderr)
        self.assertNotIn("retrying", result.stderr)
        self.assertNotIn("starting the backup step", result.stderr)
        self.assertLess(time.monotonic() - started, 5)

    def test_unknown_name_rejected(self):
        config = self.write_config(self.fleet("file:///tmp", "/tmp/state"))
        for command in (["run"], ["config", "show"]):
            result = self.stowage(*command, "--name", "ordrs", "--config", config, expect=2)
            self.assertIn("no [database ordrs] section in %s" % config, result.stderr)
            self.assertIn("orders, billing", result.stderr)
            self.assertNotIn("starting the backup step", result.stderr)

        # A file with [defaults] only serves any name.
        single = self.write_config("[defaults]\nrepo = file:///tmp\n")
        self.stowage("config", "show", "--name", "ordrs", "--config", single)

        # backup goes on with [defaults] but warns, in the requested log format.
        repo = "file://" + self.new_dir("repo-")
        result = self.stowage("backup", "--name", "ordrs", "--config", config, "--repo", repo,
                              "--db", "host=127.0.0.1 port=1 dbname=ordrs", "--log-format",
                              "json", expect=7)
        messages = [json.loads(line)["message"] for line in result.stderr.splitlines()]
        self.assertTrue(any("no [database ordrs] section" in text for text in messages),
                        result.stderr)

    def test_replica_without_endpoint_warns(self):
        # Every S3 request of this run goes to a closed loopback port: the
        # primary's endpoint directly, anything else through the proxy
        # variables, so no request can reach AWS.
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            closed = "http://127.0.0.1:%d" % probe.getsockname()[1]
        env = self.moto.env()
        env.update({"AWS_ENDPOINT_URL": "", "AWS_ENDPOINT_URL_S3": "", "HTTP_PROXY": closed,
                    "HTTPS_PROXY": closed, "ALL_PROXY": closed, "http_proxy": closed,
                    "https_proxy": closed, "all_proxy": closed, "NO_PROXY": "", "no_proxy": ""})
        config = self.write_config("[defaults]\nrepo = s3://primary/fleet\nendpoint = %s\n"
                                   % closed)

        result = self.stowage("replicate", "--config", config, "--to", "s3://replica/fleet",
                              env=env, expect=None)
        self.assertNotEqual(0, result.returncode)
        self.assertIn("the repository s3://primary/fleet uses the S3 endpoint %s but the replica "
                      "s3://replica/fleet has none" % closed, result.stderr)
        self.assertIn("set to-endpoint (--to-endpoint)", result.stderr)

        # A replica with its own endpoint gets no warning. This one is the
        # primary itself, which fails before any request.
        result = self.stowage("replicate", "--config", config, "--to", "s3://primary/fleet",
                              "--to-endpoint", closed, env=env, expect=2)
        self.assertIn("is the primary repository", result.stderr)
        self.assertNotIn("has none", result.stderr)

    def test_run_json_logs_steps_too(self):
        repo = "file://" + self.new_dir("repo-")
        config = self.write_config(self.fleet(repo, os.path.join(self.workdir, "state-json.json"),
                                              "verify-every = 0\n", databases=("orders",)))
        result = self.stowage("run", "--name", "orders", "--config", config, "--log-format",
                              "json", "--log-level", "detail")
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        self.assertTrue(lines)
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                self.fail("a log line is not JSON: %r" % line)
            self.assertIn("level", record)
        # The backup step logs at detail level only when run passes its level on.
        self.assertTrue(any(json.loads(line)["level"] == "detail" for line in lines),
                        result.stderr)

    def test_cmdline_hides_passwords(self):
        repo = "file://" + self.new_dir("repo-")
        marker = os.path.join(self.workdir, "pg_dump-cmdline")
        bindir = fake_pg_bindir(self.workdir, "stall-bin",
                                'touch %s; sleep 30; exec "$REAL" "$@"' % marker)
        with socket.socket() as probe:  # a loopback port that nothing listens on
            probe.bind(("127.0.0.1", 0))
            closed_port = probe.getsockname()[1]
        push_password = "push-" + os.urandom(8).hex()
        process = spawn_stowage(["backup", "--repo", repo, "--name", "orders",
                                 "--db", self.conninfo("orders"), "--recipient", self.key + ".pub",
                                 "--pushgateway", "http://ops:%s@127.0.0.1:%d/"
                                 % (push_password, closed_port)],
                                env={"STOWAGE_PG_BINDIR": bindir})
        try:
            deadline = time.monotonic() + 60
            while not os.path.exists(marker) and time.monotonic() < deadline:
                time.sleep(0.1)
            self.assertTrue(os.path.exists(marker), "pg_dump did not start")
            with open("/proc/%d/cmdline" % process.pid, "rb") as handle:
                cmdline = handle.read()
        finally:
            process.send_signal(signal.SIGTERM)
            stdout, stderr = process.communicate(timeout=60)
            self.outputs += [stdout, stderr]
        assert_no_secret([stdout, stderr], [push_password])

        self.assertIn(b"password=*****", cmdline)
        self.assertIn(b"http://ops:*****@127.0.0.1", cmdline)
        for secret in (PASSWORD, push_password):
            fragments = [secret[i:i + 6].encode() for i in range(len(secret) - 5)]
            leaked = [i for i, fragment in enumerate(fragments) if fragment in cmdline]
            self.assertEqual([], leaked, "characters of a password remain in the cmdline")

    def test_config_errors(self):
        config = self.write_config("[defaults]\nrepo = file:///tmp\nkeep-dayly = 3\n")
        result = self.stowage("run", "--all", "--config", config, expect=2)
        self.assertIn("%s:3: unknown key \"keep-dayly\"" % config, result.stderr)

        config = self.write_config("[database orders]\ncompress-level = 40\n")
        result = self.stowage("backup", "--name", "orders", "--config", config, expect=2)
        self.assertIn("%s:2: invalid value for compress-level" % config, result.stderr)

        config = self.write_config(self.fleet("file:///tmp", "/tmp/state"), mode=0o644)
        result = self.stowage("config", "show", "--config", config, expect=2)
        self.assertIn("readable by others", result.stderr)

        result = self.stowage("list", "--config", os.path.join(self.workdir, "missing.conf"),
                              expect=2)
        self.assertIn("missing.conf", result.stderr)

    def test_killed_run_stops_its_step(self):
        # run is under nohup: a hangup of its process group changes
        # nothing, for run or its step, which inherits the ignored SIGHUP.
        # A SIGKILL reaches run alone, and its backup step gets the
        # parent-death signal from the kernel, cleans up and exits.
        repo = "file://" + self.new_dir("repo-")
        marker = os.path.join(self.workdir, "pg_dump-started-killed")
        bindir = fake_pg_bindir(self.workdir, "slow-bin-killed",
                                'touch %s; sleep 30; exec "$REAL" "$@"' % marker)
        config = self.write_config(self.fleet(repo, os.path.join(self.workdir, "state-kill.json"),
                                              "verify-every = 0\nkeep-daily = 7\n"))
        previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
        try:
            process = spawn_stowage(["run", "--all", "--config", config],
                                    env={"STOWAGE_PG_BINDIR": bindir})
        finally:
            signal.signal(signal.SIGHUP, previous)
        self.addCleanup(lambda: process.poll() is None and os.killpg(process.pid, signal.SIGKILL))
        wait_until(lambda: os.path.exists(marker), 60, description="pg_dump to start")
        steps = child_pids(process.pid)
        self.assertEqual(1, len(steps), steps)

        os.killpg(process.pid, signal.SIGHUP)
        time.sleep(0.5)
        self.assertIsNone(process.poll())
        self.assertTrue(os.path.exists("/proc/%d" % steps[0]))

        os.kill(process.pid, signal.SIGKILL)
        _, stderr = process.communicate()

        wait_until(lambda: not os.path.exists("/proc/%d" % steps[0]), 30,
                   description="the backup step to stop")
        self.assertIn("received the end of stowage run (SIGUSR2): stopping and cleaning up",
                      stderr)
        self.assertNotIn("while cleaning up:", stderr)
        self.assertNotIn("SIGHUP", stderr)
        self.assertEqual([], json.loads(self.stowage("list", "--repo", repo, "--json").stdout))
        leftovers = [name for _, _, names in os.walk(repo[len("file://"):]) for name in names
                     if ".tmp-" in name]
        self.assertEqual([], leftovers)

    def test_group_sigint_cleans_up_once(self):
        # Ctrl-C signals run's whole process group: the step gets SIGINT
        # directly and again through run, and takes the repeat for the
        # same signal, so its cleanup runs.
        repo = "file://" + self.new_dir("repo-")
        marker = os.path.join(self.workdir, "pg_dump-started-group")
        bindir = fake_pg_bindir(self.workdir, "slow-bin-group",
                                'touch %s; sleep 30; exec "$REAL" "$@"' % marker)
        config = self.write_config(self.fleet(repo, os.path.join(self.workdir, "state-group.json"),
                                              "verify-every = 0\nkeep-daily = 7\n"))
        process = spawn_stowage(["run", "--all", "--config", config],
                                env={"STOWAGE_PG_BINDIR": bindir})
        self.addCleanup(lambda: process.poll() is None and os.killpg(process.pid, signal.SIGKILL))
        wait_until(lambda: os.path.exists(marker), 60, description="pg_dump to start")

        os.killpg(process.pid, signal.SIGINT)
        _, stderr = process.communicate(timeout=60)

        self.assertEqual(130, process.returncode, stderr)
        self.assertNotIn("while cleaning up:", stderr)
        self.assertEqual([], json.loads(self.stowage("list", "--repo", repo, "--json").stdout))
        leftovers = [name for _, _, names in os.walk(repo[len("file://"):]) for name in names
                     if ".tmp-" in name]
        self.assertEqual([], leftovers)

    def test_run_interrupted(self):
        repo = "file://" + self.new_dir("repo-")
        marker = os.path.join(self.workdir, "pg_dump-started")
        bindir = fake_pg_bindir(self.workdir, "slow-bin",
                                'touch %s; sleep 30; exec "$REAL" "$@"' % marker)
        prom = os.path.join(self.workdir, "run-interrupted.prom")
        config = self.write_config(self.fleet(repo, os.path.join(self.workdir, "state-int.json"),
                                              "verify-every = 0\nkeep-daily = 7\n"))
        process = spawn_stowage(["run", "--all", "--json", "--config", config,
                                 "--metrics-file", prom],
                                env={"STOWAGE_PG_BINDIR": bindir})

        deadline = time.monotonic() + 60
        while not os.path.exists(marker) and time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertTrue(os.path.exists(marker), "pg_dump did not start")

        started = time.monotonic()
        stdout, stderr = self.terminate(process)
        check_sanitizer_report(stderr)
        self.assertEqual(130, process.returncode, stderr)
        self.assertLess(time.monotonic() - started, 25, "the run did not stop the step")

        report = json.loads(stdout)
        self.assertEqual(130, report["exit_code"])
        first = report["databases"][0]["name"]
        second = report["databases"][1]["name"]
        self.assertEqual("interrupted", self.steps(report, first)["backup"]["outcome"])
        for step in ("replicate", "expire", "verify"):
            self.assertEqual("not started", self.steps(report, first)[step]["outcome"], step)
        for step in ("snapshot", "backup", "replicate", "expire", "verify"):
            self.assertEqual("not started", self.steps(report, second)[step]["outcome"], step)
            self.assertIsNone(self.steps(report, second)[step]["exit_code"], step)
        self.assertEqual([], json.loads(self.stowage("list", "--repo", repo, "--json").stdout))

        # No database reports success: the interrupted one and the one never
        # started have run 0 and no last success time, and no step samples
        # for steps that did not run.
        samples = self.metrics(prom)
        self.assertEqual(0, samples[("stowage_run_success", first, "backup")])
        for name in (first, second):
            self.assertEqual(0, samples[("stowage_run_success", name, "run")], name)
            self.assertNotIn(("stowage_last_success_timestamp_seconds", name, "run"), samples)
        for step in ("snapshot", "backup", "expire", "verify"):
            self.assertNotIn(("stowage_run_success", second, step), samples)
        self.assertNotIn(("stowage_run_success", first, "expire"), samples)

    def test_second_signal_still_reports(self):
        # The backup step's pg_dump ignores SIGTERM, so the step's cleanup
        # waits for it. A second SIGTERM to run, later than a repeat,
        # stops run's wait, and run still prints the outcome and writes
        # the metrics.
        prom = os.path.join(self.workdir, "run-second-signal.prom")
        process, pg_dump = self.run_with_stuck_pg_dump(
            "second", ["--json", "--metrics-file", prom], "verify-every = 0\nkeep-daily = 7\n")
        steps = child_pids(process.pid)
        self.assertEqual(1, len(steps), steps)
        self.addCleanup(kill_group, steps[0], group=False)

        process.send_signal(signal.SIGTERM)
        time.sleep(2)
        self.assertIsNone(process.poll(), "run did not wait for the step's cleanup")
        stdout, stderr = self.second_signal(process, signal.SIGTERM, pg_dump)

        self.assertEqual(130, process.returncode, stderr)
        self.assertIn("received SIGTERM while cleaning up: not waiting for the cleanup", stderr)
        self.assertNotIn("exiting without cleanup", stderr)
        report = json.loads(stdout)
        self.assertEqual(130, report["exit_code"])
        first = report["databases"][0]["name"]
        second = report["databases"][1]["name"]
        self.assertEqual("interrupted", self.steps(report, first)["backup"]["outcome"])
        self.assertEqual(130, self.steps(report, first)["backup"]["exit_code"])
        self.assertEqual("skipped", self.steps(report, first)["snapshot"]["outcome"])
        for step in ("replicate", "expire", "verify"):
            self.assertEqual("not started", self.steps(report, first)[step]["outcome"], step)
        for step in ("snapshot", "backup", "replicate", "expire", "verify"):
            self.assertEqual("not started", self.steps(report, second)[step]["outcome"], step)

        samples = self.metrics(prom)
        self.assertEqual(0, samples[("stowage_run_success", first, "backup")])
        for name in (first, second):
            self.assertEqual(0, samples[("stowage_run_success", name, "run")], name)
        self.assertNotIn(("stowage_run_success", second, "backup"), samples)

    def test_second_signal_prints_table(self):
        # Without --json the outcome after a second signal is the table.
        process, pg_dump = self.run_with_stuck_pg_dump("third", [], "verify-every = 0\n",
                                                       databases=("orders",))

        process.send_signal(signal.SIGINT)
        time.sleep(2.5)  # past the second in which a repeat counts as the same signal
        stdout, stderr = self.second_signal(process, signal.SIGINT, pg_dump)

        self.assertEqual(130, process.returncode, stderr)
        rows = {line.split()[1]: line.split()[2] for line in stdout.splitlines()[1:]}
        self.assertEqual("interrupted", rows["backup"], stdout)
        self.assertEqual("not", rows["verify"], stdout)  # "not started"


if __name__ == "__main__":
    unittest.main()
