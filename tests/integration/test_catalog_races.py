"""Races between runs on one catalog name: two takeovers of one stale lock,
and a hold placed while expire deletes the backup. A fault proxy stalls one
request of one run, so the other run acts inside the window every time."""

import datetime
import json
import unittest

from support import StowageTestCase, object_keys

from harness import FaultProxy
from harness import faultproxy
from harness.stowage import check_sanitizer_report, spawn_stowage
from test_catalog_ops import lock_document, wait_for

STALL_SECONDS = 4


class CatalogRaceTest(StowageTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.cluster.createdb("shop")
        cls.cluster.psql("CREATE TABLE orders AS SELECT g AS id, md5(g::text) AS note "
                         "FROM generate_series(1, 2000) g", db="shop")

    def finish(self, process):
        stdout, stderr = process.communicate(timeout=300)
        check_sanitizer_report(stderr)
        return process.returncode, stdout, stderr

    def test_simultaneous_takeover_has_one_winner(self):
        bucket = self.new_bucket()
        repo = "s3://%s/x" % bucket
        s3 = self.moto.client("s3")
        stale = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=1)
        s3.put_object(Bucket=bucket, Key="x/locks/shop.json",
                      Body=lock_document("gone-host", 4242, stale))

        with FaultProxy(self.moto) as proxy:
            stall = proxy.add_fault(faultproxy.STALL, method="DELETE",
                                    path=r"/x/locks/shop\.json$", seconds=STALL_SECONDS)
            first = spawn_stowage(["backup", "--repo", repo, "--db",
                                   self.cluster.conninfo("shop"), "--recipient", self.pub],
                                  env=self.s3_env(AWS_ENDPOINT_URL=proxy.endpoint))
            self.addCleanup(lambda: first.poll() is None and first.kill())
            # The first run has judged the lock stale and is deleting it.
            wait_for(lambda: stall.matched >= 1, 60, "the first run's delete of the lock")
            second = self.backup(repo, "shop", env=self.s3_env(), expect=4)
            code, _, stderr = self.finish(first)

        self.assertEqual(0, code, stderr)
        self.assertIn("taking over the stale lock", stderr)
        self.assertIn("another run is taking over the stale lock locks/shop.json of shop",
                      second.stderr)
        self.assertNotIn("dumping database", second.stderr)
        self.assertEqual(1, len(self.list_json(repo, env=self.s3_env())))
        self.assertEqual([], [k for k in object_keys(self.moto, bucket) if k.startswith("x/locks/")])

    def test_hold_placed_during_expire_delete_is_kept(self):
        bucket = self.new_bucket()
        repo = "s3://%s/x" % bucket
        env = self.s3_env()
        for _ in range(2):
            self.backup(repo, "shop", env=env)
        old_id, newest_id = [b["id"] for b in self.list_json(repo, env=env)]

        with FaultProxy(self.moto) as proxy:
            stall = proxy.add_fault(faultproxy.STALL, method="DELETE",
                                    path=r"/%s/manifest\.json$" % old_id, seconds=STALL_SECONDS)
            expire = spawn_stowage(["expire", "--repo", repo, "--keep-last", "1", "--json"],
                                   env=self.s3_env(AWS_ENDPOINT_URL=proxy.endpoint))
            self.addCleanup(lambda: expire.poll() is None and expire.kill())
            # Expire has checked for a hold and is deleting the manifest.
            wait_for(lambda: stall.matched >= 1, 60, "expire's delete of the manifest")
            self.stowage("hold", "--repo", repo, old_id, "--reason", "audit", env=env)
            code, stdout, stderr = self.finish(expire)

        self.assertEqual(0, code, stderr)
        self.assertIn("backup %s: a hold was placed while it expired; putting its manifest back"
                      % old_id, stderr)
        outcome = {b["id"]: b for b in json.loads(stdout)["names"][0]["backups"]}
        self.assertFalse(outcome[old_id]["deleted"])
        self.assertIn("its manifest was put back", outcome[old_id]["skipped"])
        listing = {b["id"]: b for b in self.list_json(repo, env=env)}
        self.assertEqual({old_id, newest_id}, set(listing))
        self.assertEqual("audit", listing[old_id]["hold"]["reason"])
        self.stowage("verify", "--repo", repo, old_id, "--key", self.key, env=env)


if __name__ == "__main__":
    unittest.main()
