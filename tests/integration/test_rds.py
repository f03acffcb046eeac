"""RDS snapshots and scratch-instance restores against moto_server.

moto serves RDS and KMS in two regions (us-east-1 and us-west-2); boto3
creates the source instance, the KMS key and the foreign snapshots, and
reads back what stowage did. moto makes every snapshot and instance
available at once, so the waiting tests rewrite statuses in a FaultProxy,
and its instances have endpoints nobody can reach, so verification
connects to the harness's PostgreSQL cluster through --connect-host.
"""

import datetime
import glob
import json
import os
import re
import signal
import subprocess
import sys
import time
import unittest
import urllib.parse
from unittest import mock

from support import StowageTestCase

from harness import FaultProxy, MotoServer, REPO_ROOT, run_stowage, spawn_stowage
from harness.faultproxy import ERROR, REWRITE

import botocore.auth
import botocore.awsrequest
import botocore.credentials

SOURCE_REGION = "us-east-1"
DR_REGION = "us-west-2"
INSTANCE = "db1"
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_VERIFY = 3
EXIT_STORAGE = 6
EXIT_INTERRUPTED = 130

APP_SQL = """
CREATE SCHEMA sales;
CREATE TABLE sales.orders (id integer PRIMARY KEY, amount numeric NOT NULL);
INSERT INTO sales.orders SELECT g, g * 1.5 FROM generate_series(1, 100) g;
CREATE INDEX orders_amount ON sales.orders (amount);
CREATE TABLE public.items (id serial PRIMARY KEY, name text);
INSERT INTO public.items (name) SELECT 'item ' || g FROM generate_series(1, 10) g;
"""


def rds_tool_path():
    """Return the rds_tool program beside STOWAGE_BIN, else in build/."""
    if os.environ.get("STOWAGE_BIN"):
        return os.path.join(os.path.dirname(os.environ["STOWAGE_BIN"]), "rds_tool")
    return os.path.join(REPO_ROOT, "build", "rds_tool")


def rewrite_status(element, status):
    """Return a REWRITE function that reports every <element> as status."""
    pattern = re.compile(("<%s>[^<]*</%s>" % (element, element)).encode())
    replacement = ("<%s>%s</%s>" % (element, status, element)).encode()

    def rewrite(code, headers, body):
        return code, headers, pattern.sub(replacement, body)
    return rewrite


def form_of(record):
    """Return the form parameters of a recorded RDS request as a dict."""
    return dict(urllib.parse.parse_qsl(record.body.decode(), keep_blank_values=True))


def requests_for(proxy, action):
    return [r for r in proxy.requests if r.body and form_of(r).get("Action") == action]


def short_circuit(captured):
    """Return a before-send handler that records botocore's request and sends nothing."""
    class Raw:
        def stream(self, **kwargs):
            yield b"<Response/>"

    def before_send(request, **kwargs):
        captured.append(request)
        return botocore.awsrequest.AWSResponse(request.url, 200, {}, Raw())
    return before_send


