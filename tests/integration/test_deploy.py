"""Mechanical checks of the deployment files in scripts/deploy.

- cronjob.yaml parses as YAML (PyYAML), and every stowage command line in
  it uses only options that the command's --help lists;
- stowage.service and stowage.timer pass `systemd-analyze verify` without
  a message (with ExecStart pointed at the built binary), and the service's
  stowage command line uses only listed options;
- the IAM policies parse as JSON, and every action they allow is one that
  the code calls. Each action is mapped below to the API operation names
  that need it, and one of them must occur in the named source file;
- the other way round, every S3, RDS and STS operation that the code calls
  needs an action that a policy allows (OPERATION_PERMISSIONS below).

A check whose tool is missing is skipped with the tool's name.
"""

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from harness import REPO_ROOT, run_stowage  # noqa: E402
from harness.stowage import stowage_binary  # noqa: E402

DEPLOY = os.path.join(REPO_ROOT, "scripts", "deploy")

# IAM action -> (source file, operation names that need the permission).
# S3 operations are the names passed to call_init in agent/aws/s3.c; RDS
# and STS operations are the Action names of their Query APIs.
S3 = "agent/aws/s3.c"
RDS = "agent/aws/rds.c"
ACTION_EVIDENCE = {
    "s3:ListBucket": (S3, ["ListObjectsV2"]),
    "s3:GetObject": (S3, ["GetObject", "HeadObject", "UploadPartCopy", "CopyObject"]),
    "s3:PutObject": (S3, ["PutObject", "CreateMultipartUpload", "UploadPart",
                          "CompleteMultipartUpload", "UploadPartCopy", "CopyObject"]),
    "s3:AbortMultipartUpload": (S3, ["AbortMultipartUpload"]),
    "s3:ListMultipartUploadParts": (S3, ["ListParts"]),
    "s3:ListBucketMultipartUploads": (S3, ["ListMultipartUploads"]),
    "s3:DeleteObject": (S3, ["DeleteObject"]),
    "s3:DeleteObjectVersion": (S3, ["DeleteObject"]),
    "s3:ListBucketVersions": (S3, ["ListObjectVersions"]),
    "s3:PutObjectRetention": (S3, ["PutObjectRetention"]),
    # HeadObject returns x-amz-object-lock-mode and -retain-until-date only
    # to a caller with s3:GetObjectRetention, and storage_s3.c reads them
    # there to confirm a lock.
    "s3:GetObjectRetention": (S3, ["HeadObject"]),
    "s3:GetBucketObjectLockConfiguration": (S3, ["GetObjectLockConfiguration"]),
    # RDS calls KMS for the caller when a snapshot copy names a KMS key.
    "kms:DescribeKey": (RDS, ["KmsKeyId"]),
    "kms:CreateGrant": (RDS, ["KmsKeyId"]),
    # --db-iam-auth signs tokens for the rds-db service.
    "rds-db:connect": ("agent/aws/rds_auth.h", ["rds-db"]),
    "sts:AssumeRoleWithWebIdentity": ("agent/aws/sts.c", ["AssumeRoleWithWebIdentity"]),
}
RDS_ACTION = re.compile(r"^rds:([A-Za-z]+)$")

