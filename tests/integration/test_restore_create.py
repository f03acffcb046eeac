"""End-to-end tests of restore --create: the restore goes into a new database
under a temporary name, renamed to the requested name only when it
succeeded, and dropped when it failed or was interrupted."""

import json
import os
import signal
import subprocess
import time

from support import StowageTestCase

from harness import FaultProxy, run_stowage
from harness.faultproxy import STALL
from harness.stowage import spawn_stowage

HERE = os.path.dirname(os.path.abspath(__file__))
TEMPORARY_PREFIX = "stowage_restore_"


class RestoreCreateTest(StowageTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.cluster.createdb("create_source")
        cls.cluster.pgbench_init(scale=1, db="create_source")
        cls.cluster.createdb("create_hard")
        with open(os.path.join(HERE, "sql", "hard_cases.sql")) as handle:
            cls.cluster.psql(handle.read(), db="create_hard")
        cls.repo = "file://" + os.path.join(cls.workdir, "repo")
        os.makedirs(cls.repo[len("file://"):])
        cls.backup_id = cls.run_backup(cls.repo, "create_source")
        cls.hard_id = cls.run_backup(cls.repo, "create_hard")

    @classmethod
    def run_backup(cls, repo, db, env=None, *extra):
        result = run_stowage(["backup", "--repo", repo, "--db", cls.cluster.conninfo(db),
                              "--recipient", cls.pub, "--json"] + list(extra), env=env)
        if result.returncode != 0:
            raise RuntimeError("backup failed: %s" % result.stderr)
        return json.loads(result.stdout)["id"]

    def databases(self, prefix):
        rows = self.cluster.query("SELECT datname FROM pg_database WHERE datname LIKE '%s%%' "
                                  "ORDER BY 1" % prefix)
        return [name for (name,) in rows]

    def comment_of(self, db):
        rows = self.cluster.query("SELECT coalesce(shobj_description(oid, 'pg_database'), '') "
                                  "FROM pg_database WHERE datname = '%s'" % db)
        return rows[0][0]

    def assert_no_temporary_database(self):
        self.assertEqual([], self.databases(TEMPORARY_PREFIX))

    def spawn_stalled_restore(self, proxy, repo, backup_id, target, seconds):
        """Starts a restore --create whose ranged GETs from the second on wait seconds,
        and returns it with the temporary database's name once both happened."""
        rule = proxy.add_fault(STALL, method="GET", path=r"data\.stow", nth=2, count=None,
                               seconds=seconds)
        process = spawn_stowage(
            ["restore", "--repo", repo, backup_id, "--key", self.key, "--target",
             self.cluster.conninfo(target), "--create"],
            env=self.s3_env(AWS_ENDPOINT_URL=proxy.endpoint))
        self.addCleanup(self.kill_if_running, process)
        deadline = time.time() + 60
        while time.time() < deadline and not (rule.matched and self.databases(TEMPORARY_PREFIX)):
            time.sleep(0.05)
        temporary = self.databases(TEMPORARY_PREFIX)
        self.assertEqual(1, len(temporary))
        return process, temporary[0]

    @staticmethod
    def kill_if_running(process):
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()

    def s3_backup(self):
        repo = "s3://%s/db" % self.new_bucket()
        return repo, self.run_backup(repo, "create_source", self.s3_env(), "--part-size", "64KiB")

    def test_parallel_restore_appears_under_its_name(self):
        report = os.path.join(self.workdir, "create-report.json")
        result = self.stowage("restore", "--repo", self.repo, self.backup_id, "--key", self.key,
                              "--target", self.cluster.uri("created_uri"), "--create", "--verify",
                              "--report", report)
        self.assertIn("--jobs=2", result.stderr)
        self.assertIn("renamed the restored database %s" % TEMPORARY_PREFIX, result.stderr)
        self.assertEqual(self.row_counts("create_source"), self.row_counts("created_uri"))
        self.assert_no_temporary_database()
        self.assertEqual("", self.comment_of("created_uri"))
        with open(report) as handle:
            data = json.load(handle)
        self.assertEqual("created_uri", data["new_database"]["name"])
        self.assertTrue(data["new_database"]["temporary_name"].startswith(TEMPORARY_PREFIX))
        self.assertEqual("created_uri", data["target"]["database"])
        self.assertEqual(2, data["jobs"])
        self.assertTrue(data["verification"]["passed"])
        self.assertIn("rename", [step["step"] for step in data["steps"]])

    def test_single_transaction_restore_with_large_objects(self):
        self.stowage("restore", "--repo", self.repo, self.hard_id, "--key", self.key,
                     "--target", self.cluster.conninfo("created_hard"), "--create", "--jobs", "1")
        self.stowage("verify", "--repo", self.repo, self.hard_id, "--key", self.key,
                     "--against", self.cluster.conninfo("created_hard"))
        self.assert_no_temporary_database()

    def test_existing_database_is_refused(self):
        self.cluster.createdb("create_exists")
        self.cluster.psql("CREATE TABLE kept (id int); INSERT INTO kept VALUES (7)",
                          db="create_exists")
        result = self.stowage("restore", "--repo", self.repo, self.backup_id, "--key", self.key,
                              "--target", self.cluster.conninfo("create_exists"), "--create",
                              expect=2)
        self.assertIn("the database create_exists already exists", result.stderr)
        self.assertIn("without --create", result.stderr)
        self.assertEqual([("7",)], [tuple(row) for row in
                                    self.cluster.query("SELECT id FROM kept", db="create_exists")])
        self.assert_no_temporary_database()

    def test_tampered_backup_leaves_no_database(self):
        repo_dir = os.path.join(self.workdir, "tampered-repo")
        os.makedirs(repo_dir)
        repo = "file://" + repo_dir
        env = {"STOWAGE_MIN_PART_SIZE": "65536"}
        backup_id = self.run_backup(repo, "create_source", env, "--part-size", "64KiB")
        manifest = self.show_json(repo, backup_id)
        data_path = os.path.join(repo_dir, manifest["object"]["key"])
        part = manifest["object"]["parts"][-2]
        with open(data_path, "r+b") as handle:
            handle.seek(part["offset"] + 10)
            byte = handle.read(1)
            handle.seek(part["offset"] + 10)
            handle.write(bytes([byte[0] ^ 0xFF]))
        result = self.stowage("restore", "--repo", repo, backup_id, "--key", self.key,
                              "--target", self.cluster.conninfo("create_tampered"), "--create",
                              expect=3)
        self.assertIn("part %d" % part["number"], result.stderr)
        self.assertIn("dropped the temporary database %s" % TEMPORARY_PREFIX, result.stderr)
        self.assertNotIn("partly restored", result.stderr)
        self.assertEqual([], self.databases("create_tampered"))
        self.assert_no_temporary_database()

    def test_sigterm_drops_the_new_database(self):
        repo, backup_id = self.s3_backup()
        with FaultProxy(self.moto) as proxy:
            process, temporary = self.spawn_stalled_restore(proxy, repo, backup_id,
                                                            "create_sigterm", 30)
            comment = self.comment_of(temporary)
            self.assertIn(backup_id, comment)
            self.assertIn("create_sigterm", comment)
            self.assertEqual([], self.databases("create_sigterm"))
            process.send_signal(signal.SIGTERM)
            stdout, stderr = process.communicate(timeout=60)
        self.assertEqual(130, process.returncode, stderr)
        self.assertIn("dropped the temporary database %s" % temporary, stderr)
        self.assertEqual([], self.databases("create_sigterm"))
        self.assert_no_temporary_database()

    def test_session_in_temporary_database_is_ended(self):
        # Other roles cannot connect at all; a session of the restoring
        # role (here a superuser's) is ended before the rename.
        self.cluster.psql("CREATE ROLE create_stranger LOGIN")
        repo, backup_id = self.s3_backup()
        with FaultProxy(self.moto) as proxy:
            process, temporary = self.spawn_stalled_restore(proxy, repo, backup_id,
                                                            "create_visited", 3)
            stranger = self.cluster.run_tool(
                "psql", "-X", "-d", self.cluster.conninfo(temporary, user="create_stranger"),
                "-c", "SELECT 1", check=False)
            self.assertNotEqual(0, stranger.returncode)
            self.assertIn("permission denied for database", stranger.stderr)
            visitor = subprocess.Popen(
                [self.cluster.tool("psql"), "-X", "-q", "-d", self.cluster.conninfo(temporary),
                 "-c", "SELECT pg_sleep(120)"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                env=self.cluster.client_environment())
            self.addCleanup(self.kill_if_running, visitor)
            stdout, stderr = process.communicate(timeout=120)
        self.assertEqual(0, process.returncode, stderr)
        self.assertIn("ended 1 session(s) connected to the temporary database %s" % temporary,
                      stderr)
        self.assertNotEqual(0, visitor.wait(timeout=30))
        self.assertEqual(self.row_counts("create_source"), self.row_counts("create_visited"))
        self.assertEqual("", self.comment_of("create_visited"))
        rows = self.cluster.query("SELECT datallowconn FROM pg_database "
                                  "WHERE datname = 'create_visited'")
        self.assertEqual("t", rows[0][0])

    def test_killed_restore_leftover_is_named_next_time(self):
        repo, backup_id = self.s3_backup()
        with FaultProxy(self.moto) as proxy:
            process, temporary = self.spawn_stalled_restore(proxy, repo, backup_id,
                                                            "create_killed", 30)
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
        self.addCleanup(self.cluster.psql, "DROP DATABASE IF EXISTS %s WITH (FORCE)" % temporary)
        self.assertEqual([temporary], self.databases(TEMPORARY_PREFIX))
        result = self.stowage("restore", "--repo", repo, backup_id, "--key", self.key,
                              "--target", self.cluster.conninfo("create_killed"), "--create",
                              env=self.s3_env())
        self.assertIn("the database %s is left from an earlier restore --create of "
                      "create_killed" % temporary, result.stderr)
        self.assertIn("DROP DATABASE %s" % temporary, result.stderr)
        self.assertEqual(self.row_counts("create_source"), self.row_counts("create_killed"))

    def test_name_taken_during_restore(self):
        repo, backup_id = self.s3_backup()
        with FaultProxy(self.moto) as proxy:
            process, temporary = self.spawn_stalled_restore(proxy, repo, backup_id,
                                                            "create_taken", 3)
            self.cluster.createdb("create_taken")
            self.cluster.psql("CREATE TABLE theirs (id int)", db="create_taken")
            stdout, stderr = process.communicate(timeout=120)
        self.assertEqual(2, process.returncode, stderr)
        self.assertIn("a database named create_taken was created while the restore ran", stderr)
        self.assertIn("dropped the temporary database %s" % temporary, stderr)
        self.assertEqual(["theirs"], [row[0] for row in self.cluster.query(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'", db="create_taken")])
        self.assert_no_temporary_database()

    def edit_manifest_source(self, repo, name, backup_id, **source):
        """Sets (or with None removes) fields of the manifest's source object."""
        path = os.path.join(repo[len("file://"):], "backups", name, backup_id, "manifest.json")
        with open(path) as handle:
            manifest = json.load(handle)
        for key, value in source.items():
            if value is None:
                manifest["source"].pop(key, None)
            else:
                manifest["source"][key] = value
        with open(path, "w") as handle:
            json.dump(manifest, handle)

    def locale_of(self, db):
        rows = self.cluster.query("SELECT pg_encoding_to_char(encoding), datcollate, datctype "
                                  "FROM pg_database WHERE datname = '%s'" % db)
        return tuple(rows[0])

    def back_up_new_database(self, name, locale_options):
        """Creates a UTF-8 database with a table t of three words and backs it
        up; returns the repository, the backup id and the manifest's source."""
        self.cluster.psql("CREATE DATABASE %s TEMPLATE template0 ENCODING 'UTF8' %s"
                          % (name, locale_options))
        self.cluster.psql("CREATE TABLE t (v text); INSERT INTO t VALUES ('b'), ('B'), ('a')",
                          db=name)
        repo = self.file_repo()
        backup_id = self.run_backup(repo, name)
        return repo, backup_id, self.show_json(repo, backup_id)["source"]

    def test_source_locale_is_kept(self):
        repo, backup_id, source = self.back_up_new_database("create_c_locale",
                                                            "LC_COLLATE 'C' LC_CTYPE 'C'")
        self.assertEqual("C", source["lc_collate"])
        self.assertEqual("C", source["lc_ctype"])
        result = self.stowage("restore", "--repo", repo, backup_id, "--key", self.key,
                              "--target", self.cluster.conninfo("created_c_locale"), "--create")
        self.assertNotIn("rejected", result.stderr)
        self.assertNotIn("does not record", result.stderr)
        self.assertEqual(("UTF8", "C", "C"), self.locale_of("created_c_locale"))

        # A locale the server lacks, and a manifest that records none.
        self.edit_manifest_source(repo, "create_c_locale", backup_id, lc_collate="xx_XX.UTF-8",
                                  lc_ctype="xx_XX.UTF-8")
        result = self.stowage("restore", "--repo", repo, backup_id, "--key", self.key,
                              "--target", self.cluster.conninfo("created_no_locale"), "--create")
        self.assertIn("created the database with the server's default locale, because the "
                      "server rejected the source database's locale", result.stderr)
        self.assertIn("xx_XX.UTF-8", result.stderr)
        self.assertEqual(("UTF8", "C.UTF-8", "C.UTF-8"), self.locale_of("created_no_locale"))
        self.edit_manifest_source(repo, "create_c_locale", backup_id, lc_collate=None,
                                  lc_ctype=None, locale_provider=None)
        result = self.stowage("restore", "--repo", repo, backup_id, "--key", self.key,
                              "--target", self.cluster.conninfo("created_old_manifest"),
                              "--create")
        self.assertIn("does not record the database's locale", result.stderr)
        self.assertEqual(("UTF8", "C.UTF-8", "C.UTF-8"), self.locale_of("created_old_manifest"))

    def test_icu_locale_is_kept(self):
        repo, backup_id, source = self.back_up_new_database(
            "create_icu", "LOCALE_PROVIDER icu ICU_LOCALE 'en-US'")
        self.assertEqual("icu", source["locale_provider"])
        self.assertEqual("en-US", source["locale"])
        self.assertNotIn("icu_rules", source)

        result = self.stowage("restore", "--repo", repo, backup_id, "--key", self.key,
                              "--target", self.cluster.conninfo("created_icu"), "--create")
        self.assertNotIn("rejected", result.stderr)
        self.assertEqual([("i", "en-US")], self.provider_of("created_icu"))
        # ICU's en-US puts lower case first; the C locale would sort B first.
        self.assertEqual([("a",), ("b",), ("B",)],
                         [tuple(row) for row in self.cluster.query("SELECT v FROM t ORDER BY v",
                                                                   db="created_icu")])

    def test_icu_fallbacks(self):
        repo, backup_id, _ = self.back_up_new_database(
            "create_icu_fallback", "LOCALE_PROVIDER icu ICU_LOCALE 'de-DE'")

        def restore(name, **source):
            self.edit_manifest_source(repo, "create_icu_fallback", backup_id, **source)
            return self.stowage("restore", "--repo", repo, backup_id, "--key", self.key,
                                "--target", self.cluster.conninfo(name), "--create").stderr

        # A libc locale the server lacks: ICU stays, with the server's default.
        stderr = restore("created_icu_default", lc_collate="xx_XX.UTF-8",
                         lc_ctype="xx_XX.UTF-8")
        self.assertIn("created the database with the source database's icu locale de-DE with "
                      "the server's default LC_COLLATE and LC_CTYPE, because the server "
                      "rejected the source database's locale (icu locale de-DE, LC_COLLATE "
                      "xx_XX.UTF-8", stderr)
        self.assertEqual([("i", "de-DE")], self.provider_of("created_icu_default"))

        # An ICU locale that ICU cannot open (XX000 on PostgreSQL 15).
        stderr = restore("created_icu_unopened", lc_collate="C.UTF-8", lc_ctype="C.UTF-8",
                         locale="x" * 191)
        self.assertIn("created the database with the source database's LC_COLLATE C.UTF-8 and "
                      "LC_CTYPE C.UTF-8 without its icu locale", stderr)
        self.assertEqual([("c", None)], self.provider_of("created_icu_unopened"))

        # The builtin provider of PostgreSQL 17 is not tried on 15.
        stderr = restore("created_builtin", locale_provider="builtin", locale="C.UTF-8")
        self.assertIn("the server runs PostgreSQL 15, which lacks the builtin locale provider "
                      "(PostgreSQL 17 on): the new database gets a libc locale instead of "
                      "builtin locale C.UTF-8", stderr)
        self.assertEqual([("c", None)], self.provider_of("created_builtin"))

        # Values that cannot be a locale are named and left out.
        stderr = restore("created_bad_fields", locale_provider="klingon", locale=["de-DE"],
                         lc_collate="C.UTF-8\nERROR fake line")
        self.assertIn('ignoring source.locale_provider "klingon" in the manifest of backup %s: '
                      "it is none of libc, icu and builtin" % backup_id, stderr)
        self.assertIn("ignoring source.locale in the manifest of backup %s: it is not a string"
                      % backup_id, stderr)
        self.assertIn("ignoring source.lc_collate in the manifest of backup %s: it contains "
                      "control characters" % backup_id, stderr)
        self.assertIn("has no usable pair of lc_collate and lc_ctype", stderr)
        self.assertNotIn("\nERROR fake line", stderr)
        self.assertEqual([("c", None)], self.provider_of("created_bad_fields"))
        stderr = restore("created_no_icu_locale", locale_provider="icu", locale=None,
                         lc_collate="C.UTF-8")
        self.assertIn("has the icu locale provider without a usable locale: the new database "
                      "gets a libc locale", stderr)
        self.assertEqual([("c", None)], self.provider_of("created_no_icu_locale"))

    def provider_of(self, db):
        return [tuple(row) for row in self.cluster.query(
            "SELECT datlocprovider, daticulocale FROM pg_database WHERE datname = '%s'" % db)]

    def test_latin1_backup_gets_c_locale(self):
        # The manifest names a locale that exists but does not suit LATIN1,
        # as a backup from a server with a UTF-8 default locale would.
        self.cluster.psql("CREATE DATABASE create_latin TEMPLATE template0 ENCODING 'LATIN1' "
                          "LC_COLLATE 'C' LC_CTYPE 'C'")
        self.cluster.psql("CREATE TABLE words (word text); INSERT INTO words VALUES ('caf\u00e9')",
                          db="create_latin")
        repo = self.file_repo()
        backup_id = self.run_backup(repo, "create_latin")
        self.edit_manifest_source(repo, "create_latin", backup_id, lc_collate="C.UTF-8",
                                  lc_ctype="C.UTF-8")
        result = self.stowage("restore", "--repo", repo, backup_id, "--key", self.key,
                              "--target", self.cluster.conninfo("created_latin"), "--create")
        self.assertIn("created the database with the C locale", result.stderr)
        self.assertEqual(("LATIN1", "C", "C"), self.locale_of("created_latin"))
        self.assertEqual([("caf\u00e9",)], [tuple(row) for row in
                                       self.cluster.query("SELECT word FROM words",
                                                          db="created_latin")])

    def test_bad_names_are_rejected(self):
        common = ["restore", "--repo", self.repo, self.backup_id, "--key", self.key, "--create"]
        long_name = "n" * 64
        result = self.stowage(*common, "--target", self.cluster.conninfo(long_name), expect=2)
        self.assertIn('the database name "%s" is 64 bytes long' % long_name, result.stderr)
        result = self.stowage(*common, "--target", "service=nosuch", expect=2)
        self.assertIn("needs the name of the new database in --target besides the service",
                      result.stderr)
        self.assert_no_temporary_database()

    def test_role_with_createdb_restores(self):
        role = "create_owner"
        self.cluster.psql("CREATE ROLE %s LOGIN CREATEDB" % role)
        self.stowage("restore", "--repo", self.repo, self.backup_id, "--key", self.key,
                     "--target", self.cluster.conninfo("create_by_owner", user=role), "--create",
                     "--no-owner")
        rows = self.cluster.query("SELECT pg_get_userbyid(datdba), datacl::text FROM pg_database "
                                  "WHERE datname = 'create_by_owner'")
        self.assertEqual(role, rows[0][0])
        self.assertIn("=Tc/%s" % role, rows[0][1])
        self.assertEqual(self.row_counts("create_source"), self.row_counts("create_by_owner"))
        self.assert_no_temporary_database()

    def test_role_without_createdb_is_told_why(self):
        role = "create_nocreatedb"
        self.cluster.psql("CREATE ROLE %s LOGIN" % role)
        result = self.stowage("restore", "--repo", self.repo, self.backup_id, "--key", self.key,
                              "--target", self.cluster.conninfo("create_denied", user=role),
                              "--create", expect=7)
        self.assertIn("permission denied to create database", result.stderr)
        self.assertIn("CREATEDB", result.stderr)
        self.assert_no_temporary_database()

    def test_missing_target_suggests_create(self):
        result = self.stowage("restore", "--repo", self.repo, self.backup_id, "--key", self.key,
                              "--target", self.cluster.conninfo("create_missing"), expect=7)
        self.assertIn('database "create_missing" does not exist', result.stderr)
        self.assertIn("pass --create", result.stderr)

    def test_names_with_control_characters_stay_on_their_line(self):
        # A database name with a newline and an escape sequence, as a
        # connection string can carry: the summary on stdout, the hint and
        # the log keep it on one line, without the escape.
        self.cluster.psql('CREATE DATABASE "ev\n2026 error planted\x1b[31m"')
        target = self.cluster.conninfo("'ev\n2026 error planted\x1b[31m'")
        result = self.stowage("restore", "--repo", self.repo, self.backup_id, "--key", self.key,
                              "--target", target, "--create", expect=2)
        self.assertIn("ev 2026 error planted?[31m", result.stdout)
        for output in (result.stdout, result.stderr):
            self.assertNotIn("\x1b", output)
            self.assertFalse([line for line in output.splitlines()
                              if line.startswith("2026 error")], output)

    def test_unreachable_server_is_one_error(self):
        result = self.stowage("restore", "--repo", self.repo, self.backup_id, "--key", self.key,
                              "--target", "host=127.0.0.1 port=1 dbname=create_nowhere",
                              "--create", expect=7)
        self.assertIn("connecting to the database failed", result.stderr)
        self.assertNotIn("template1", result.stderr)

    def test_missing_file_repository_is_named(self):
        missing = os.path.join(self.workdir, "no-such-repo")
        for command in (["restore", "--repo", "file://" + missing, "latest", "--key", self.key,
                         "--target", self.cluster.conninfo("create_norepo"), "--create"],
                        ["verify", "--repo", "file://" + missing, "latest", "--key", self.key]):
            with self.subTest(command[0]):
                result = self.stowage(*command, expect=6)
                self.assertIn("repository directory %s does not exist" % missing, result.stderr)
                self.assertNotIn("no complete backup", result.stderr)
        self.assertEqual([], self.databases("create_norepo"))

    def test_conflicting_options_are_rejected(self):
        common = ["restore", "--repo", self.repo, self.backup_id, "--key", self.key, "--create"]
        result = self.stowage(*common, "--target", self.cluster.conninfo("create_flags"),
                              "--clean", expect=2)
        self.assertIn("--clean", result.stderr)
        result = self.stowage(*common, "--scratch", "local", expect=2)
        self.assertIn("--create applies to --target", result.stderr)
        self.assertEqual([], self.databases("create_flags"))
