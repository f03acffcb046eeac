"""Backups under S3 Object Lock, and expire around locked backups.

moto 5.2.1 returns 500 Internal Server Error for GetObjectRetention (the
call is not implemented), so the tests read each object's retention with
HeadObject (x-amz-object-lock-mode, x-amz-object-lock-retain-until-date).
"""

import datetime
import json
import os
import time
import unittest

import botocore.exceptions

from support import SMALL_PART, StowageTestCase, object_keys, open_uploads

DAY = datetime.timedelta(days=1)


def utc_now():
    return datetime.datetime.now(datetime.timezone.utc)


def rfc3339(when):
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


class ObjectLockTest(StowageTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.cluster.createdb("shop")
        # About 300 KB of dump, so the data object spans several 64 KiB parts.
        cls.cluster.psql("CREATE TABLE orders AS SELECT g AS id, md5(g::text) AS note "
                         "FROM generate_series(1, 8000) g", db="shop")

    def setUp(self):
        self.s3 = self.moto.client("s3", retries={"max_attempts": 0, "mode": "standard"})

    # Helpers ---------------------------------------------------------------

    def locked_bucket(self):
        name = "locked-%s" % os.urandom(4).hex()
        self.s3.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
        return name

    def locked_backup(self, repo, *extra, env=None):
        self.backup(repo, "shop", "--part-size", str(SMALL_PART), *extra,
                    env=env or self.s3_env())
        return self.list_json(repo, env=self.s3_env())[-1]["id"]

    def backup_keys(self, bucket, backup_id):
        return sorted(key for key in object_keys(self.moto, bucket) if backup_id in key)

    def retention(self, bucket, key):
        head = self.s3.head_object(Bucket=bucket, Key=key)
        return head.get("ObjectLockMode"), head.get("ObjectLockRetainUntilDate")

    def versions(self, bucket, prefix):
        listing = self.s3.list_object_versions(Bucket=bucket, Prefix=prefix)
        return listing.get("Versions", []) + listing.get("DeleteMarkers", [])

    def shorten_retention(self, bucket, backup_id, until):
        """Moves every version of a backup's locked objects to until, and
        rewrites the manifest's object_lock member to match, as if the
        backup had been taken long ago."""
        for version in self.versions(bucket, "x/backups/shop/%s/" % backup_id):
            self.s3.put_object_retention(
                Bucket=bucket, Key=version["Key"], VersionId=version["VersionId"],
                BypassGovernanceRetention=True,
                Retention={"Mode": "GOVERNANCE", "RetainUntilDate": until})
        key = "x/backups/shop/%s/manifest.json" % backup_id
        manifest = json.loads(self.s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        manifest["object_lock"]["retain_until"] = rfc3339(until)
        self.s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(manifest, indent=2),
                           ObjectLockMode="GOVERNANCE", ObjectLockRetainUntilDate=until)

    # Backup ----------------------------------------------------------------

    def test_backup_locks_every_object(self):
        bucket = self.locked_bucket()
        repo = "s3://%s/x" % bucket
        before = utc_now().replace(microsecond=0)
        backup_id = self.locked_backup(repo, "--object-lock-days", "1")
        after = utc_now()

        keys = self.backup_keys(bucket, backup_id)
        self.assertEqual(["x/backups/shop/%s/data.stow" % backup_id,
                          "x/backups/shop/%s/manifest.json" % backup_id], keys)
        manifest = self.show_json(repo, backup_id, env=self.s3_env())
        self.assertGreater(len(manifest["object"]["parts"]), 1)
        self.assertEqual("GOVERNANCE", manifest["object_lock"]["mode"])
        recorded = datetime.datetime.strptime(manifest["object_lock"]["retain_until"],
                                              "%Y-%m-%dT%H:%M:%SZ").replace(
                                                  tzinfo=datetime.timezone.utc)
        self.assertGreaterEqual(recorded, before + DAY)
        self.assertLessEqual(recorded, after + DAY)
        for key in keys:
            mode, until = self.retention(bucket, key)
            self.assertEqual("GOVERNANCE", mode, key)
            self.assertEqual(recorded, until.replace(microsecond=0), key)

        listed = self.list_json(repo, env=self.s3_env())[0]
        self.assertEqual(manifest["object_lock"], listed["object_lock"])
        shown = self.stowage("show", "--repo", repo, backup_id, env=self.s3_env()).stdout
        self.assertIn("object lock GOVERNANCE until %s" % manifest["object_lock"]["retain_until"],
                      shown)

    def test_locked_version_cannot_be_deleted(self):
        bucket = self.locked_bucket()
        repo = "s3://%s/x" % bucket
        backup_id = self.locked_backup(repo, "--object-lock-days", "1")

        for version in self.versions(bucket, "x/backups/shop/%s/" % backup_id):
            with self.assertRaises(botocore.exceptions.ClientError) as caught:
                self.s3.delete_object(Bucket=bucket, Key=version["Key"],
                                      VersionId=version["VersionId"])
            self.assertEqual("AccessDenied", caught.exception.response["Error"]["Code"])
        self.stowage("verify", "--repo", repo, backup_id, "--key", self.key, env=self.s3_env())

    def test_compliance_mode_from_environment(self):
        bucket = self.locked_bucket()
        repo = "s3://%s/x" % bucket
        env = self.s3_env(STOWAGE_OBJECT_LOCK_DAYS="2", STOWAGE_OBJECT_LOCK_MODE="compliance")
        backup_id = self.locked_backup(repo, env=env)

        for key in self.backup_keys(bucket, backup_id):
            mode, until = self.retention(bucket, key)
            self.assertEqual("COMPLIANCE", mode, key)
            self.assertGreater(until, utc_now() + DAY)
        manifest = self.show_json(repo, backup_id, env=self.s3_env())
        self.assertEqual("COMPLIANCE", manifest["object_lock"]["mode"])

    def test_bucket_without_object_lock_fails_up_front(self):
        bucket = self.new_bucket()
        repo = "s3://%s/x" % bucket
        result = self.backup(repo, "shop", "--object-lock-days", "1", env=self.s3_env(),
                             expect=2)

        self.assertIn("bucket %s does not have S3 Object Lock enabled" % bucket, result.stderr)
        self.assertIn("--object-lock-enabled-for-bucket", result.stderr)
        self.assertNotIn("connected to database", result.stderr)
        self.assertEqual([], object_keys(self.moto, bucket))
        self.assertEqual([], open_uploads(self.moto, bucket))

    def test_option_errors(self):
        cases = [
            (["--object-lock-days", "0"], "--object-lock-days"),
            (["--object-lock-days", "1", "--object-lock-mode", "strict"],
             'invalid --object-lock-mode "strict"'),
            (["--object-lock-mode", "compliance"], "--object-lock-days is not"),
        ]
        repo = "s3://%s/x" % self.locked_bucket()
        for extra, message in cases:
            with self.subTest(extra=extra):
                result = self.backup(repo, "shop", *extra, env=self.s3_env(), expect=2)
                self.assertIn(message, result.stderr)

        env = self.s3_env(STOWAGE_OBJECT_LOCK_DAYS="soon")
        result = self.backup(repo, "shop", env=env, expect=2)
        self.assertIn("STOWAGE_OBJECT_LOCK_DAYS", result.stderr)

    def test_file_repository_rejects_object_lock(self):
        repo = self.file_repo()
        result = self.backup(repo, "shop", "--object-lock-days", "1", expect=2)
        self.assertIn("only s3:// repositories support Object Lock", result.stderr)
        self.assertEqual([], os.listdir(repo[len("file://"):]))

    # Expire ----------------------------------------------------------------

    def test_expire_keeps_locked_backup(self):
        bucket = self.locked_bucket()
        repo = "s3://%s/x" % bucket
        env = self.s3_env()
        locked_id = self.locked_backup(repo, "--object-lock-days", "1")
        newest_id = self.locked_backup(repo)
        until = self.show_json(repo, locked_id, env=env)["object_lock"]["retain_until"]

        plan = json.loads(self.stowage("expire", "--repo", repo, "--keep-last", "1",
                                       "--dry-run", "--json", env=env).stdout)
        backups = {b["id"]: b for b in plan["names"][0]["backups"]}
        self.assertEqual("keep", backups[locked_id]["action"])
        self.assertEqual(["locked until %s" % until], backups[locked_id]["reasons"])
        text = self.stowage("expire", "--repo", repo, "--keep-last", "1", "--dry-run",
                            env=env).stdout
        self.assertRegex(text, r"%s\s+\S+\s+KEEP\s+locked until %s" % (locked_id, until))

        result = self.stowage("expire", "--repo", repo, "--keep-last", "1", env=env)
        self.assertIn("keeping backup %s of shop: S3 Object Lock (GOVERNANCE) retains it until %s"
                      % (locked_id, until), result.stderr)
        self.assertEqual([locked_id, newest_id], [b["id"] for b in self.list_json(repo, env=env)])
        self.assertEqual(2, len(self.backup_keys(bucket, locked_id)))
        self.stowage("verify", "--repo", repo, locked_id, "--key", self.key, env=env)

    def test_expire_reports_rejected_delete_as_kept(self):
        bucket = self.locked_bucket()
        repo = "s3://%s/x" % bucket
        env = self.s3_env()
        locked_id = self.locked_backup(repo, "--object-lock-days", "1")
        self.locked_backup(repo)
        # The manifest claims the lock has passed, but S3 still holds it.
        key = "x/backups/shop/%s/manifest.json" % locked_id
        manifest = json.loads(self.s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        manifest["object_lock"]["retain_until"] = rfc3339(utc_now() - DAY)
        self.s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(manifest, indent=2))

        result = self.stowage("expire", "--repo", repo, "--keep-last", "1", "--json", env=env)
        outcome = {b["id"]: b for b in json.loads(result.stdout)["names"][0]["backups"]}
        self.assertFalse(outcome[locked_id]["deleted"])
        self.assertIn("kept: locked", outcome[locked_id]["skipped"])
        self.assertIn("not expiring backup %s of shop: S3 rejected deleting its manifest"
                      % locked_id, result.stderr)
        self.assertIn(locked_id, [b["id"] for b in self.list_json(repo, env=env)])
        self.stowage("verify", "--repo", repo, locked_id, "--key", self.key, env=env)

    def test_expire_deletes_every_version_after_retention(self):
        bucket = self.locked_bucket()
        repo = "s3://%s/x" % bucket
        env = self.s3_env()
        old_id = self.locked_backup(repo, "--object-lock-days", "1")
        newest_id = self.locked_backup(repo)
        self.shorten_retention(bucket, old_id, utc_now() + datetime.timedelta(seconds=3))
        time.sleep(4)

        self.stowage("expire", "--repo", repo, "--keep-last", "1", env=env)
        self.assertEqual([newest_id], [b["id"] for b in self.list_json(repo, env=env)])
        self.assertEqual([], self.versions(bucket, "x/backups/shop/%s/" % old_id))


if __name__ == "__main__":
    unittest.main()