# S3 operation -> the actions it needs (AWS S3 API reference, "Permissions"
# of each operation). A copy reads the source and writes the target. A
# write with Object Lock headers also needs s3:PutObjectRetention, and a
# DELETE with versionId needs s3:DeleteObjectVersion (checked separately).
OPERATION_PERMISSIONS = {
    "ListObjectsV2": ["s3:ListBucket"],
    "GetObject": ["s3:GetObject"],
    "HeadObject": ["s3:GetObject"],
    "PutObject": ["s3:PutObject"],
    "CreateMultipartUpload": ["s3:PutObject"],
    "UploadPart": ["s3:PutObject"],
    "CompleteMultipartUpload": ["s3:PutObject"],
    "UploadPartCopy": ["s3:PutObject", "s3:GetObject"],
    "CopyObject": ["s3:PutObject", "s3:GetObject"],
    "AbortMultipartUpload": ["s3:AbortMultipartUpload"],
    "ListParts": ["s3:ListMultipartUploadParts"],
    "ListMultipartUploads": ["s3:ListBucketMultipartUploads"],
    "DeleteObject": ["s3:DeleteObject"],
    "ListObjectVersions": ["s3:ListBucketVersions"],
    "GetObjectLockConfiguration": ["s3:GetBucketObjectLockConfiguration"],
    "PutObjectRetention": ["s3:PutObjectRetention"],
    "GetObjectRetention": ["s3:GetObjectRetention"],
}
S3_CALL = re.compile(r'call_init\(\s*&?[\w>.-]+,\s*[\w>.-]+,\s*"(\w+)"')
QUOTED = re.compile(r'"(\w+)"')
# RDS Query API actions: a verb and a DB resource, or the tagging calls.
RDS_OPERATION = re.compile(r'"((?:Describe|Create|Copy|Delete|Restore|Modify|Start|Stop|Reboot|'
                           r'Promote|Failover)\w*DB\w*|AddTagsToResource|ListTagsForResource|'
                           r'RemoveTagsFromResource)"')
LONG_OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


def read_source(relative):
    with open(os.path.join(REPO_ROOT, relative)) as handle:
        return handle.read()


def operation_used(relative, operation):
    """Return True when relative names operation as a quoted string."""
    return '"%s"' % operation in read_source(relative)


def policy_actions(document):
    """Return every action that a policy's Allow statements name."""
    actions = []
    for statement in document["Statement"]:
        if statement.get("Effect") != "Allow":
            continue
        listed = statement.get("Action", [])
        actions.extend([listed] if isinstance(listed, str) else listed)
    return actions


def stowage_command_lines(text):
    """Return the argument lists that follow "stowage" in shell text (lines joined at '\\')."""
    joined = re.sub(r"\\\n", " ", text)
    commands = []
    for line in joined.splitlines():
        try:
            words = shlex.split(line, comments=True)
        except ValueError:
            continue
        for index, word in enumerate(words):
            if os.path.basename(word) == "stowage" and index + 1 < len(words):
                commands.append(words[index + 1:])
    return commands