class RdsTestCase(StowageTestCase):
    """A moto with instance db1 in us-east-1 and a KMS key in us-west-2 for every test."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.cluster.createdb("appdb")
        cls.cluster.psql(APP_SQL, db="appdb")
        cls.backup_repo = cls.file_repo_for_class()
        result = run_stowage(["backup", "--repo", cls.backup_repo, "--db",
                              cls.cluster.conninfo("appdb"), "--recipient", cls.pub, "--json"])
        if result.returncode != 0:
            raise RuntimeError("backup failed: %s" % result.stderr)
        cls.backup_id = json.loads(result.stdout)["id"]

    @classmethod
    def file_repo_for_class(cls):
        path = os.path.join(cls.workdir, "backups")
        os.makedirs(path)
        return "file://" + path

    def setUp(self):
        self.moto.reset()
        self.rds = self.moto.client("rds", region=SOURCE_REGION)
        self.rds_dr = self.moto.client("rds", region=DR_REGION)
        self.rds.create_db_instance(DBInstanceIdentifier=INSTANCE, DBInstanceClass="db.t3.micro",
                                    Engine="postgres", AllocatedStorage=20,
                                    MasterUsername=self.cluster.superuser,
                                    MasterUserPassword="not-used-1")
        self.kms_key = self.moto.client("kms", region=DR_REGION).create_key()["KeyMetadata"]["KeyId"]
        self.repo = self.file_repo()

    def env(self, endpoint_url=None):
        return self.moto.env(region=SOURCE_REGION, endpoint_url=endpoint_url)

    def snapshot(self, *args, expect=0, endpoint_url=None, timeout=300):
        return self.stowage("snapshot", *args, "--poll-interval", "1s",
                            env=self.env(endpoint_url), expect=expect, timeout=timeout)

    def create_snapshot(self, *extra, endpoint_url=None, expect=0):
        result = self.snapshot("create", "--instance", INSTANCE, "--json", *extra,
                               endpoint_url=endpoint_url, expect=expect)
        return json.loads(result.stdout) if expect == 0 else result

    def restore_args(self, *extra):
        return ["restore", "--scratch", "rds", "--connect-host",
                "%s:%d" % (self.cluster.host, self.cluster.port), "--poll-interval", "1s"] + list(extra)

    def snapshot_ids(self, client=None, instance=INSTANCE):
        client = client or self.rds
        return sorted(s["DBSnapshotIdentifier"] for s in
                      client.describe_db_snapshots(DBInstanceIdentifier=instance)["DBSnapshots"])

    def scratch_instances(self):
        pages = self.rds.get_paginator("describe_db_instances").paginate()
        return [i["DBInstanceIdentifier"] for page in pages for i in page["DBInstances"]
                if i["DBInstanceIdentifier"].startswith("stowage-scratch-")]

    def tags(self, arn, client=None):
        client = client or self.rds
        return {t["Key"]: t["Value"] for t in client.list_tags_for_resource(ResourceName=arn)["TagList"]}


class SnapshotTest(RdsTestCase):

    def test_create_records_manifest(self):
        created = self.create_snapshot("--repo", self.repo)

        self.assertRegex(created["id"], r"^stowage-db1-\d{8}-\d{6}$")
        self.assertEqual("snapshot", created["kind"])
        self.assertEqual(SOURCE_REGION, created["region"])
        described = self.rds.describe_db_snapshots(DBSnapshotIdentifier=created["id"])["DBSnapshots"][0]
        self.assertEqual("available", described["Status"])
        self.assertEqual(described["DBSnapshotArn"], created["arn"])
        self.assertEqual({"stowage:created-by": "stowage", "stowage:source": INSTANCE},
                         self.tags(created["arn"]))

        manifest_path = os.path.join(self.repo[len("file://"):], "snapshots", INSTANCE,
                                     created["id"], "manifest.json")
        with open(manifest_path) as handle:
            manifest = json.load(handle)
        self.assertEqual("stowage-manifest", manifest["format"])
        self.assertEqual("snapshot", manifest["kind"])
        self.assertEqual(created["arn"], manifest["arn"])
        self.assertEqual("postgres", manifest["source"]["engine"])
        self.assertEqual(20, manifest["allocated_storage_gib"])
        self.assertFalse(manifest["encrypted"])
        self.assertIsNone(manifest["copied_from"])
        # Snapshot manifests are not backups: the backup catalog stays empty.
        self.assertEqual([], self.list_json(self.repo))

    def test_copy_list_and_expire_in_two_regions(self):
        first = self.create_snapshot("--repo", self.repo)
        time.sleep(1.1)
        second = self.create_snapshot("--repo", self.repo)
        time.sleep(1.1)
        newest = self.create_snapshot("--repo", self.repo)
        self.rds.create_db_snapshot(DBInstanceIdentifier=INSTANCE, DBSnapshotIdentifier="foreign-manual")
        automated = [s for s in self.snapshot_ids() if s.startswith("rds:")]
        self.assertEqual(1, len(automated))

        # Copy the newest to the DR region with a KMS key of that region.
        result = self.snapshot("copy", newest["id"], "--to-region", DR_REGION, "--kms-key",
                               self.kms_key, "--repo", self.repo, "--json")
        copy = json.loads(result.stdout)
        self.assertEqual(newest["id"] + "-" + DR_REGION, copy["id"])
        self.assertEqual({"id": newest["id"], "arn": newest["arn"], "region": SOURCE_REGION},
                         copy["copied_from"])
        described = self.rds_dr.describe_db_snapshots(DBSnapshotIdentifier=copy["id"])["DBSnapshots"][0]
        self.assertTrue(described["Encrypted"])
        self.assertIn(self.kms_key, described["KmsKeyId"])
        self.assertEqual("stowage", self.tags(described["DBSnapshotArn"], self.rds_dr)["stowage:created-by"])
        self.assertEqual(newest["arn"], self.tags(described["DBSnapshotArn"], self.rds_dr)["stowage:copied-from"])
        with open(os.path.join(self.repo[len("file://"):], "snapshots", INSTANCE, copy["id"],
                               "manifest.json")) as handle:
            copy_manifest = json.load(handle)
        self.assertEqual(DR_REGION, copy_manifest["region"])
        self.assertEqual(newest["arn"], copy_manifest["copied_from"]["arn"])
        self.assertEqual(SOURCE_REGION, copy_manifest["copied_from"]["region"])

        # List both regions; only Stowage's snapshots are marked.
        source_list = json.loads(self.snapshot("list", "--instance", INSTANCE, "--json").stdout)
        marks = {s["id"]: s["stowage"] for s in source_list}
        self.assertEqual({first["id"]: True, second["id"]: True, newest["id"]: True,
                          "foreign-manual": False, automated[0]: False}, marks)
        created_times = [s["created_at"] for s in source_list]
        self.assertEqual(sorted(created_times, reverse=True), created_times)
        dr_list = json.loads(self.snapshot("list", "--rds-region", DR_REGION, "--json").stdout)
        self.assertEqual([copy["id"]], [s["id"] for s in dr_list])
        self.assertTrue(dr_list[0]["stowage"])
        self.assertEqual(DR_REGION, dr_list[0]["region"])
        table = self.snapshot("list", "--instance", INSTANCE).stdout
        self.assertRegex(table, r"foreign-manual .* no\n")

        # A dry run deletes nothing.
        dry = self.snapshot("expire", "--instance", INSTANCE, "--keep-last", "1", "--dry-run",
                            "--repo", self.repo).stdout
        self.assertIn("dry run: 2 of 5 snapshots would be deleted", dry)
        self.assertEqual(5, len(self.snapshot_ids()))

        # Expiry deletes only Stowage's older snapshots, and their manifests.
        out = self.snapshot("expire", "--instance", INSTANCE, "--keep-last", "1", "--repo",
                            self.repo).stdout
        self.assertIn("2 of 5 snapshots deleted", out)
        self.assertEqual(sorted([newest["id"], "foreign-manual", automated[0]]), self.snapshot_ids())
        manifests = glob.glob(os.path.join(self.repo[len("file://"):], "snapshots", INSTANCE, "*",
                                           "manifest.json"))
        self.assertEqual(sorted([newest["id"], copy["id"]]),
                         sorted(os.path.basename(os.path.dirname(path)) for path in manifests))

        # In the DR region the only copy is the newest and stays.
        self.snapshot("expire", "--instance", INSTANCE, "--keep-last", "1", "--rds-region", DR_REGION)
        self.assertEqual([copy["id"]], self.snapshot_ids(self.rds_dr))

    def test_expire_keep_within_keeps_young_snapshots(self):
        self.create_snapshot()
        time.sleep(1.1)
        self.create_snapshot()
        out = self.snapshot("expire", "--instance", INSTANCE, "--keep-last", "1",
                            "--keep-within", "1h").stdout
        self.assertIn("keep (within --keep-within)", out)
        self.assertEqual(3, len(self.snapshot_ids()))

    def test_copy_of_encrypted_snapshot_needs_kms_key(self):
        self.rds.create_db_instance(DBInstanceIdentifier="secure", DBInstanceClass="db.t3.micro",
                                    Engine="postgres", AllocatedStorage=20, MasterUsername="u",
                                    MasterUserPassword="not-used-1", StorageEncrypted=True)
        self.rds.create_db_snapshot(DBInstanceIdentifier="secure", DBSnapshotIdentifier="secure-1")
        result = self.snapshot("copy", "secure-1", "--to-region", DR_REGION, expect=EXIT_USAGE)
        self.assertIn("snapshot secure-1 is encrypted", result.stderr)
        self.assertIn("--kms-key", result.stderr)
        self.assertEqual([], self.snapshot_ids(self.rds_dr, instance="secure"))

    def test_cluster_snapshot_create_and_list(self):
        self.rds.create_db_cluster(DBClusterIdentifier="aurora1", Engine="aurora-postgresql",
                                   MasterUsername="u", MasterUserPassword="not-used-1")
        result = self.snapshot("create", "--cluster", "aurora1", "--json", "--repo", self.repo)
        created = json.loads(result.stdout)
        self.assertEqual("db-cluster", created["snapshot_type"])
        self.assertEqual("aurora1", created["source"]["cluster"])
        clusters = self.rds.describe_db_cluster_snapshots(DBClusterIdentifier="aurora1")
        ids = [s["DBClusterSnapshotIdentifier"] for s in clusters["DBClusterSnapshots"]]
        self.assertIn(created["id"], ids)
        listed = json.loads(self.snapshot("list", "--cluster", "aurora1", "--json").stdout)
        self.assertEqual({created["id"]: True}, {s["id"]: s["stowage"] for s in listed if s["stowage"]})

    def test_copy_presigned_url_matches_botocore(self):
        created = self.create_snapshot()
        with FaultProxy(self.moto) as proxy:
            self.snapshot("copy", created["id"], "--to-region", DR_REGION, "--kms-key", self.kms_key,
                          endpoint_url=proxy.endpoint)
            copies = requests_for(proxy, "CopyDBSnapshot")
        self.assertEqual(1, len(copies))
        form = form_of(copies[0])
        self.assertEqual(created["arn"], form["SourceDBSnapshotIdentifier"])
        self.assertIn("/%s/rds/aws4_request" % DR_REGION, copies[0].header("Authorization"))
        stowage_url = urllib.parse.urlsplit(form["PreSignedUrl"])
        stowage_query = dict(urllib.parse.parse_qsl(stowage_url.query, keep_blank_values=True))
        self.assertEqual(DR_REGION, stowage_query["DestinationRegion"])
        self.assertIn("/%s/rds/aws4_request" % SOURCE_REGION, stowage_query["X-Amz-Credential"])

        # botocore builds its own from SourceRegion at the same time.
        signed_at = datetime.datetime.strptime(stowage_query["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(
            tzinfo=datetime.timezone.utc)
        tags = []
        for number in range(1, 10):
            if "Tags.Tag.%d.Key" % number in form:
                tags.append({"Key": form["Tags.Tag.%d.Key" % number],
                             "Value": form["Tags.Tag.%d.Value" % number]})
        client = self.moto.client("rds", region=DR_REGION, endpoint_url=proxy.endpoint)
        captured = []
        client.meta.events.register("before-send", short_circuit(captured))
        with mock.patch("botocore.auth.get_current_datetime", return_value=signed_at):
            try:
                client.copy_db_snapshot(SourceDBSnapshotIdentifier=form["SourceDBSnapshotIdentifier"],
                                        TargetDBSnapshotIdentifier=form["TargetDBSnapshotIdentifier"],
                                        KmsKeyId=form["KmsKeyId"], Tags=tags, SourceRegion=SOURCE_REGION)
            except Exception:
                pass  # the fake response does not parse; the request is what counts
        botocore_form = dict(urllib.parse.parse_qsl(captured[0].body if isinstance(captured[0].body, str)
                                                    else captured[0].body.decode()))
        botocore_url = urllib.parse.urlsplit(botocore_form["PreSignedUrl"])
        self.assertEqual((botocore_url.scheme, botocore_url.netloc, botocore_url.path),
                         (stowage_url.scheme, stowage_url.netloc, stowage_url.path))
        self.assertEqual(dict(urllib.parse.parse_qsl(botocore_url.query, keep_blank_values=True)),
                         stowage_query)


class SnapshotErrorTest(RdsTestCase):

    def test_missing_instance(self):
        result = self.snapshot("create", "--instance", "nosuch", "--repo", self.repo, expect=EXIT_USAGE)
        self.assertIn("DBInstanceNotFound", result.stderr)
        self.assertIn("check the instance id", result.stderr)
        all_snapshots = self.rds.describe_db_snapshots()["DBSnapshots"]
        self.assertEqual([], [s for s in all_snapshots if s["DBSnapshotIdentifier"].startswith("stowage-")])
        self.assertEqual([], os.listdir(self.repo[len("file://"):]))

    def test_missing_snapshot_copy(self):
        result = self.snapshot("copy", "nosuch", "--to-region", DR_REGION, expect=EXIT_USAGE)
        self.assertIn("RDS snapshot nosuch not found in us-east-1", result.stderr)

    def test_quota_exceeded(self):
        with FaultProxy(self.moto) as proxy:
            proxy.add_fault(ERROR, method="POST", body="Action=CreateDBSnapshot", count=None,
                            status=400, code="SnapshotQuotaExceeded",
                            message="Cannot create more than 100 manual snapshots", shape="query")
            result = self.create_snapshot("--repo", self.repo, endpoint_url=proxy.endpoint,
                                          expect=EXIT_FAILURE)
            attempts = requests_for(proxy, "CreateDBSnapshot")
        self.assertIn("SnapshotQuotaExceeded: Cannot create more than 100 manual snapshots",
                      result.stderr)
        self.assertIn("stowage snapshot expire", result.stderr)
        self.assertEqual(1, len(attempts), "a quota error is not retried")
        self.assertEqual([s for s in self.snapshot_ids() if s.startswith("stowage-")], [])
        self.assertEqual([], os.listdir(self.repo[len("file://"):]))

    def test_throttling_is_retried(self):
        with FaultProxy(self.moto) as proxy:
            proxy.add_fault(ERROR, method="POST", body="Action=CreateDBSnapshot", count=2,
                            status=400, code="Throttling", message="Rate exceeded", shape="query")
            created = self.create_snapshot(endpoint_url=proxy.endpoint)
            attempts = requests_for(proxy, "CreateDBSnapshot")
        self.assertEqual(["error", "error", None], [r.fault for r in attempts])
        self.assertEqual([created["id"]], [s for s in self.snapshot_ids() if s.startswith("stowage-")])

    def test_waits_while_snapshot_is_creating(self):
        with FaultProxy(self.moto) as proxy:
            proxy.add_fault(REWRITE, method="POST", body="Action=DescribeDBSnapshots", count=2,
                            function=rewrite_status("Status", "creating"))
            started = time.monotonic()
            created = self.create_snapshot(endpoint_url=proxy.endpoint)
            elapsed = time.monotonic() - started
            polls = requests_for(proxy, "DescribeDBSnapshots")
        self.assertEqual(3, len(polls))
        self.assertEqual([True, True, None], [r.detail.get("rewritten") for r in polls])
        self.assertGreater(elapsed, 1.0, "the second check waits about 1 s")
        self.assertRegex(created["id"], r"^stowage-db1-")

    def test_snapshot_deadline_expires(self):
        with FaultProxy(self.moto) as proxy:
            proxy.add_fault(REWRITE, method="POST", body="Action=DescribeDBSnapshots", count=None,
                            function=rewrite_status("Status", "creating"))
            started = time.monotonic()
            result = self.snapshot("create", "--instance", INSTANCE, "--wait-timeout", "3s",
                                   "--repo", self.repo, endpoint_url=proxy.endpoint,
                                   expect=EXIT_FAILURE)
            elapsed = time.monotonic() - started
        self.assertRegex(result.stderr, r'timed out waiting for RDS snapshot stowage-db1-\S+: '
                                        r'still "creating" after 3s \(--wait-timeout\)')
        self.assertLess(elapsed, 30)
        # The unfinished snapshot is deleted and nothing is recorded.
        self.assertEqual([s for s in self.snapshot_ids() if s.startswith("stowage-")], [])
        self.assertEqual([], os.listdir(self.repo[len("file://"):]))


class ScratchRestoreTest(RdsTestCase):

    def test_verified_restore_from_snapshot(self):
        created = self.create_snapshot()
        report_path = os.path.join(self.workdir, "snapshot-report.json")
        with FaultProxy(self.moto) as proxy:
            result = self.stowage(*self.restore_args("--from-snapshot", created["id"], "--verify",
                                                     "--amcheck", "--database", "appdb", "--repo",
                                                     self.backup_repo, "--report", report_path,
                                                     "--instance-class", "db.t3.small",
                                                     "--security-group", "sg-1",
                                                     "--security-group", "sg-2"),
                                  env=self.env(proxy.endpoint))
            restores = requests_for(proxy, "RestoreDBInstanceFromDBSnapshot")
            deletes = requests_for(proxy, "DeleteDBInstance")
        self.assertIn("verified snapshot restore of snapshot %s: passed" % created["id"], result.stdout)

        with open(report_path) as handle:
            report = json.load(handle)
        self.assertEqual("passed", report["result"])
        self.assertEqual(created["id"], report["snapshot_id"])
        steps = [s["step"] for s in report["steps"]]
        self.assertEqual(["describe-source", "scratch-create", "scratch-wait", "connect", "verify",
                          "amcheck", "scratch-delete"], steps)
        database = report["databases"][0]
        self.assertEqual("appdb", database["name"])
        self.assertEqual(self.backup_id, database["backup"]["id"])
        self.assertEqual("approximate", database["backup"]["match"])
        self.assertEqual(2, database["tables_present"])
        self.assertEqual(2, database["row_counts_compared"])
        self.assertEqual(2, database["row_counts_equal"])
        self.assertGreaterEqual(database["amcheck"]["indexes"], 3)
        self.assertEqual([], database["amcheck"]["failures"])
        self.assertEqual([], report["problems"])

        # The scratch instance was private, tagged, and is gone.
        scratch_id = report["scratch_instance"]["id"]
        self.assertRegex(scratch_id, r"^stowage-scratch-[0-9a-f]{12}$")
        self.assertEqual("deleted", report["scratch_instance"]["status"])
        form = form_of(restores[0])
        self.assertEqual("false", form["PubliclyAccessible"])
        self.assertEqual("db.t3.small", form["DBInstanceClass"])
        self.assertEqual("sg-2", form["VpcSecurityGroupIds.VpcSecurityGroupId.2"])
        tags = {form["Tags.Tag.%d.Key" % n]: form["Tags.Tag.%d.Value" % n] for n in range(1, 5)}
        self.assertEqual("true", tags["stowage:scratch"])
        expires = datetime.datetime.strptime(tags["stowage:expires-at"], "%Y-%m-%dT%H:%M:%SZ")
        hours = (expires - datetime.datetime.utcnow()).total_seconds() / 3600
        self.assertTrue(5.9 < hours <= 6.0, hours)
        self.assertEqual("true", form_of(deletes[0])["SkipFinalSnapshot"])
        self.assertEqual([], self.scratch_instances())

        stored = glob.glob(os.path.join(self.backup_repo[len("file://"):], "snapshots", INSTANCE,
                                        created["id"], "verifications", "*-passed-*.json"))
        self.assertEqual(1, len(stored))

    def test_row_count_difference_is_reported_not_failed(self):
        created = self.create_snapshot()
        self.cluster.psql("INSERT INTO public.items (name) VALUES ('late 1'), ('late 2')", db="appdb")
        try:
            report_path = os.path.join(self.workdir, "difference-report.json")
            self.stowage(*self.restore_args("--from-snapshot", created["id"], "--verify",
                                            "--database", "appdb", "--repo", self.backup_repo,
                                            "--report", report_path), env=self.env())
        finally:
            self.cluster.psql("DELETE FROM public.items WHERE name LIKE 'late %'", db="appdb")
        with open(report_path) as handle:
            database = json.load(handle)["databases"][0]
        self.assertEqual([{"table": "public.items", "backup_rows": 10, "found_rows": 12}],
                         database["row_count_differences"])
        self.assertEqual(1, database["row_counts_equal"])

    def test_missing_table_fails_verification(self):
        self.cluster.createdb("shrinking")
        self.cluster.psql("CREATE TABLE keep (id int); CREATE TABLE doomed (id int);", db="shrinking")
        self.backup(self.backup_repo, "shrinking")
        self.cluster.psql("DROP TABLE doomed", db="shrinking")
        created = self.create_snapshot()
        result = self.stowage(*self.restore_args("--from-snapshot", created["id"], "--verify",
                                                 "--database", "absent", "--database", "shrinking",
                                                 "--repo", self.backup_repo),
                              env=self.env(), expect=EXIT_VERIFY)
        self.assertIn("table public.doomed is missing in database shrinking", result.stdout)
        self.assertIn("database absent is missing", result.stdout)
        self.assertEqual([], self.scratch_instances())

    def test_point_in_time_restore(self):
        at = (datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=1)).strftime(
            "%Y-%m-%dT%H:%M:%SZ")
        report_path = os.path.join(self.workdir, "pitr-report.json")
        with FaultProxy(self.moto) as proxy:
            result = self.stowage(*self.restore_args("--instance", INSTANCE, "--at", at, "--verify",
                                                     "--database", "appdb", "--repo", self.backup_repo,
                                                     "--report", report_path),
                                  env=self.env(proxy.endpoint))
            restores = requests_for(proxy, "RestoreDBInstanceToPointInTime")
        self.assertIn("verified point-in-time restore of instance db1: passed", result.stdout)
        form = form_of(restores[0])
        self.assertEqual(INSTANCE, form["SourceDBInstanceIdentifier"])
        self.assertEqual(at, form["RestoreTime"])
        self.assertEqual("false", form["PubliclyAccessible"])
        with open(report_path) as handle:
            report = json.load(handle)
        self.assertEqual(at, report["point_in_time"])
        self.assertEqual(self.backup_id, report["databases"][0]["backup"]["id"])
        self.assertEqual([], self.scratch_instances())

    def test_point_in_time_latest(self):
        with FaultProxy(self.moto) as proxy:
            self.stowage(*self.restore_args("--instance", INSTANCE, "--at", "latest", "--database",
                                            "appdb"), env=self.env(proxy.endpoint))
            restores = requests_for(proxy, "RestoreDBInstanceToPointInTime")
        self.assertEqual("true", form_of(restores[0])["UseLatestRestorableTime"])
        self.assertNotIn("RestoreTime", form_of(restores[0]))
        self.assertEqual([], self.scratch_instances())

    def test_missing_snapshot_restore(self):
        result = self.stowage(*self.restore_args("--from-snapshot", "nosuch", "--verify"),
                              env=self.env(), expect=EXIT_USAGE)
        self.assertIn("RDS snapshot nosuch not found in us-east-1", result.stderr)
        self.assertEqual([INSTANCE], [i["DBInstanceIdentifier"] for i in
                                      self.rds.describe_db_instances()["DBInstances"]])

    def test_missing_source_instance_restore(self):
        result = self.stowage(*self.restore_args("--instance", "nosuch", "--at", "latest"),
                              env=self.env(), expect=EXIT_USAGE)
        self.assertIn("RDS instance nosuch not found in us-east-1", result.stderr)
        self.assertEqual([], self.scratch_instances())

    def test_instance_never_available(self):
        created = self.create_snapshot()
        with FaultProxy(self.moto) as proxy:
            proxy.add_fault(REWRITE, method="POST", body="DBInstanceIdentifier=stowage-scratch-",
                            count=None, function=rewrite_status("DBInstanceStatus", "creating"))
            result = self.stowage(*self.restore_args("--from-snapshot", created["id"], "--verify",
                                                     "--wait-timeout", "3s"),
                                  env=self.env(proxy.endpoint), expect=EXIT_FAILURE)
        self.assertRegex(result.stderr, r'timed out waiting for RDS instance stowage-scratch-[0-9a-f]+: '
                                        r'still "creating" after 3s')
        self.assertIn("scratch-wait", result.stdout)
        self.assertEqual([], self.scratch_instances())

    def test_unreachable_database(self):
        created = self.create_snapshot()
        result = self.stowage("restore", "--scratch", "rds", "--from-snapshot", created["id"],
                              "--connect-host", "127.0.0.1:1", "--verify", env=self.env(), expect=7)
        self.assertIn("connecting to database postgres of scratch instance stowage-scratch-",
                      result.stderr)
        self.assertEqual([], self.scratch_instances())

    def test_delete_of_non_scratch_instance_refused(self):
        result = self.snapshot("delete-scratch", INSTANCE, expect=EXIT_USAGE)
        self.assertIn("refusing to delete RDS instance db1: it is not a Stowage scratch instance",
                      result.stderr)
        self.rds.create_db_instance(DBInstanceIdentifier="stowage-scratch-fake", DBInstanceClass="db.t3.micro",
                                    Engine="postgres", AllocatedStorage=20, MasterUsername="u",
                                    MasterUserPassword="not-used-1")
        self.snapshot("delete-scratch", "stowage-scratch-fake", expect=EXIT_USAGE)
        self.snapshot("gc-scratch")
        instances = sorted(i["DBInstanceIdentifier"] for i in self.rds.describe_db_instances()["DBInstances"])
        self.assertEqual([INSTANCE, "stowage-scratch-fake"], instances)

    def test_gc_scratch_deletes_only_expired(self):
        # The scratch instances come after a full page of 100 others, so the
        # cleanup finds them only by following DescribeDBInstances' Marker.
        for number in range(100):
            self.rds.create_db_instance(DBInstanceIdentifier="filler-%03d" % number,
                                        DBInstanceClass="db.t3.micro", Engine="postgres",
                                        AllocatedStorage=20, MasterUsername="u",
                                        MasterUserPassword="not-used-1")
        past = (datetime.datetime.utcnow() - datetime.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        future = (datetime.datetime.utcnow() + datetime.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        for name, expires in (("stowage-scratch-old", past), ("stowage-scratch-new", future)):
            self.rds.create_db_instance(DBInstanceIdentifier=name, DBInstanceClass="db.t3.micro",
                                        Engine="postgres", AllocatedStorage=20, MasterUsername="u",
                                        MasterUserPassword="not-used-1",
                                        Tags=[{"Key": "stowage:scratch", "Value": "true"},
                                              {"Key": "stowage:expires-at", "Value": expires}])
        first_page = self.rds.describe_db_instances(MaxRecords=100)["DBInstances"]
        self.assertNotIn("stowage-scratch-old", [i["DBInstanceIdentifier"] for i in first_page])

        dry = self.snapshot("gc-scratch", "--dry-run").stdout
        self.assertRegex(dry, r"stowage-scratch-old .* would delete")
        dry = self.stowage("gc", "--scratch", "--dry-run", "--poll-interval", "1s",
                           env=self.env(None)).stdout
        self.assertRegex(dry, r"stowage-scratch-old .* would delete")
        self.assertEqual(["stowage-scratch-new", "stowage-scratch-old"], sorted(self.scratch_instances()))
        out = self.snapshot("gc-scratch").stdout
        self.assertRegex(out, r"stowage-scratch-old .* deleted")
        self.assertRegex(out, r"stowage-scratch-new .* kept \(not expired\)")
        self.assertIn("2 scratch instances found, 1 deleted", out)
        self.assertEqual(["stowage-scratch-new"], self.scratch_instances())


class ScratchInterruptTest(RdsTestCase):
    """A restore stopped during verification: a table lock held by the test keeps
    the verification's count waiting until the signal arrives."""

    def start_restore(self, *extra):
        created = self.create_snapshot()
        args = self.restore_args("--from-snapshot", created["id"], "--verify", "--database", "appdb",
                                 "--repo", self.backup_repo, *extra)
        return spawn_stowage(args, env=self.env())

    def test_sigterm_during_verification_deletes_scratch(self):
        lock = self.hold_table_lock("appdb", "sales.orders")
        process = self.start_restore()
        self.wait_for_blocked_verification(process)
        self.assertEqual(1, len(self.scratch_instances()))
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=120)
        self.assertEqual(EXIT_INTERRUPTED, process.returncode, stderr)
        self.assertIn("interrupted by SIGTERM during verify", stderr)
        self.assertIn("scratch-delete", stdout)
        self.assertEqual([], self.scratch_instances())
        # The cancelled count released its lock wait at once.
        self.assertEqual("0", self.cluster.query("SELECT count(*) FROM pg_stat_activity WHERE "
                                                 "application_name = 'stowage-verify'")[0][0])
        self.release_table_lock(lock)

    def test_killed_run_is_cleaned_up_by_gc(self):
        lock = self.hold_table_lock("appdb", "sales.orders")
        process = self.start_restore("--expires-in", "1s")
        self.wait_for_blocked_verification(process)
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate(timeout=60)
        leaked = self.scratch_instances()
        self.assertEqual(1, len(leaked))
        self.release_table_lock(lock)
        time.sleep(1.5)
        out = self.snapshot("gc-scratch").stdout
        self.assertIn("%s" % leaked[0], out)
        self.assertIn("1 scratch instances found, 1 deleted", out)
        self.assertEqual([], self.scratch_instances())


