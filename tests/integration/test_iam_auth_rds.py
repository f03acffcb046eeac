"""--db-iam-auth where stowage connects to RDS scratch instances (restore
--scratch rds, drill --scratch rds), and db-iam-auth in the configuration
file of stowage run.

moto restores the scratch instance at once and its endpoint leads nowhere,
so the verification connects through --connect-host to the stand-in server
of test_iam_auth, which records each password and relays the connection to
the test's PostgreSQL cluster."""

import json
import os
import unittest

from test_iam_auth import DB_USER, REGION, SECRET_ACCESS_KEY, IamAuthTestCase, StandInServer

from harness import assert_no_secret

RDS_REGION = "us-east-1"
DRILL_REGION = "eu-west-1"
INSTANCE = "iam-db1"


class ScratchRdsIamAuthTest(IamAuthTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.cluster.createdb("appdb")
        cls.cluster.psql("CREATE TABLE items AS SELECT g AS id FROM generate_series(1, 100) g",
                         db="appdb")

    def setUp(self):
        self.server = StandInServer(upstream_port=self.cluster.port)
        self.addCleanup(self.server.close)
        self.moto.reset()
        self.rds = self.moto.client("rds", region=RDS_REGION)
        self.rds.create_db_instance(DBInstanceIdentifier=INSTANCE, DBInstanceClass="db.t3.micro",
                                    Engine="postgres", AllocatedStorage=20,
                                    MasterUsername=DB_USER, MasterUserPassword="not-used-1")
        self.rds.create_db_snapshot(DBInstanceIdentifier=INSTANCE,
                                    DBSnapshotIdentifier="iam-snapshot-1")

    def rds_env(self, **extra):
        """moto's endpoint with the test's credentials, which sign the tokens, and the
        token region in AWS_REGION; RDS calls go to --rds-region."""
        env = self.moto.env(region=REGION)
        env.update(self.iam_env(**extra))
        return env

    def restore_rds(self, *extra, expect=0):
        return self.stowage("restore", "--scratch", "rds", "--from-snapshot", "iam-snapshot-1",
                            "--rds-region", RDS_REGION, "--connect-host",
                            "127.0.0.1:%d" % self.server.port, "--database", "appdb",
                            "--db-user", DB_USER, "--poll-interval", "1s", *extra,
                            env=self.rds_env(), expect=expect)

    def scratch_instances(self):
        return [instance for instance in self.rds.describe_db_instances()["DBInstances"]
                if instance["DBInstanceIdentifier"].startswith("stowage-scratch-")]

    def test_restore_scratch_rds_sends_tokens(self):
        result = self.restore_rds("--verify", "--db-iam-auth", "--keep")
        passwords = self.server.passwords()

        self.assertGreaterEqual(len(passwords), 1, result.stderr)
        for password in passwords:
            self.assert_valid_token(password, self.server.port)
        assert_no_secret([result.stdout, result.stderr], passwords + [SECRET_ACCESS_KEY])

        # The scratch instance was restored with IAM authentication on.
        scratch = self.scratch_instances()
        self.assertEqual(1, len(scratch))
        self.assertTrue(scratch[0]["IAMDatabaseAuthenticationEnabled"])

    def test_restore_scratch_rds_without_flag_sends_password(self):
        self.stowage("restore", "--scratch", "rds", "--from-snapshot", "iam-snapshot-1",
                     "--rds-region", RDS_REGION, "--connect-host",
                     "127.0.0.1:%d" % self.server.port, "--database", "appdb", "--db-user",
                     DB_USER, "--poll-interval", "1s", "--verify", "--keep",
                     env=self.rds_env(PGPASSWORD="plain-password"))
        self.assertEqual({"plain-password"}, set(self.server.passwords()))
        self.assertFalse(self.scratch_instances()[0]["IAMDatabaseAuthenticationEnabled"])

    def test_rejected_token_names_rds_iam(self):
        failing = StandInServer()
        self.addCleanup(failing.close)
        result = self.stowage("restore", "--scratch", "rds", "--from-snapshot", "iam-snapshot-1",
                              "--rds-region", RDS_REGION, "--connect-host",
                              "127.0.0.1:%d" % failing.port, "--database", "appdb",
                              "--db-user", DB_USER, "--poll-interval", "1s", "--verify",
                              "--db-iam-auth", env=self.rds_env(), expect=7)
        passwords = failing.passwords()
        self.assertGreaterEqual(len(passwords), 1, result.stderr)
        self.assert_valid_token(passwords[0], failing.port)
        self.assertIn("rds_iam", result.stderr)
        self.assertEqual([], self.scratch_instances())
        assert_no_secret([result.stdout, result.stderr], passwords + [SECRET_ACCESS_KEY])

    def test_drill_scratch_rds_sends_tokens(self):
        env = self.rds_env()
        self.stowage("snapshot", "create", "--instance", INSTANCE, "--rds-region", RDS_REGION,
                     "--poll-interval", "1s", env=env)
        primary, replica = self.file_repo(), self.file_repo()
        self.stowage("replicate", "--repo", primary, "--to", replica, "--snapshots",
                     "--rds-region", RDS_REGION, "--to-region", DRILL_REGION, "--instance",
                     INSTANCE, "--poll-interval", "1s", env=env)

        result = self.stowage("drill", "--repo", replica, "--scratch", "rds", "--rds-region",
                              DRILL_REGION, "--instance", INSTANCE, "--connect-host",
                              "127.0.0.1:%d" % self.server.port, "--db-user", DB_USER,
                              "--database", "appdb", "--poll-interval", "1s", "--db-iam-auth",
                              env=env)
        passwords = self.server.passwords()
        self.assertGreaterEqual(len(passwords), 1, result.stderr)
        for password in passwords:
            self.assert_valid_token(password, self.server.port)
        assert_no_secret([result.stdout, result.stderr], passwords + [SECRET_ACCESS_KEY])

    def test_local_drill_ignores_db_iam_auth(self):
        repo = self.file_repo()
        self.backup(repo, "appdb")
        self.stowage("drill", "--repo", repo, "--key", self.key, "--db-iam-auth",
                     env=self.iam_env())
        self.assertEqual([], self.server.passwords())

    def test_run_passes_db_iam_auth_to_backup(self):
        repo = self.file_repo()
        config = os.path.join(self.workdir, "iam-run.conf")
        with open(config, "w") as handle:
            handle.write("[defaults]\nrepo = %s\nrecipient = %s\ndb-iam-auth = true\n\n"
                         "[database appdb]\ndb = %s\n"
                         % (repo, self.pub, self.conninfo(self.server.port, "appdb")))
        os.chmod(config, 0o600)

        result = self.stowage("run", "--name", "appdb", "--json", "--config", config,
                              "--state-file", os.path.join(self.workdir, "iam-run-state.json"),
                              env=self.iam_env())
        report = json.loads(result.stdout)
        steps = {step["step"]: step for step in report["databases"][0]["steps"]}
        self.assertEqual("ok", steps["backup"]["outcome"], steps["backup"])
        passwords = self.server.passwords()
        self.assertGreaterEqual(len(passwords), 3, result.stdout)
        for password in passwords:
            self.assert_valid_token(password, self.server.port)
        self.assertEqual(1, len(self.list_json(repo)))
        assert_no_secret([result.stdout, result.stderr], passwords + [SECRET_ACCESS_KEY])


if __name__ == "__main__":
    unittest.main()