class DeployFilesTest(unittest.TestCase):
    def assert_options_listed(self, arguments, where):
        """Check that every --option after the command word is in its --help."""
        command = [arguments[0]]
        if len(arguments) > 1 and not arguments[1].startswith("-") and arguments[0] in (
                "snapshot", "dr"):
            command.append(arguments[1])
        result = run_stowage(command + ["--help"])
        self.assertEqual(0, result.returncode, "stowage %s --help failed: %s"
                         % (" ".join(command), result.stderr))
        listed = set(LONG_OPTION.findall(result.stdout))
        for option in LONG_OPTION.findall(" ".join(arguments)):
            self.assertIn(option, listed, "%s runs stowage %s with %s, which its --help "
                          "does not list" % (where, " ".join(command), option))

    def test_cronjob_parses(self):
        try:
            import yaml
        except ImportError:
            self.skipTest("PyYAML is not installed")
        with open(os.path.join(DEPLOY, "cronjob.yaml")) as handle:
            documents = [d for d in yaml.safe_load_all(handle) if d is not None]
        kinds = [d.get("kind") for d in documents]
        self.assertIn("CronJob", kinds)
        for document in documents:
            self.assertIn("apiVersion", document)
            self.assertIn("name", document.get("metadata", {}))

        scripts = []
        for cronjob in (d for d in documents if d["kind"] == "CronJob"):
            pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
            for container in pod["containers"]:
                scripts.append(" ".join(container.get("command", []) +
                                        container.get("args", [])))
        commands = [c for s in scripts for c in stowage_command_lines(s)]
        self.assertTrue(commands, "no stowage command in the CronJob's containers")
        for arguments in commands:
            self.assert_options_listed(arguments, "cronjob.yaml")

    def test_systemd_units_verify(self):
        analyze = shutil.which("systemd-analyze")
        if analyze is None:
            self.skipTest("systemd-analyze is not installed")
        with tempfile.TemporaryDirectory() as directory:
            for name in ("stowage.service", "stowage.timer"):
                with open(os.path.join(DEPLOY, name)) as handle:
                    text = handle.read()
                # The unit runs the installed binary; verify needs one that exists.
                text = text.replace("/usr/local/bin/stowage", stowage_binary())
                with open(os.path.join(directory, name), "w") as handle:
                    handle.write(text)
            result = subprocess.run([analyze, "verify", "stowage.service", "stowage.timer"],
                                    cwd=directory, capture_output=True, text=True, timeout=120)
        self.assertEqual(0, result.returncode, result.stdout + result.stderr)
        self.assertEqual("", result.stderr.strip())

    def test_service_options_listed(self):
        with open(os.path.join(DEPLOY, "stowage.service")) as handle:
            text = handle.read()
        exec_start = re.search(r"^ExecStart=((?:.*\\\n)*.*)", text, re.MULTILINE)
        self.assertIsNotNone(exec_start, "stowage.service has no ExecStart")
        commands = stowage_command_lines(exec_start.group(1))
        self.assertTrue(commands, "ExecStart runs no stowage command")
        for arguments in commands:
            self.assert_options_listed(arguments, "stowage.service")

    def allowed_actions(self):
        actions = set()
        for name in ("iam-policy.json", "iam-trust-policy.json"):
            with open(os.path.join(DEPLOY, name)) as handle:
                actions.update(policy_actions(json.load(handle)))
        return actions

    def test_s3_operations_allowed(self):
        source = read_source(S3)
        called = set(S3_CALL.findall(source))
        for operation in sorted(called):
            self.assertIn(operation, OPERATION_PERMISSIONS, "%s calls S3 %s, which "
                          "OPERATION_PERMISSIONS does not map to IAM actions" % (S3, operation))
        # Listings pass their operation name through a table, not call_init.
        called.update(name for name in QUOTED.findall(source) if name in OPERATION_PERMISSIONS)
        self.assertIn("PutObject", called)

        required = {action for operation in called for action in OPERATION_PERMISSIONS[operation]}
        if '"x-amz-object-lock-mode"' in source:
            required.add("s3:PutObjectRetention")
            required.add("s3:GetObjectRetention")
        if '"versionId"' in source:
            required.add("s3:DeleteObjectVersion")
        allowed = self.allowed_actions()
        for action in sorted(required):
            self.assertTrue(action in allowed, "%s calls S3 operations that need %s, which no "
                          "policy in scripts/deploy allows" % (S3, action))

    def test_rds_operations_allowed(self):
        called = set(RDS_OPERATION.findall(read_source(RDS)))
        self.assertIn("DescribeDBInstances", called)
        allowed = self.allowed_actions()
        for operation in sorted(called):
            self.assertTrue("rds:" + operation in allowed, "%s calls RDS %s, which no policy in "
                          "scripts/deploy allows" % (RDS, operation))

    def test_sts_and_token_actions_allowed(self):
        allowed = self.allowed_actions()
        if operation_used("agent/aws/sts.c", "AssumeRoleWithWebIdentity"):
            self.assertIn("sts:AssumeRoleWithWebIdentity", allowed)
        if operation_used("agent/aws/rds_auth.h", "rds-db"):
            self.assertIn("rds-db:connect", allowed)

    def test_iam_policies_actions_used(self):
        for name in ("iam-policy.json", "iam-trust-policy.json"):
            with open(os.path.join(DEPLOY, name)) as handle:
                document = json.load(handle)
            self.assertEqual("2012-10-17", document.get("Version"), name)
            for action in policy_actions(document):
                rds = RDS_ACTION.match(action)
                if rds:
                    source, operations = RDS, [rds.group(1)]
                else:
                    self.assertIn(action, ACTION_EVIDENCE, "%s allows %s, which no command "
                                  "is known to need" % (name, action))
                    source, operations = ACTION_EVIDENCE[action]
                self.assertTrue(any(operation_used(source, op) for op in operations),
                                "%s allows %s, but %s calls none of %s"
                                % (name, action, source, ", ".join(operations)))


if __name__ == "__main__":
    unittest.main()