class RdsSignatureTest(unittest.TestCase):
    """Signatures: exact Authorization headers against botocore, and moto's own check."""

    @classmethod
    def setUpClass(cls):
        if not os.access(rds_tool_path(), os.X_OK):
            raise unittest.SkipTest("rds_tool not built at %s" % rds_tool_path())
        cls.moto = MotoServer(extra_env={"INITIAL_NO_AUTH_ACTION_COUNT": "3"})
        cls.moto.start()
        iam = cls.moto.client("iam")
        iam.create_user(UserName="snapshots")
        key = iam.create_access_key(UserName="snapshots")["AccessKey"]
        iam.put_user_policy(UserName="snapshots", PolicyName="rds", PolicyDocument=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": ["rds:*", "kms:*"], "Resource": "*"}]}))
        cls.key_id = key["AccessKeyId"]
        cls.secret = key["SecretAccessKey"]
        cls.moto.client("rds", access_key=cls.key_id, secret_key=cls.secret).create_db_instance(
            DBInstanceIdentifier=INSTANCE, DBInstanceClass="db.t3.micro", Engine="postgres",
            AllocatedStorage=20, MasterUsername="u", MasterUserPassword="not-used-1")

    @classmethod
    def tearDownClass(cls):
        cls.moto.stop()

    def environment(self, secret):
        env = self.moto.env()
        env["AWS_ACCESS_KEY_ID"] = self.key_id
        env["AWS_SECRET_ACCESS_KEY"] = secret
        return env

    def test_moto_accepts_stowage_signatures(self):
        env = self.environment(self.secret)
        created = run_stowage(["snapshot", "create", "--instance", INSTANCE, "--json"], env=env)
        self.assertEqual(0, created.returncode, created.stderr)
        listed = run_stowage(["snapshot", "list", "--instance", INSTANCE, "--json"], env=env)
        self.assertEqual(0, listed.returncode, listed.stderr)
        self.assertIn(json.loads(created.stdout)["id"], [s["id"] for s in json.loads(listed.stdout)])

    def test_moto_rejects_wrong_secret(self):
        result = run_stowage(["snapshot", "list", "--instance", INSTANCE],
                             env=self.environment(self.secret[:-1] + ("A" if self.secret[-1] != "A" else "B")))
        self.assertEqual(EXIT_STORAGE, result.returncode, result.stderr)
        self.assertIn("SignatureDoesNotMatch", result.stderr)
        self.assertIn("secret access key", result.stderr)

    def sign_with_both(self, token=None):
        endpoint = "http://127.0.0.1:%d" % self.moto.port
        signed_at = datetime.datetime(2026, 12, 4, 3, 0, 0, tzinfo=datetime.timezone.utc)
        env = {"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "PATH": os.environ.get("PATH", "/usr/bin"),
               "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"}
        if token:
            env["AWS_SESSION_TOKEN"] = token
        output = subprocess.run([rds_tool_path(), "rds-sign", "eu-west-1", endpoint,
                                 str(int(signed_at.timestamp())), "Action=DescribeDBSnapshots",
                                 "Version=2014-10-31", "DBInstanceIdentifier=db1",
                                 "Filters.Filter.1.Name=snapshot-type",
                                 "Filters.Filter.1.Values.Value.1=manual ~*'"],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                check=True).stdout
        lines = dict(line.split(": ", 1) for line in output.strip().split("\n"))
        request = botocore.awsrequest.AWSRequest(method="POST", url=endpoint + "/",
                                                 data=lines["Body"].encode(),
                                                 headers={"Content-Type": lines["Content-Type"]})
        credentials = botocore.credentials.Credentials(env["AWS_ACCESS_KEY_ID"],
                                                       env["AWS_SECRET_ACCESS_KEY"], token)
        with mock.patch("botocore.auth.get_current_datetime", return_value=signed_at):
            botocore.auth.SigV4Auth(credentials, "rds", "eu-west-1").add_auth(request)
        return lines, request

    def test_authorization_matches_botocore(self):
        lines, request = self.sign_with_both()
        self.assertEqual(request.headers["X-Amz-Date"], lines["X-Amz-Date"])
        self.assertEqual(request.headers["Authorization"], lines["Authorization"])

    def test_authorization_with_session_token_matches_botocore(self):
        lines, request = self.sign_with_both(token="FwoGZXIvYXdzEXAMPLE/token+value=")
        self.assertIn("x-amz-security-token", lines["Authorization"])
        self.assertEqual(request.headers["Authorization"], lines["Authorization"])


if __name__ == "__main__":
    unittest.main()
