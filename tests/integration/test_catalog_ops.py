"""End-to-end tests of the catalog operations: the per-name lock, holds,
expire and gc, against file:// repositories and moto's S3."""

import datetime
import glob
import json
import os
import socket
import time
import unittest

from support import StowageTestCase, fake_pg_bindir, object_keys, open_uploads, redate_backup

from harness.stowage import check_sanitizer_report, spawn_stowage

# pg_dump waits before dumping until the test creates the file named by
# SLOW_DUMP_RELEASE, or at most this long, so that a backup holds its lock
# (and, on S3, an open multipart upload) while a test acts, however slow
# the machine.
SLOW_DUMP_SECONDS = 120


def utc_text(when):
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def lock_document(host, pid, refreshed_at, command="backup", name="shop"):
    started = refreshed_at - datetime.timedelta(hours=1)
    return json.dumps({
        "format": "stowage-lock", "format_version": 1, "name": name, "host": host,
        "pid": pid, "run_id": "00112233445566ff", "command": command,
        "started_at": utc_text(started), "refreshed_at": utc_text(refreshed_at),
    })


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out after %d s waiting for %s" % (timeout, what))


class CatalogOpsTest(StowageTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.cluster.createdb("shop")
        cls.cluster.psql("CREATE TABLE orders AS SELECT g AS id, md5(g::text) AS note "
                         "FROM generate_series(1, 2000) g", db="shop")
        cls.slow_bindir = fake_pg_bindir(
            cls.workdir, "slow",
            'for _ in $(seq %d); do [ -e "$SLOW_DUMP_RELEASE" ] && break; sleep 0.1; done\n'
            'exec "$REAL" "$@"' % (SLOW_DUMP_SECONDS * 10))

    # Helpers ---------------------------------------------------------------

    @staticmethod
    def path_of(repo):
        return repo[len("file://"):]

    def files_in(self, repo):
        """Every file under a file:// repository, hidden ones included, relative."""
        root = self.path_of(repo)
        found = []
        for directory, _, files in os.walk(root):
            for name in files:
                found.append(os.path.relpath(os.path.join(directory, name), root))
        return sorted(found)

    def take_backups(self, repo, count, env=None):
        """Run count backups of shop and return their ids, oldest first."""
        for _ in range(count):
            self.backup(repo, "shop", env=env)
        ids = [entry["id"] for entry in self.list_json(repo, env=env)]
        self.assertEqual(count, len(ids))
        return ids

    def expire(self, repo, *args, env=None, expect=0):
        return self.stowage("expire", "--repo", repo, *args, env=env, expect=expect)

    def expire_json(self, repo, *args, env=None):
        result = self.expire(repo, "--json", *args, env=env)
        return json.loads(result.stdout)

    def start_slow_backup(self, repo, *extra, env=None):
        env = dict(env or {})
        env["STOWAGE_PG_BINDIR"] = self.slow_bindir
        env["SLOW_DUMP_RELEASE"] = os.path.join(self.workdir, "release-" + os.urandom(6).hex())
        process = spawn_stowage(["backup", "--repo", repo, "--db", self.cluster.conninfo("shop"),
                                 "--recipient", self.pub, *extra], env=env)
        process.release_path = env["SLOW_DUMP_RELEASE"]
        self.addCleanup(self._stop, process)
        return process

    def _stop(self, process):
        self.release(process)
        if process.poll() is None:
            process.kill()
        process.communicate()

    def release(self, process):
        """Let the slow backup's pg_dump start dumping."""
        with open(process.release_path, "w"):
            pass

    def finish(self, process, expect=0):
        self.release(process)
        stdout, stderr = process.communicate(timeout=300)
        check_sanitizer_report(stderr)
        self.assertEqual(expect, process.returncode, "backup exited %d\nstdout:\n%s\nstderr:\n%s"
                         % (process.returncode, stdout, stderr))
        return stdout, stderr

    def read_file_lock(self, repo, name="shop"):
        path = os.path.join(self.path_of(repo), "locks", name + ".json")
        try:
            with open(path) as handle:
                return json.load(handle)
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def plant_file(self, repo, key, data, age_seconds=0):
        path = os.path.join(self.path_of(repo), key)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as handle:
            handle.write(data)
        if age_seconds:
            when = time.time() - age_seconds
            os.utime(path, (when, when))
        return path

    # The lock --------------------------------------------------------------

    def test_concurrent_backup_fails_naming_holder(self):
        repo = self.file_repo()
        first = self.start_slow_backup(repo, "--lock-stale-after", "8s")
        lock = wait_for(lambda: self.read_file_lock(repo), 30, "the first backup's lock")
        self.assertEqual(first.pid, lock["pid"])
        self.assertEqual(socket.gethostname(), lock["host"])
        self.assertEqual("backup", lock["command"])
        self.assertEqual(16, len(lock["run_id"]))

        second = self.backup(repo, "shop", expect=4)
        self.assertIn("catalog name shop is locked by stowage backup", second.stderr)
        self.assertIn("on host %s" % socket.gethostname(), second.stderr)
        self.assertIn("pid %d" % first.pid, second.stderr)
        self.assertIn("started at %s" % lock["started_at"], second.stderr)
        self.assertIn("--lock-stale-after", second.stderr)

        # A quarter of --lock-stale-after 8s: refreshed every 2 s.
        refreshed = wait_for(
            lambda: (self.read_file_lock(repo) or {}).get("refreshed_at", "") > lock["refreshed_at"],
            6, "a refresh of the lock")
        self.assertTrue(refreshed)

        self.finish(first)
        listing = self.list_json(repo)
        self.assertEqual(1, len(listing))
        backup_id = listing[0]["id"]
        # Only the first backup's two objects: the second left nothing, and
        # the lock is gone.
        self.assertEqual(["backups/shop/%s/data.stow" % backup_id,
                          "backups/shop/%s/manifest.json" % backup_id], self.files_in(repo))

    def test_concurrent_backup_on_s3(self):
        bucket = self.new_bucket()
        repo = "s3://%s/x" % bucket
        env = self.s3_env()
        first = self.start_slow_backup(repo, env=env)
        wait_for(lambda: "x/locks/shop.json" in object_keys(self.moto, bucket), 30,
                 "the first backup's lock")
        wait_for(lambda: open_uploads(self.moto, bucket), 30, "the first backup's upload")

        second = self.backup(repo, "shop", env=env, expect=4)
        self.assertIn("pid %d" % first.pid, second.stderr)
        self.assertEqual(1, len(open_uploads(self.moto, bucket)))

        self.finish(first)
        self.assertEqual([], open_uploads(self.moto, bucket))
        keys = object_keys(self.moto, bucket)
        self.assertNotIn("x/locks/shop.json", keys)
        self.assertEqual(2, len(keys), keys)

    def test_stale_lock_is_taken_over(self):
        repo = self.file_repo()
        old = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=30)
        self.plant_file(repo, "locks/shop.json", lock_document("old-host", 4242, old).encode())

        result = self.backup(repo, "shop")
        self.assertIn("taking over the stale lock locks/shop.json of shop", result.stderr)
        self.assertIn("not refreshed for more than 10m", result.stderr)
        self.assertIn("stowage backup on host old-host (pid 4242", result.stderr)
        self.assertIsNone(self.read_file_lock(repo))
        self.assertEqual(1, len(self.list_json(repo)))

    def test_stale_lock_on_s3(self):
        bucket = self.new_bucket()
        repo = "s3://%s/x" % bucket
        old = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=3)
        self.moto.client("s3").put_object(Bucket=bucket, Key="x/locks/shop.json",
                                          Body=lock_document("old-host", 4242, old).encode())

        # Three minutes is fresh by the default of 10m, stale by 2m.
        refused = self.backup(repo, "shop", env=self.s3_env(), expect=4)
        self.assertIn("old-host", refused.stderr)
        result = self.backup(repo, "shop", "--lock-stale-after", "2m", env=self.s3_env())
        self.assertIn("taking over the stale lock", result.stderr)
        self.assertNotIn("x/locks/shop.json", object_keys(self.moto, bucket))

    def test_unreadable_lock_is_judged_by_age(self):
        repo = self.file_repo()
        self.plant_file(repo, "locks/shop.json", b"not json")
        result = self.backup(repo, "shop", expect=4)
        self.assertIn("an unreadable lock object", result.stderr)

        self.plant_file(repo, "locks/shop.json", b"not json", age_seconds=3600)
        result = self.backup(repo, "shop")
        self.assertIn("taking over the stale lock", result.stderr)

    def test_fresh_lock_blocks_expire(self):
        repo = self.file_repo()
        self.take_backups(repo, 2)
        now = datetime.datetime.now(datetime.timezone.utc)
        self.plant_file(repo, "locks/shop.json", lock_document("busy-host", 7, now).encode())
        result = self.expire(repo, "--keep-last", "1", expect=4)
        self.assertIn("busy-host", result.stderr)
        self.assertEqual(2, len(self.list_json(repo)))
        # A dry run takes no lock, so it still prints the plan.
        dry = self.expire(repo, "--keep-last", "1", "--dry-run")
        self.assertIn("EXPIRE", dry.stdout)

    # Expire ------------------------------------------------------------------

    def check_expire_keep_last(self, repo, env=None, keys=None):
        ids = self.take_backups(repo, 4, env=env)

        plan = self.expire_json(repo, "--keep-last", "2", "--dry-run", env=env)
        self.assertTrue(plan["dry_run"])
        self.assertEqual({"keep-last": 2, "time-zone": "UTC"}, plan["policy"])
        backups = {b["id"]: b for b in plan["names"][0]["backups"]}
        self.assertEqual("shop", plan["names"][0]["name"])
        self.assertEqual(["last 2", "newest"], backups[ids[3]]["reasons"])
        self.assertEqual(["last 2"], backups[ids[2]]["reasons"])
        for old in ids[:2]:
            self.assertEqual("expire", backups[old]["action"])
            self.assertEqual([], backups[old]["reasons"])
            self.assertFalse(backups[old]["deleted"])
        self.assertEqual(ids, [b["id"] for b in self.list_json(repo, env=env)])

        text = self.expire(repo, "--keep-last", "2", "--dry-run", env=env).stdout
        self.assertIn("Expiry plan for shop (keep-last 2; time zone UTC; now ", text)
        for old in ids[:2]:
            self.assertRegex(text, r"%s\s+\S+\s+EXPIRE" % old)
        self.assertRegex(text, r"%s\s+\S+\s+KEEP\s+last 2, newest" % ids[3])
        self.assertIn("dry run, 2 of 4 backups would expire; nothing was deleted", text)

        result = self.expire(repo, "--keep-last", "2", env=env)
        self.assertIn("shop: expired 2 of 4 backups", result.stdout)
        self.assertEqual(ids[2:], [b["id"] for b in self.list_json(repo, env=env)])
        remaining = keys()
        for old in ids[:2]:
            self.assertEqual([], [k for k in remaining if old in k])
        for kept in ids[2:]:
            self.assertTrue([k for k in remaining if k.endswith("%s/data.stow" % kept)])
        return remaining

    def test_expire_keep_last_on_file(self):
        repo = self.file_repo()
        foreign = ["backups/shop/notes.txt", "backups/other/readme", "elsewhere/data.stow"]
        for key in foreign:
            self.plant_file(repo, key, b"not stowage's")
        remaining = self.check_expire_keep_last(repo, keys=lambda: self.files_in(repo))
        for key in foreign:
            self.assertIn(key, remaining)
        self.assertNotIn("locks/shop.json", remaining)
        shop = os.path.join(self.path_of(repo), "backups", "shop")
        self.assertEqual(3, len(os.listdir(shop)), os.listdir(shop))

    def test_gc_removes_old_empty_directories(self):
        repo = self.file_repo()
        kept_id = self.take_backups(repo, 1)[0]
        shop = os.path.join(self.path_of(repo), "backups", "shop")
        old = os.path.join(shop, "20260101T000000Z-abcdef")
        young = os.path.join(shop, "20260102T000000Z-abcdef")
        for directory in (os.path.join(old, "verifications"), young):
            os.makedirs(directory)
        when = time.time() - 2 * 24 * 3600
        for directory in (os.path.join(old, "verifications"), old):
            os.utime(directory, (when, when))

        dry = self.stowage("gc", "--repo", repo, "--dry-run")
        self.assertNotIn("empty backup directories", dry.stdout)
        self.assertTrue(os.path.isdir(old))
        result = self.stowage("gc", "--repo", repo)
        self.assertIn("gc: removed 2 empty backup directories", result.stdout)
        self.assertNotIn("multipart", result.stdout)
        self.assertEqual(sorted([kept_id, os.path.basename(young)]), sorted(os.listdir(shop)))

    def test_expire_keep_last_on_s3(self):
        bucket = self.new_bucket()
        repo = "s3://%s/x" % bucket
        self.moto.aws("s3", "cp", "-", "s3://%s/x/backups/shop/notes.txt" % bucket, input="notes")
        remaining = self.check_expire_keep_last(repo, env=self.s3_env(),
                                                keys=lambda: object_keys(self.moto, bucket))
        self.assertIn("x/backups/shop/notes.txt", remaining)
        self.assertNotIn("x/locks/shop.json", remaining)

    def test_held_backup_survives_expire(self):
        repo = self.file_repo()
        ids = self.take_backups(repo, 3)
        result = self.stowage("hold", "--repo", repo, ids[0], "--reason", "legal: case 17")
        self.assertIn("backup %s of shop is held: legal: case 17" % ids[0], result.stdout)

        listing = {b["id"]: b for b in self.list_json(repo)}
        hold = listing[ids[0]]["hold"]
        self.assertEqual("legal: case 17", hold["reason"])
        self.assertEqual(socket.gethostname(), hold["host"])
        self.assertTrue(hold["held_at"].endswith("Z"))
        self.assertIsNone(listing[ids[1]]["hold"])
        table = self.stowage("list", "--repo", repo).stdout
        self.assertRegex(table, r"%s .* HELD " % ids[0])
        self.assertNotIn("HELD", [line for line in table.splitlines() if ids[1] in line][0])
        shown = self.stowage("show", "--repo", repo, ids[0]).stdout
        self.assertIn("legal: case 17", shown)

        plan = self.expire_json(repo, "--keep-last", "1")
        backups = {b["id"]: b for b in plan["names"][0]["backups"]}
        self.assertEqual(["held"], backups[ids[0]]["reasons"])
        self.assertEqual("expire", backups[ids[1]]["action"])
        self.assertEqual([ids[0], ids[2]], [b["id"] for b in self.list_json(repo)])
        self.assertIn("backups/shop/%s/hold.json" % ids[0], self.files_in(repo))

        released = self.stowage("release", "--repo", repo, ids[0])
        self.assertIn("released the hold on backup %s" % ids[0], released.stdout)
        self.assertNotIn("backups/shop/%s/hold.json" % ids[0], self.files_in(repo))
        again = self.stowage("release", "--repo", repo, ids[0])
        self.assertIn("has no hold", again.stdout)
        self.expire(repo, "--keep-last", "1")
        self.assertEqual([ids[2]], [b["id"] for b in self.list_json(repo)])
        self.assertEqual([], [f for f in self.files_in(repo) if ids[0] in f])

    def test_hold_needs_a_reason(self):
        repo = self.file_repo()
        ids = self.take_backups(repo, 1)
        result = self.stowage("hold", "--repo", repo, ids[0], expect=2)
        self.assertIn("--reason is required", result.stderr)
        result = self.stowage("hold", "--repo", repo, ids[0], "--reason", "", expect=2)
        self.assertIn("the hold reason is empty", result.stderr)
        result = self.stowage("hold", "--repo", repo, "20200101T000000Z-000000", "--reason", "x",
                              expect=2)
        self.assertIn("not found", result.stderr)

    def test_backup_below_a_damaged_newest_survives_expire(self):
        # The newest backup's object is gone and verify records that: the
        # older, never verified backup may be the only restorable one.
        repo = self.file_repo()
        ids = self.take_backups(repo, 2)
        data = [f for f in self.files_in(repo) if ids[1] in f and f.endswith("data.stow")]
        self.assertEqual(1, len(data), self.files_in(repo))
        os.remove(os.path.join(self.path_of(repo), data[0]))
        self.stowage("verify", "--repo", repo, ids[1], "--key", self.key, expect=3)

        plan = self.expire_json(repo, "--keep-last", "1")
        backups = {b["id"]: b for b in plan["names"][0]["backups"]}
        self.assertEqual(["newest not failed"], backups[ids[0]]["reasons"])
        self.assertEqual(["last 1", "newest"], backups[ids[1]]["reasons"])
        self.assertEqual(ids, [b["id"] for b in self.list_json(repo)])

    def test_newest_verified_backup_survives_expire(self):
        repo = self.file_repo()
        ids = self.take_backups(repo, 3)
        verified = self.stowage("restore", "--repo", repo, ids[0], "--key", self.key,
                                "--scratch", "local", "--verify")
        self.assertIn("passed", verified.stdout)
        # A failed verification does not protect the middle backup, and its
        # report goes with it.
        report = "backups/shop/%s/verifications/20200101T000000Z-failed-000001.json" % ids[1]
        self.plant_file(repo, report, b"{}")

        plan = self.expire_json(repo, "--keep-last", "1")
        backups = {b["id"]: b for b in plan["names"][0]["backups"]}
        self.assertEqual(["newest verified"], backups[ids[0]]["reasons"])
        self.assertEqual(["last 1", "newest"], backups[ids[2]]["reasons"])
        self.assertTrue(backups[ids[1]]["deleted"])
        self.assertEqual([ids[0], ids[2]], [b["id"] for b in self.list_json(repo)])
        files = self.files_in(repo)
        self.assertEqual([], [f for f in files if ids[1] in f])
        self.assertTrue([f for f in files if "%s/verifications/" % ids[0] in f])

    def test_expire_every_name_or_one(self):
        repo = self.file_repo()
        self.take_backups(repo, 2)
        for _ in range(2):
            self.backup(repo, "shop", "--name", "shop-copy")
        one = self.expire_json(repo, "--keep-last", "1", "--name", "shop-copy")
        self.assertEqual(["shop-copy"], [n["name"] for n in one["names"]])
        self.assertEqual(3, len(self.list_json(repo)))
        every = self.expire_json(repo, "--keep-within", "1h", "--keep-last", "1")
        self.assertEqual(["shop", "shop-copy"], [n["name"] for n in every["names"]])
        self.assertEqual(3, len(self.list_json(repo)))
        every = self.expire_json(repo, "--keep-last", "1")
        self.assertEqual(2, len(self.list_json(repo)))

    def test_expire_usage_errors(self):
        repo = self.file_repo()
        result = self.expire(repo, expect=2)
        self.assertIn("no retention policy given", result.stderr)
        result = self.expire(repo, "--keep-within", "7x", expect=2)
        self.assertIn("invalid duration for --keep-within: \"7x\"", result.stderr)
        result = self.expire(repo, "--keep-daily", "0", expect=2)
        self.assertIn("--keep-daily", result.stderr)
        result = self.expire(repo, "--keep-daily", "7", "--time-zone", "Mars/Olympus", expect=2)
        self.assertIn("unknown time zone \"Mars/Olympus\"", result.stderr)

    def test_unknown_name_warns(self):
        repo = self.file_repo()
        self.take_backups(repo, 1)
        result = self.expire(repo, "--keep-last", "1", "--name", "shpo")
        self.assertIn("no backups of shpo found in the repository; it has backups of: shop",
                      result.stderr)
        result = self.stowage("list", "--repo", repo, "--name", "shpo")
        self.assertIn("no backups of shpo found in the repository; it has backups of: shop",
                      result.stderr)
        result = self.stowage("list", "--repo", repo, "--name", "shop")
        self.assertNotIn("no backups of", result.stderr)

    def test_future_backup_warns_when_chosen(self):
        # A host with a wrong clock dated this backup in 2099. It stays
        # "latest", and every choice of it by time logs a warning.
        repo = self.file_repo()
        backup_id = self.take_backups(repo, 1)[0]
        redate_backup(repo, "shop", backup_id)

        result = self.stowage("show", "--repo", repo, "latest")
        self.assertIn("backup %s started at 2099-01-01T00:00:00Z, after the current time"
                      % backup_id, result.stderr)
        result = self.stowage("show", "--repo", repo, backup_id)
        self.assertNotIn("after the current time", result.stderr)
        result = self.expire(repo, "--keep-last", "1", "--dry-run")
        self.assertIn("backup %s of shop started at 2099-01-01T00:00:00Z, after the current time"
                      % backup_id, result.stderr)

    def test_list_marks_future_backup(self):
        # The newer backup was dated 2099 by a host with a wrong clock.
        repo = self.file_repo()
        ids = self.take_backups(repo, 2)
        redate_backup(repo, "shop", ids[1])

        result = self.stowage("list", "--repo", repo)
        lines = result.stdout.splitlines()
        self.assertIn("NOTES", lines[0])
        rows = {line.split()[0]: line for line in lines[1:]}
        self.assertIn("START IN FUTURE", rows[ids[1]])
        self.assertNotIn("START IN FUTURE", rows[ids[0]])
        warnings = [line for line in result.stderr.splitlines() if "after the current time" in line]
        self.assertEqual(1, len(warnings), result.stderr)
        self.assertIn("backup %s of shop started at 2099-01-01T00:00:00Z" % ids[1], warnings[0])
        self.assertIn("the clock of the host that took it was probably wrong", warnings[0])

        result = self.stowage("list", "--repo", repo, "--json")
        entries = {entry["id"]: entry for entry in json.loads(result.stdout)}
        self.assertIs(True, entries[ids[1]]["started_in_future"])
        self.assertIs(False, entries[ids[0]]["started_in_future"])
        self.assertEqual(1, result.stderr.count("after the current time"), result.stderr)

    def test_newer_format_version_needs_upgrade(self):
        repo = self.file_repo()
        ids = self.take_backups(repo, 2)
        path = os.path.join(self.path_of(repo), "backups", "shop", ids[1], "manifest.json")
        with open(path) as handle:
            manifest = json.load(handle)
        manifest["format_version"] = 99
        with open(path, "w") as handle:
            json.dump(manifest, handle)

        commands = [
            ("show", ["show", ids[1]]),
            ("show latest", ["show", "latest"]),
            ("verify", ["verify", ids[1], "--key", self.key]),
            ("restore", ["restore", ids[1], "--key", self.key,
                         "--target", self.cluster.conninfo("shop")]),
        ]
        for name, command in commands:
            with self.subTest(name):
                result = self.stowage(command[0], "--repo", repo, *command[1:], expect=2)
                self.assertIn("backup %s was written by a newer stowage" % ids[1], result.stderr)
                self.assertIn("format_version 99", result.stderr)
                self.assertIn("this stowage reads format_version 1 to 2", result.stderr)
                self.assertIn("upgrade stowage", result.stderr)
                self.assertNotIn("invalid", result.stderr)

        result = self.stowage("list", "--repo", repo)
        self.assertNotIn(ids[1], result.stdout)
        self.assertIn("skipping backup %s: it was written by a newer stowage" % ids[1],
                      result.stderr)
        self.assertNotIn("invalid", result.stderr)

        result = self.stowage("rekey", "--repo", repo, "--all", "--key", self.key,
                              "--add-recipient", self.pub, "--signing-key", self.key + ".sign",
                              expect=2)
        self.assertIn("manifests written by a newer stowage: 1", result.stderr)
        self.assertIn("format_version 99", result.stderr)
        self.assertIn("upgrade stowage and run rekey --all again", result.stderr)

    def test_show_names_invalid_manifest(self):
        repo = self.file_repo()
        backup_id = self.take_backups(repo, 1)[0]
        key = "backups/shop/%s/manifest.json" % backup_id
        with open(os.path.join(repo[len("file://"):], key), "w") as handle:
            handle.write("{bad")

        result = self.stowage("show", "--repo", repo, backup_id, expect=3)

        self.assertIn("the manifest of backup %s (%s) is invalid" % (backup_id, key),
                      result.stderr)
        self.assertNotIn("not found", result.stderr)

    def test_invalid_names_rejected(self):
        repo = self.file_repo()
        for command in (["list"], ["hold", "latest", "--reason", "audit"]):
            for name in ("bad/name", "a b"):
                with self.subTest(command=command[0], name=name):
                    result = self.stowage(*command, "--repo", repo, "--name", name, expect=2)
                    self.assertIn(name, result.stderr)

    def test_backup_usage_errors_before_connecting(self):
        repo = self.file_repo()
        unreachable = "host=127.0.0.1 port=1 dbname=shop connect_timeout=2"
        cases = [
            (["--db", unreachable, "--name", "a b"], 'invalid backup name "a b"'),
            (["--db", "host=127.0.0.1 port=abc dbname=shop"], 'invalid port "abc"'),
            (["--db", "postgresql://127.0.0.1:70000/shop"], 'invalid port "70000"'),
        ]
        for args, message in cases:
            with self.subTest(args=args):
                result = self.stowage("backup", "--repo", repo, "--recipient", self.pub, *args,
                                      expect=2)
                self.assertIn(message, result.stderr)
        self.assertEqual([], self.files_in(repo))

    def test_gc_zero_grace_period(self):
        repo = self.file_repo()
        result = self.stowage("gc", "--repo", repo, "--older-than", "0s", expect=2)
        self.assertIn('"0s" is zero', result.stderr)
        self.assertIn("at least 1s", result.stderr)

    def test_expire_in_a_time_zone(self):
        repo = self.file_repo()
        ids = self.take_backups(repo, 2)
        plan = self.expire_json(repo, "--keep-daily", "1", "--time-zone", "Pacific/Kiritimati",
                                "--dry-run")
        reasons = {b["id"]: b["reasons"] for b in plan["names"][0]["backups"]}
        kiritimati = datetime.timezone(datetime.timedelta(hours=14))
        day = datetime.datetime.now(kiritimati).strftime("%Y-%m-%d")
        self.assertEqual(["daily %s" % day, "newest"], reasons[ids[1]])

    # gc ------------------------------------------------------------------------

    def test_gc_on_s3(self):
        bucket = self.new_bucket()
        repo = "s3://%s/x" % bucket
        env = self.s3_env()
        client = self.moto.client("s3")
        kept_id = self.take_backups(repo, 1, env=env)[0]

        abandoned_key = "x/backups/shop/20260101T000000Z-abcdef/data.stow"
        abandoned = client.create_multipart_upload(Bucket=bucket, Key=abandoned_key)["UploadId"]
        orphan_key = "x/backups/shop/20260102T000000Z-abcdef/data.stow"
        self.moto.aws("s3", "cp", "-", "s3://%s/%s" % (bucket, orphan_key),
                      input="STOWAGE\x00" + "q" * 1000)
        orphan_size = client.head_object(Bucket=bucket, Key=orphan_key)["ContentLength"]
        foreign = ["x/backups/shop/20260103T000000Z-abcdef/data.stow",  # no container magic
                   "x/backups/shop/notes/data.stow", "x/other/data.stow"]
        for key in foreign:
            self.moto.aws("s3", "cp", "-", "s3://%s/%s" % (bucket, key), input="plain text")

        # A running backup of another name: it holds the lock of "busy" and
        # an open multipart upload, which moto reports as initiated in 2010.
        # The lock protects every key of its name, so the leftovers above
        # belong to "shop".
        running = self.start_slow_backup(repo, "--name", "busy", env=env)
        wait_for(lambda: len(open_uploads(self.moto, bucket)) == 2, 30, "the running upload")
        running_upload = [u for u in open_uploads(self.moto, bucket) if u["UploadId"] != abandoned][0]
        time.sleep(1.5)

        dry = self.stowage("gc", "--repo", repo, "--older-than", "1s", "--dry-run", env=env).stdout
        self.assertIn("would abort: upload of backups/shop/20260101T000000Z-abcdef/data.stow", dry)
        self.assertIn("would remove: backups/shop/20260102T000000Z-abcdef/data.stow", dry)
        self.assertEqual(2, len(open_uploads(self.moto, bucket)))
        self.assertIn(orphan_key, object_keys(self.moto, bucket))

        result = self.stowage("gc", "--repo", repo, "--older-than", "1s", "--json", env=env)
        outcome = json.loads(result.stdout)
        by_key = {(i["kind"], i["key"]): i for i in outcome["items"]}
        upload = by_key[("upload", "backups/shop/20260101T000000Z-abcdef/data.stow")]
        self.assertEqual(["remove", True, abandoned], [upload["action"], upload["done"], upload["upload_id"]])
        removed = by_key[("object", "backups/shop/20260102T000000Z-abcdef/data.stow")]
        self.assertEqual(["remove", True], [removed["action"], removed["done"]])
        self.assertEqual(orphan_size, outcome["bytes_reclaimed"])
        running_key = running_upload["Key"][len("x/"):]
        self.assertEqual("keep_locked", by_key[("upload", running_key)]["action"])
        self.assertEqual("keep_foreign",
                         by_key[("object", "backups/shop/20260103T000000Z-abcdef/data.stow")]["action"])
        self.assertIn("skipping catalog name busy: it is locked by stowage backup", result.stderr)

        self.assertEqual([running_upload["UploadId"]],
                         [u["UploadId"] for u in open_uploads(self.moto, bucket)])
        keys = object_keys(self.moto, bucket)
        self.assertNotIn(orphan_key, keys)
        for key in foreign:
            self.assertIn(key, keys)

        # The running backup completes untouched.
        self.finish(running, expect=0)
        listing = [b["id"] for b in self.list_json(repo, env=env)]
        self.assertEqual(2, len(listing))
        self.assertIn(kept_id, listing)
        self.stowage("verify", "--repo", repo, listing[-1], "--key", self.key, env=env)

    def test_gc_on_file(self):
        repo = self.file_repo()
        kept_id = self.take_backups(repo, 1)[0]
        day = 24 * 3600
        old_temp = self.plant_file(repo, "backups/shop/20260101T000000Z-abcdef/.data.stow.tmp-0badc0de",
                                   b"x" * 300, age_seconds=2 * day)
        new_temp = self.plant_file(repo, "backups/shop/20260101T000000Z-abcdef/.data.stow.tmp-0000beef",
                                   b"x" * 300)
        orphan = self.plant_file(repo, "backups/shop/20260102T000000Z-abcdef/data.stow",
                                 b"STOWAGE\x00" + b"y" * 500, age_seconds=2 * day)
        report = self.plant_file(repo, "backups/shop/20260102T000000Z-abcdef/verifications/"
                                 "20260102T000000Z-passed-000001.json", b"{}", age_seconds=2 * day)
        hold = self.plant_file(repo, "backups/shop/20260102T000000Z-abcdef/hold.json", b"{}",
                               age_seconds=2 * day)
        young = self.plant_file(repo, "backups/shop/20260104T000000Z-abcdef/data.stow",
                                b"STOWAGE\x00" + b"z" * 10)
        locked = self.plant_file(repo, "backups/locked/20260105T000000Z-abcdef/data.stow",
                                 b"STOWAGE\x00" + b"w" * 10, age_seconds=2 * day)
        now = datetime.datetime.now(datetime.timezone.utc)
        self.plant_file(repo, "locks/locked.json", lock_document("busy-host", 7, now, name="locked").encode())

        result = self.stowage("gc", "--repo", repo)
        self.assertIn("aborted: upload of backups/shop/20260101T000000Z-abcdef/data.stow "
                      "(upload id .data.stow.tmp-0badc0de", result.stdout)
        self.assertIn("removed: backups/shop/20260102T000000Z-abcdef/data.stow (508 bytes", result.stdout)
        self.assertIn("removed 3 objects and uploads, 810 B reclaimed", result.stdout)
        for path in (old_temp, orphan, report):
            self.assertFalse(os.path.exists(path), path)
        for path in (new_temp, hold, young, locked):
            self.assertTrue(os.path.exists(path), path)
        self.assertEqual([kept_id], [b["id"] for b in self.list_json(repo)])
        self.stowage("verify", "--repo", repo, kept_id, "--key", self.key)

    def test_gc_lock_message_names_replicate(self):
        repo = self.file_repo()
        self.plant_file(repo, "backups/copying/20260105T000000Z-abcdef/data.stow",
                        b"STOWAGE\x00" + b"w" * 10, age_seconds=2 * 24 * 3600)
        now = datetime.datetime.now(datetime.timezone.utc)
        self.plant_file(repo, "locks/copying.json",
                        lock_document("dr-host", 7, now, command="replicate",
                                      name="copying").encode())

        result = self.stowage("gc", "--repo", repo)
        self.assertIn("locked by a running backup, expire, replicate or rekey", result.stdout)
        self.assertIn("locked by stowage replicate", result.stderr)

    def test_gc_ignores_lock_of_killed_backup(self):
        repo = self.file_repo()
        process = self.start_slow_backup(repo)
        backups = os.path.join(self.path_of(repo), "backups", "shop")
        wait_for(lambda: self.read_file_lock(repo), 30, "the backup's lock")
        temp = wait_for(lambda: glob.glob(os.path.join(backups, "*", ".data.stow.tmp-*")), 30,
                        "the backup's temporary file")[0]
        process.kill()
        process.communicate()
        time.sleep(1.5)

        result = self.stowage("gc", "--repo", repo, "--older-than", "1s")
        self.assertNotIn("locked by", result.stderr)
        self.assertIn("process no longer exists", result.stderr)
        self.assertIn("aborted: upload of backups/shop/", result.stdout)
        self.assertFalse(os.path.exists(temp), temp)
        self.assertEqual([], os.listdir(backups))

    def test_gc_with_nothing_to_do(self):
        repo = self.file_repo()
        self.take_backups(repo, 1)
        result = self.stowage("gc", "--repo", repo)
        self.assertIn("gc: removed 0 objects and uploads", result.stdout)


if __name__ == "__main__":
    unittest.main()
