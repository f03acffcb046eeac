"""stowage replicate --object-lock-days: the replica's copies under S3 Object
Lock, in a second region.

moto 5.2.1 returns 500 Internal Server Error for GetObjectRetention (the
call is not implemented), so the tests read each object's retention with
HeadObject (x-amz-object-lock-mode, x-amz-object-lock-retain-until-date)."""

import datetime
import json
import os
import unittest

from support import SMALL_PART, StowageTestCase, object_keys

PRIMARY_REGION = "us-east-1"
REPLICA_REGION = "eu-west-1"
PREFIX = "db"
EXIT_USAGE = 2
EXIT_VERIFY = 3
DAY = datetime.timedelta(days=1)


def utc_now():
    return datetime.datetime.now(datetime.timezone.utc)


def parse_rfc3339(text):
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=datetime.timezone.utc)


class ReplicateObjectLockTest(StowageTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.cluster.createdb("app")
        # About 200 KB of dump, so the data object spans several 64 KiB parts.
        cls.cluster.psql("CREATE TABLE orders AS SELECT g AS id, md5(g::text) AS note "
                         "FROM generate_series(1, 6000) g", db="app")
        cls.signing_key = cls.key + ".sign"
        cls.trusted = cls.signing_key + ".pub"

    def setUp(self):
        self.replica_s3 = self.moto.client("s3", region=REPLICA_REGION)

    # Helpers ---------------------------------------------------------------

    def env(self, **extra):
        env = self.moto.env(region=PRIMARY_REGION)
        env["STOWAGE_MIN_PART_SIZE"] = str(SMALL_PART)
        env.update(extra)
        return env

    def replica_env(self):
        env = self.env()
        env.update(self.moto.env(region=REPLICA_REGION))
        return env

    def primary_repo(self):
        bucket = "primary-%s" % os.urandom(4).hex()
        self.moto.create_bucket(bucket, region=PRIMARY_REGION)
        return "s3://%s/%s" % (bucket, PREFIX)

    def replica_repo(self, locked=True):
        bucket = "replica-%s" % os.urandom(4).hex()
        extra = {"ObjectLockEnabledForBucket": True} if locked else {}
        self.moto.create_bucket(bucket, region=REPLICA_REGION, **extra)
        return "s3://%s/%s" % (bucket, PREFIX), bucket

    def backup_app(self, repo, *extra):
        result = self.backup(repo, "app", "--part-size", "64KiB", "--json", *extra,
                             env=self.env())
        return json.loads(result.stdout)["id"]

    def replicate(self, primary, replica, *extra, expect=0):
        result = self.stowage("replicate", "--repo", primary, "--to", replica, "--to-region",
                              REPLICA_REGION, "--json", *extra, env=self.env(), expect=expect)
        return (json.loads(result.stdout) if expect == 0 else None), result

    def backup_keys(self, bucket, backup_id):
        return {"manifest": "%s/backups/app/%s/manifest.json" % (PREFIX, backup_id),
                "data": [key for key in object_keys(self.moto, bucket)
                         if backup_id in key and key.endswith(".stow")]}

    def replica_manifest(self, bucket, backup_id):
        key = "%s/backups/app/%s/manifest.json" % (PREFIX, backup_id)
        return json.loads(self.replica_s3.get_object(Bucket=bucket, Key=key)["Body"].read())

    def new_key(self, label):
        path = os.path.join(self.workdir, "%s-%s.key" % (label, os.urandom(3).hex()))
        self.stowage("keygen", "--out", path)
        return path

    def manifest_bytes(self, bucket, backup_id, region=REPLICA_REGION):
        key = "%s/backups/app/%s/manifest.json" % (PREFIX, backup_id)
        client = self.moto.client("s3", region=region)
        return client.get_object(Bucket=bucket, Key=key)["Body"].read()

    def tamper_rows(self, bucket, backup_id):
        """Change one table's row count in the primary's manifest, after it was signed."""
        key = "%s/backups/app/%s/manifest.json" % (PREFIX, backup_id)
        client = self.moto.client("s3", region=PRIMARY_REGION)
        body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        self.assertIn(b'"rows": 6000', body)
        client.put_object(Bucket=bucket, Key=key,
                          Body=body.replace(b'"rows": 6000', b'"rows": 6001', 1))

    def assert_locked(self, bucket, key, mode, not_before):
        head = self.replica_s3.head_object(Bucket=bucket, Key=key)
        self.assertEqual(mode, head.get("ObjectLockMode"), key)
        self.assertIsNotNone(head.get("ObjectLockRetainUntilDate"), key)
        self.assertGreaterEqual(head["ObjectLockRetainUntilDate"], not_before, key)
        return head["ObjectLockRetainUntilDate"]

    # Tests -----------------------------------------------------------------

    def test_copies_and_manifest_locked(self):
        primary = self.primary_repo()
        replica, bucket = self.replica_repo()
        backup_id = self.backup_app(primary)
        started = utc_now().replace(microsecond=0)

        summary, _ = self.replicate(primary, replica, "--object-lock-days", "3")
        self.assertEqual(1, summary["copied"])
        self.assertEqual("server-side", summary["backups"][0]["method"])
        self.assertEqual("GOVERNANCE", summary["object_lock"]["mode"])
        until = parse_rfc3339(summary["object_lock"]["retain_until"])
        self.assertGreaterEqual(until, started + 3 * DAY)
        self.assertLess(until, started + 3 * DAY + datetime.timedelta(minutes=10))

        # Every copied object is locked until the date the summary names.
        keys = self.backup_keys(bucket, backup_id)
        self.assertEqual(1, len(keys["data"]))
        for key in keys["data"] + [keys["manifest"]]:
            self.assertEqual(until, self.assert_locked(bucket, key, "GOVERNANCE", until))

        # The replica's manifest records the replica's lock; the primary's has none.
        manifest = self.replica_manifest(bucket, backup_id)
        self.assertEqual({"mode": "GOVERNANCE", "retain_until": summary["object_lock"]
                          ["retain_until"]}, manifest["object_lock"])
        self.assertNotIn("object_lock", self.show_json(primary, backup_id, env=self.env()))
        listed = self.list_json(replica, env=self.replica_env())
        self.assertEqual(manifest["object_lock"], listed[0]["object_lock"])
        self.stowage("verify", "--repo", replica, backup_id, "--key", self.key,
                     env=self.replica_env())

        # A repair run takes the locked manifest for the primary's.
        again, _ = self.replicate(primary, replica, "--object-lock-days", "3", "--repair")
        self.assertEqual(1, again["present"])
        self.assertEqual(0, again["repaired"])

    def test_streamed_copy_in_compliance_mode(self):
        primary = self.primary_repo()
        replica, bucket = self.replica_repo()
        backup_id = self.backup_app(primary)

        summary, _ = self.replicate(primary, replica, "--object-lock-days", "1",
                                    "--object-lock-mode", "compliance", "--stream")
        self.assertEqual("streamed", summary["backups"][0]["method"])
        until = parse_rfc3339(summary["object_lock"]["retain_until"])
        keys = self.backup_keys(bucket, backup_id)
        for key in keys["data"] + [keys["manifest"]]:
            self.assert_locked(bucket, key, "COMPLIANCE", until)
        self.assertEqual("COMPLIANCE",
                         self.replica_manifest(bucket, backup_id)["object_lock"]["mode"])

    def test_replica_without_object_lock_fails_up_front(self):
        primary = self.primary_repo()
        replica, bucket = self.replica_repo(locked=False)
        self.backup_app(primary)

        _, result = self.replicate(primary, replica, "--object-lock-days", "3",
                                   expect=EXIT_USAGE)
        self.assertIn("bucket %s does not have S3 Object Lock enabled" % bucket, result.stderr)
        self.assertIn("--object-lock-enabled-for-bucket", result.stderr)
        self.assertEqual([], object_keys(self.moto, bucket))

    def test_file_replica_rejects_object_lock(self):
        primary = self.primary_repo()
        self.backup_app(primary)
        replica = self.file_repo()

        result = self.stowage("replicate", "--repo", primary, "--to", replica,
                              "--object-lock-days", "3", env=self.env(), expect=EXIT_USAGE)
        self.assertIn("only s3:// repositories support Object Lock", result.stderr)
        self.assertEqual([], os.listdir(replica[len("file://"):]))

    def test_mode_without_days_is_usage_error(self):
        primary = self.primary_repo()
        replica, bucket = self.replica_repo()

        result = self.stowage("replicate", "--repo", primary, "--to", replica,
                              "--object-lock-mode", "compliance", env=self.env(),
                              expect=EXIT_USAGE)
        self.assertIn("--object-lock-days is not", result.stderr)
        self.assertEqual([], object_keys(self.moto, bucket))

    def test_signed_manifest_is_signed_again(self):
        primary = self.primary_repo()
        replica, bucket = self.replica_repo()
        backup_id = self.backup_app(primary, "--signing-key", self.signing_key)

        # Without the key the copy would carry a broken signature: rejected first.
        _, result = self.replicate(primary, replica, "--object-lock-days", "2",
                                   expect=EXIT_USAGE)
        self.assertIn("manifest of backup %s is signed" % backup_id, result.stderr)
        self.assertIn("--signing-key", result.stderr)
        self.assertEqual([], object_keys(self.moto, bucket))

        summary, _ = self.replicate(primary, replica, "--object-lock-days", "2",
                                    "--signing-key", self.signing_key)
        self.assertEqual(1, summary["copied"])
        self.assertIn("signature", self.replica_manifest(bucket, backup_id))
        listed = self.list_json(replica, env=dict(self.replica_env(),
                                                  STOWAGE_TRUSTED_KEYS=self.trusted))
        self.assertEqual("valid", listed[0]["signature"]["status"])
        self.stowage("verify", "--repo", replica, backup_id, "--key", self.key,
                     "--trusted-key", self.trusted, env=self.replica_env())

    def test_tampered_manifest_not_signed_again(self):
        primary = self.primary_repo()
        primary_bucket = primary[len("s3://"):].split("/")[0]
        replica, bucket = self.replica_repo()
        escrow = self.new_key("escrow")
        good_id = self.backup_app(primary, "--signing-key", self.signing_key)
        tampered_id = self.backup_app(primary, "--signing-key", self.signing_key)
        self.tamper_rows(primary_bucket, tampered_id)
        result = self.stowage("verify", "--repo", primary, tampered_id, "--key", self.key,
                              "--trusted-key", self.trusted, env=self.env(), expect=EXIT_VERIFY)
        self.assertIn("changed after it was signed", result.stderr)

        # The escrow key cannot check the ops key's signatures: nothing is signed again.
        _, result = self.replicate(primary, replica, "--object-lock-days", "1", "--signing-key",
                                   escrow + ".sign", expect=EXIT_VERIFY)
        self.assertIn("not a trusted key", result.stderr)
        self.assertIn("--trusted-key", result.stderr)
        self.assertEqual([], self.list_json(replica, env=self.replica_env()))

        # With the ops key trusted, the good backup is copied and the other is not.
        _, result = self.replicate(primary, replica, "--object-lock-days", "1", "--signing-key",
                                   escrow + ".sign", "--trusted-key", self.trusted,
                                   expect=EXIT_VERIFY)
        summary = json.loads(result.stdout)
        actions = {entry["id"]: entry["action"] for entry in summary["backups"]}
        self.assertEqual({good_id: "copied", tampered_id: "failed"}, actions)
        self.assertIn("changed after it was signed", result.stderr)
        self.assertEqual([], self.backup_keys(bucket, tampered_id)["data"])
        self.assertEqual([good_id], [entry["id"] for entry in
                                     self.list_json(replica, env=self.replica_env())])
        self.stowage("verify", "--repo", replica, good_id, "--key", self.key,
                     "--trusted-key", escrow + ".sign.pub", env=self.replica_env())

        # A repair without trusted keys passes over the good copy, which it
        # does not rewrite, and still copies nothing of the other backup.
        _, result = self.replicate(primary, replica, "--object-lock-days", "1", "--signing-key",
                                   escrow + ".sign", "--repair", expect=EXIT_VERIFY)
        actions = {entry["id"]: entry["action"] for entry in json.loads(result.stdout)["backups"]}
        self.assertEqual({good_id: "present", tampered_id: "failed"}, actions)

    def test_unlocked_repair_keeps_locked_copy(self):
        primary = self.primary_repo()
        replica, bucket = self.replica_repo()
        escrow = self.new_key("escrow")
        backup_id = self.backup_app(primary, "--signing-key", self.signing_key)
        lock_options = ("--object-lock-days", "1", "--signing-key", escrow + ".sign",
                        "--trusted-key", self.trusted)
        self.replicate(primary, replica, *lock_options)
        locked = self.manifest_bytes(bucket, backup_id)

        # An equivalent manifest is left as it is, lock and signature included.
        summary, _ = self.replicate(primary, replica, "--repair")
        self.assertEqual(1, summary["present"])
        self.assertEqual(0, summary["repaired"])
        self.assertEqual(locked, self.manifest_bytes(bucket, backup_id))

        # A manifest that does need a repair is not replaced by an unlocked one.
        self.stowage("rekey", "--repo", primary, backup_id, "--key", self.key,
                     "--add-recipient", escrow + ".pub", "--signing-key", self.signing_key,
                     "--trusted-key", self.trusted, env=self.env())
        _, result = self.replicate(primary, replica, "--repair", "--trusted-key", self.trusted,
                                   expect=EXIT_USAGE)
        self.assertIn("S3 Object Lock", result.stderr)
        self.assertIn("--object-lock-days", result.stderr)
        self.assertEqual(locked, self.manifest_bytes(bucket, backup_id))

        # With the settings of the first run, the repair keeps the lock.
        summary, _ = self.replicate(primary, replica, "--repair", *lock_options)
        self.assertEqual(1, summary["repaired"])
        manifest = self.replica_manifest(bucket, backup_id)
        self.assertEqual("GOVERNANCE", manifest["object_lock"]["mode"])
        self.assertEqual(2, len(manifest["encryption"]["recipients"]))
        self.stowage("verify", "--repo", replica, backup_id, "--key", escrow,
                     "--trusted-key", escrow + ".sign.pub", env=self.replica_env())

    def test_config_keys_lock_replica(self):
        primary = self.primary_repo()
        replica, bucket = self.replica_repo()
        backup_id = self.backup_app(primary)
        config = os.path.join(self.workdir, "lock-%s.conf" % bucket)
        with open(config, "w") as handle:
            handle.write("[defaults]\nto = %s\nto-region = %s\nobject-lock-days = 2\n"
                         "object-lock-mode = compliance\n" % (replica, REPLICA_REGION))

        result = self.stowage("replicate", "--repo", primary, "--json", "--config", config,
                              env=self.env())
        summary = json.loads(result.stdout)
        self.assertEqual("COMPLIANCE", summary["object_lock"]["mode"])
        until = parse_rfc3339(summary["object_lock"]["retain_until"])
        self.assertGreaterEqual(until, utc_now() + 2 * DAY - datetime.timedelta(minutes=10))
        self.assert_locked(bucket, self.backup_keys(bucket, backup_id)["manifest"],
                           "COMPLIANCE", until)

    def test_config_invalid_lock_mode(self):
        primary = self.primary_repo()
        config = os.path.join(self.workdir, "bad-lock.conf")
        with open(config, "w") as handle:
            handle.write("[defaults]\nobject-lock-mode = forever\n")

        result = self.stowage("replicate", "--repo", primary, "--to", self.file_repo(),
                              "--config", config, env=self.env(), expect=EXIT_USAGE)
        self.assertIn('invalid value for object-lock-mode: "forever"', result.stderr)

    def test_leftover_object_is_locked_when_reused(self):
        primary = self.primary_repo()
        replica, bucket = self.replica_repo()
        backup_id = self.backup_app(primary)

        # A run without a lock stopped after its upload: the object is unlocked.
        key = self.show_json(primary, backup_id, env=self.env())["object"]["key"]
        primary_bucket = primary[len("s3://"):].split("/")[0]
        self.replica_s3.copy_object(Bucket=bucket, Key="%s/%s" % (PREFIX, key),
                                    CopySource={"Bucket": primary_bucket,
                                                "Key": "%s/%s" % (PREFIX, key)})
        head = self.replica_s3.head_object(Bucket=bucket, Key="%s/%s" % (PREFIX, key))
        self.assertIsNone(head.get("ObjectLockMode"))

        summary, _ = self.replicate(primary, replica, "--object-lock-days", "2")
        self.assertEqual(1, summary["reused"])
        until = parse_rfc3339(summary["object_lock"]["retain_until"])
        self.assert_locked(bucket, "%s/%s" % (PREFIX, key), "GOVERNANCE", until)


if __name__ == "__main__":
    unittest.main()
