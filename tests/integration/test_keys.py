"""End-to-end tests of signed manifests and key rotation (stowage rekey):
a rekeyed backup opens with the new key only, its data objects are not
rewritten, and manifests changed by hand are rejected with trusted keys."""

import json
import os
import pty
import select
import signal
import stat
import termios
import time
import unittest

from support import StowageTestCase, wait_until_signal_blocked

from harness import FaultProxy, run_stowage, wait_until
from harness.faultproxy import STALL
from harness.stowage import spawn_stowage, stowage_binary

TABLES = {"public.accounts": 1000, "public.events": 250, "public.notes": 3}


def key_id_of(public_path):
    with open(public_path) as handle:
        return handle.read().split()[1]



def run_on_terminal(command, lines, report_echo=False):
    """Run command on a new pseudo-terminal, typing each line after a prompt.

    Returns (exit status, everything the command printed on the terminal),
    and with report_echo whether the terminal echoes input after the exit.
    """
    pid, fd = pty.fork()
    if pid == 0:
        os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
        os.execv(command[0], command)
    output = b""
    answered = 0  # the length of output when the last line was typed
    pending = list(lines)
    while True:
        chunk = read_chunk(fd)
        if not chunk:
            break
        output += chunk
        # A line answers a prompt that came after the previous answer.
        if pending and output[answered:].rstrip().endswith(b":"):
            line = pending.pop(0)
            os.write(fd, (line if len(line) == 1 and line < " " else line + "\n").encode())
            answered = len(output)
    _, status = os.waitpid(pid, 0)
    echo = bool(termios.tcgetattr(fd)[3] & termios.ECHO)
    os.close(fd)
    result = (os.waitstatus_to_exitcode(status), output.decode(errors="replace"))
    return result + (echo,) if report_echo else result

def start_job_on_terminal(command):
    """Run command as the foreground job of a small job-control shell on a new
    pseudo-terminal; return (shell pid, terminal fd).

    The shell reports each stop of the job as "[stopped by signal N, echo
    on|off]", with the terminal's echo flag at that moment, and then
    continues the job, as `fg` would. It exits with the job's exit status.
    A process group of its own, whose parent is in the same session, lets
    the job stop at all: the kernel discards SIGTSTP in an orphaned group.
    """
    pid, fd = pty.fork()
    if pid != 0:
        return pid, fd
    try:
        os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
        signal.signal(signal.SIGTTOU, signal.SIG_IGN)
        job = os.fork()
        if job == 0:
            os.setpgid(0, 0)
            os.tcsetpgrp(0, os.getpgrp())
            signal.signal(signal.SIGTTOU, signal.SIG_DFL)
            os.execv(command[0], command)
        try:
            os.setpgid(job, job)
        except PermissionError:
            pass  # the job has called exec already, after its own setpgid
        while True:
            _, status = os.waitpid(job, os.WUNTRACED)
            if not os.WIFSTOPPED(status):
                os._exit(os.waitstatus_to_exitcode(status) & 0xFF)
            echo = termios.tcgetattr(0)[3] & termios.ECHO
            os.write(1, b"\n[stopped by signal %d, echo %s]\n"
                     % (os.WSTOPSIG(status), b"on" if echo else b"off"))
            os.tcsetpgrp(0, job)
            os.killpg(job, signal.SIGCONT)
    finally:
        os._exit(127)


def read_chunk(fd):
    """Read what the terminal fd has; b"" once the other side closed it."""
    try:
        return os.read(fd, 4096)
    except OSError:
        return b""


def read_until(fd, output, expected, timeout=30):
    """Read the terminal fd, appending to output, until what it adds ends with expected."""
    deadline = time.monotonic() + timeout
    start = len(output)
    while not output[start:].rstrip().endswith(expected):
        ready, _, _ = select.select([fd], [], [], max(0, deadline - time.monotonic()))
        if not ready:
            raise AssertionError("no %r on the terminal within %d s: %r"
                                 % (expected, timeout, output))
        output += os.read(fd, 4096)
    return output


class KeysTest(StowageTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.cluster.createdb("keysdb")
        cls.cluster.psql(
            "CREATE TABLE accounts (id int PRIMARY KEY, balance numeric);"
            "INSERT INTO accounts SELECT g, g * 1.5 FROM generate_series(1, 1000) g;"
            "CREATE TABLE events (id bigserial, body text);"
            "INSERT INTO events (body) SELECT md5(g::text) FROM generate_series(1, 250) g;"
            "CREATE TABLE notes (note text);"
            "INSERT INTO notes VALUES ('a'), ('b'), ('c');", db="keysdb")
        cls.signing_key = cls.key + ".sign"
        cls.trusted = cls.signing_key + ".pub"
        cls.new_key = os.path.join(cls.workdir, "new.key")
        cls.other = os.path.join(cls.workdir, "other")
        for out, kind in ((cls.new_key, "recipient"), (cls.other, "signing")):
            result = run_stowage(["keygen", "--out", out, "--kind", kind])
            if result.returncode != 0:
                raise RuntimeError("keygen failed: %s" % result.stderr)
        cls.restored = 0

    # Helpers ---------------------------------------------------------------

    def signed_backup(self, repo, env=None, extra=()):
        env = dict(env or {}, STOWAGE_SIGNING_KEY=self.signing_key)
        result = self.backup(repo, "keysdb", "--json", *extra, env=env)
        return json.loads(result.stdout)["id"]

    def manifest_key(self, backup_id):
        return "backups/keysdb/%s/manifest.json" % backup_id

    def restore_row_counts(self, repo, backup_id, key, env=None):
        KeysTest.restored += 1
        target = "restored_%d" % KeysTest.restored
        self.cluster.createdb(target)
        self.stowage("restore", "--repo", repo, backup_id, "--key", key, "--trusted-key",
                     self.trusted, "--target", self.cluster.conninfo(target), env=env)
        return self.row_counts(target)

    def s3_objects(self, bucket):
        client = self.moto.client("s3")
        listing = client.list_objects_v2(Bucket=bucket, Prefix="p/")
        return {item["Key"]: item for item in listing.get("Contents", [])}

    def edit_s3_manifest(self, bucket, backup_id, old, new):
        client = self.moto.client("s3")
        key = "p/" + self.manifest_key(backup_id)
        text = client.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
        self.assertIn(old, text)
        client.put_object(Bucket=bucket, Key=key, Body=text.replace(old, new, 1).encode())

    # Tests -----------------------------------------------------------------

    def test_keygen_writes_both_pairs(self):
        out = os.path.join(self.workdir, "fresh.key")
        result = self.stowage("keygen", "--out", out)
        for path, mode in ((out, 0o600), (out + ".pub", 0o644), (out + ".sign", 0o600),
                           (out + ".sign.pub", 0o644)):
            self.assertEqual(mode, stat.S_IMODE(os.stat(path).st_mode), path)
        self.assertIn(key_id_of(out + ".sign.pub"), result.stdout)
        with open(out + ".sign") as handle:
            self.assertTrue(handle.read().startswith("stowage-signing-secret-key-v1 "))

        again = self.stowage("keygen", "--out", out, "--kind", "signing", expect=2)
        self.assertIn("already exists", again.stderr)

    def test_keygen_usage_errors(self):
        result = self.stowage("keygen", "--out", "/nonexistent/dir/k", expect=2)
        self.assertIn("the directory /nonexistent/dir of --out /nonexistent/dir/k does not exist",
                      result.stderr)
        self.assertIn("mkdir -p /nonexistent/dir", result.stderr)

        passphrase = os.path.join(self.workdir, "open-passphrase")
        with open(passphrase, "w") as handle:
            handle.write("correct horse battery staple\n")
        os.chmod(passphrase, 0o644)
        out = os.path.join(self.workdir, "never.key")
        result = self.stowage("keygen", "--out", out, "--passphrase-file", passphrase, expect=2)
        self.assertIn("passphrase file %s is readable by group or others (mode 0644)"
                      % passphrase, result.stderr)
        self.assertIn("chmod 600 %s" % passphrase, result.stderr)
        self.assertNotIn("correct horse", result.stderr)
        self.assertFalse(os.path.exists(out))

    def test_keygen_asks_passphrase_twice(self):
        # On a terminal the passphrase is typed twice; two that differ
        # write no key.
        for second, expected in (("correct horse battery staple", 0), ("correct horse", 2)):
            with self.subTest(second=second):
                out = os.path.join(self.workdir, "tty-%s.key" % os.urandom(3).hex())
                status, output = run_on_terminal(
                    [stowage_binary(), "keygen", "--out", out, "--passphrase"],
                    ["correct horse battery staple", second])
                self.assertEqual(expected, status, output)
                self.assertIn("The same passphrase again", output)
                self.assertNotIn("correct horse", output)
                self.assertEqual(expected == 0, os.path.exists(out))
                if expected:
                    self.assertIn("the two passphrases differ; no key was written", output)

    def test_ctrl_c_at_passphrase_prompt(self):
        # Ctrl-C or Ctrl-\ at the prompt exits at once with 130 and turns
        # echo back on.
        for key, name in (("\x03", "SIGINT"), ("\x1c", "SIGQUIT")):
            with self.subTest(signal=name):
                out = os.path.join(self.workdir, "tty-%s.key" % name)
                started = time.monotonic()
                status, output, echo = run_on_terminal(
                    [stowage_binary(), "keygen", "--out", out, "--passphrase"], [key],
                    report_echo=True)
                self.assertEqual(130, status, output)
                self.assertLess(time.monotonic() - started, 5, output)
                self.assertIn("interrupted by %s during the passphrase prompt" % name, output)
                self.assertNotIn("stowage gc", output)
                self.assertTrue(echo, "echo was left off")
                self.assertFalse(os.path.exists(out))

    def test_ctrl_z_at_passphrase_prompt(self):
        # Ctrl-Z stops keygen with echo on. Continued, it turns echo off
        # and shows the prompt again.
        out = os.path.join(self.workdir, "tty-suspend.key")
        pid, fd = start_job_on_terminal([stowage_binary(), "keygen", "--out", out,
                                         "--passphrase"])
        try:
            output = read_until(fd, b"", b"Passphrase for the new secret keys:")
            # The shell's stop line and the prompt shown again on SIGCONT
            # may arrive in one read: wait for the prompt only.
            os.write(fd, b"\x1a")
            output = read_until(fd, output, b"Passphrase for the new secret keys:")
            os.write(fd, b"correct horse battery staple\n")
            output = read_until(fd, output, b"The same passphrase again:")
            os.write(fd, b"correct horse battery staple\n")

            chunk = read_chunk(fd)
            while chunk:
                output += chunk
                chunk = read_chunk(fd)
            _, status = os.waitpid(pid, 0)
            echo = bool(termios.tcgetattr(fd)[3] & termios.ECHO)
        finally:
            os.close(fd)

        text = output.decode(errors="replace")
        self.assertEqual(0, os.waitstatus_to_exitcode(status), text)
        self.assertIn("[stopped by signal %d, echo on]" % signal.SIGTSTP, text)
        self.assertEqual(2, text.count("Passphrase for the new secret keys:"), text)
        self.assertNotIn("correct horse", text)
        self.assertTrue(echo, "echo was left off")
        self.assertTrue(os.path.exists(out))

    def test_terminal_hangup_at_prompt(self):
        # A closed terminal sends SIGHUP: exit 130, not an I/O error.
        for attempt in range(3):
            out = os.path.join(self.workdir, "tty-hangup-%d.key" % attempt)
            pid, fd = pty.fork()
            if pid == 0:
                os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
                os.execv(stowage_binary(), [stowage_binary(), "keygen", "--out", out,
                                            "--passphrase"])
            prompt = b""
            while b":" not in prompt:
                prompt += os.read(fd, 1024)
            os.close(fd)
            _, status = os.waitpid(pid, 0)
            self.assertEqual(130, os.waitstatus_to_exitcode(status), attempt)
            self.assertFalse(os.path.exists(out))

    def test_sigint_during_key_derivation(self):
        # Deriving the key from a passphrase takes most of a second: a
        # SIGINT then leaves no key files.
        passphrase = os.path.join(self.workdir, "derive-passphrase")
        with open(passphrase, "w") as handle:
            handle.write("correct horse battery staple\n")
        os.chmod(passphrase, 0o600)
        out = os.path.join(self.workdir, "derive.key")
        process = spawn_stowage(["keygen", "--out", out, "--passphrase-file", passphrase])
        wait_until_signal_blocked(process, signal.SIGINT)
        time.sleep(0.15)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
        self.assertEqual(130, process.returncode, stderr)
        self.assertEqual([], [name for name in os.listdir(self.workdir)
                              if name.startswith("derive.key")])

    def test_protected_key_messages(self):
        passphrase = os.path.join(self.workdir, "prot-passphrase")
        wrong = os.path.join(self.workdir, "prot-wrong")
        for path, text in ((passphrase, "correct horse battery staple\n"), (wrong, "nope\n")):
            with open(path, "w") as handle:
                handle.write(text)
            os.chmod(path, 0o600)
        protected = os.path.join(self.workdir, "prot.key")
        self.stowage("keygen", "--out", protected, "--kind", "recipient", "--passphrase-file",
                     passphrase)
        repo = self.file_repo()
        self.backup(repo, "keysdb")

        result = self.stowage("verify", "--repo", repo, "latest", "--key", protected,
                              "--passphrase-file", wrong, expect=8)
        self.assertIn("wrong passphrase for %s" % protected, result.stderr)
        self.assertIn("--passphrase-file", result.stderr)
        self.assertIn("prompt", result.stderr)

        os.chmod(passphrase, 0o644)
        result = self.stowage("verify", "--repo", repo, "latest", "--key", protected,
                              "--passphrase-file", passphrase, expect=2)
        self.assertIn("passphrase file %s is readable by group or others" % passphrase,
                      result.stderr)

        # Without a terminal the hint names the option for that key's
        # passphrase, and the message names the key.
        signing = os.path.join(self.workdir, "prot-signing.key")
        os.chmod(passphrase, 0o600)
        self.stowage("keygen", "--out", signing, "--kind", "signing", "--passphrase-file",
                     passphrase)
        result = self.stowage("backup", "--repo", repo, "--db", self.cluster.conninfo("keysdb"),
                              "--recipient", self.pub, "--signing-key", signing + ".sign",
                              expect=2)
        self.assertIn("no terminal to read the passphrase of %s.sign from" % signing,
                      result.stderr)
        self.assertIn("--signing-passphrase-file FILE", result.stderr)

        result = self.stowage("verify", "--repo", repo, "latest", "--key", self.signing_key,
                              expect=2)
        self.assertIn("is a signing secret key file; a recipient secret key file is expected",
                      result.stderr)
        self.assertIn("--key takes the recipient secret key", result.stderr)
        self.assertIn("--signing-key", result.stderr)

    def test_duplicate_recipient_stored_once(self):
        repo = self.file_repo()
        result = self.backup(repo, "keysdb", "--recipient", self.pub, "--json")
        backup_id = json.loads(result.stdout)["id"]
        self.assertIn("ignoring --recipient %s: key id %s is already a recipient"
                      % (self.pub, key_id_of(self.pub)), result.stderr)
        with open(os.path.join(repo[len("file://"):], self.manifest_key(backup_id))) as handle:
            manifest = json.load(handle)
        self.assertEqual([key_id_of(self.pub)],
                         [r["key_id"] for r in manifest["encryption"]["recipients"]])
        self.stowage("verify", "--repo", repo, backup_id, "--key", self.key)

    def test_rekey_rotates_recipient_on_s3(self):
        bucket = self.new_bucket()
        repo = "s3://%s/p" % bucket
        env = self.s3_env()
        backup_id = self.signed_backup(repo, env)
        before = self.s3_objects(bucket)
        data_key = "p/backups/keysdb/%s/data.stow" % backup_id
        client = self.moto.client("s3")
        etag_before = client.head_object(Bucket=bucket, Key=data_key)["ETag"]
        old_id = key_id_of(self.pub)
        new_id = key_id_of(self.new_key + ".pub")

        result = self.stowage("rekey", "--repo", repo, backup_id, "--key", self.key,
                              "--add-recipient", self.new_key + ".pub", "--remove-recipient",
                              old_id, "--signing-key", self.signing_key, env=env)
        self.assertIn("added %s; removed %s" % (new_id, old_id), result.stdout)

        after = self.s3_objects(bucket)
        self.assertEqual(etag_before, client.head_object(Bucket=bucket, Key=data_key)["ETag"])
        self.assertEqual(before[data_key]["LastModified"], after[data_key]["LastModified"])
        manifest = self.show_json(repo, backup_id, env=env)
        self.assertEqual([new_id], [r["key_id"] for r in manifest["encryption"]["recipients"]])

        self.assertEqual(TABLES, self.restore_row_counts(repo, backup_id, self.new_key, env))
        old = self.stowage("verify", "--repo", repo, backup_id, "--key", self.key,
                           "--trusted-key", self.trusted, env=env, expect=8)
        self.assertIn("is not encrypted to key id %s" % old_id, old.stderr)
        self.stowage("verify", "--repo", repo, backup_id, "--key", self.new_key,
                     "--trusted-key", self.trusted, env=env)

        listing = self.stowage("list", "--repo", repo, "--json", "--trusted-key", self.trusted,
                               env=env)
        signature = json.loads(listing.stdout)[0]["signature"]
        self.assertEqual({"key_id": key_id_of(self.trusted), "checked": True, "status": "valid"},
                         signature)
        show_text = self.stowage("show", "--repo", repo, backup_id, "--trusted-key", self.trusted,
                             env=env)
        self.assertIn("signature   ed25519 by key id %s, valid" % key_id_of(self.trusted),
                      show_text.stdout)
        self.assertEqual("not_checked", manifest["signature"]["status"])
        self.assertFalse(manifest["signature"]["checked"])

    def test_sigterm_stops_rekey_between_manifests(self):
        # The second manifest's PUT stalls; SIGTERM lets it finish and
        # rekeys nothing after it.
        bucket = self.new_bucket()
        repo = "s3://%s/p" % bucket
        ids = [self.signed_backup(repo, self.s3_env()) for _ in range(3)]
        with FaultProxy(self.moto) as proxy:
            proxy.add_fault(STALL, method="PUT", path=r"manifest\.json$", nth=2, seconds=3)
            process = spawn_stowage(["rekey", "--repo", repo, "--all", "--key", self.key,
                                     "--add-recipient", self.new_key + ".pub", "--signing-key",
                                     self.signing_key],
                                    env=self.s3_env(AWS_ENDPOINT_URL=proxy.endpoint))
            wait_until(lambda: proxy.requests_matching(method="PUT", fault=STALL), 60,
                       description="the stalled manifest PUT")
            process.send_signal(signal.SIGTERM)
            _, stderr = process.communicate(timeout=60)

        self.assertEqual(130, process.returncode, stderr)
        self.assertIn("interrupted by SIGTERM during rekey", stderr)
        self.assertIn("2 of 3 backups were rekeyed", stderr)
        new_id = key_id_of(self.new_key + ".pub")
        rekeyed = [backup_id for backup_id in ids
                   if new_id in [r["key_id"] for r in self.show_json(
                       repo, backup_id, env=self.s3_env())["encryption"]["recipients"]]]
        self.assertEqual(2, len(rekeyed), rekeyed)

    def test_rekey_keeps_object_lock(self):
        client = self.moto.client("s3")
        bucket = "locked-%s" % os.urandom(4).hex()
        client.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
        repo = "s3://%s/p" % bucket
        env = self.s3_env()
        backup_id = self.signed_backup(repo, env, ("--object-lock-days", "1"))
        manifest_key = "p/" + self.manifest_key(backup_id)
        before = client.head_object(Bucket=bucket, Key=manifest_key)

        self.stowage("rekey", "--repo", repo, backup_id, "--key", self.key, "--add-recipient",
                     self.new_key + ".pub", "--signing-key", self.signing_key, env=env)

        after = client.head_object(Bucket=bucket, Key=manifest_key)
        self.assertEqual("GOVERNANCE", after["ObjectLockMode"])
        self.assertEqual(before["ObjectLockRetainUntilDate"], after["ObjectLockRetainUntilDate"])
        versions = client.list_object_versions(Bucket=bucket, Prefix=manifest_key)["Versions"]
        self.assertEqual(2, len(versions))
        data_key = "p/backups/keysdb/%s/data.stow" % backup_id
        data_versions = client.list_object_versions(Bucket=bucket, Prefix=data_key)["Versions"]
        self.assertEqual(1, len(data_versions))
        self.stowage("verify", "--repo", repo, backup_id, "--key", self.new_key,
                     "--trusted-key", self.trusted, env=env)

    def test_tampered_manifest_rejected_on_s3(self):
        bucket = self.new_bucket()
        repo = "s3://%s/p" % bucket
        env = self.s3_env()
        backup_id = self.signed_backup(repo, env)
        self.edit_s3_manifest(bucket, backup_id, '"rows": 1000', '"rows": 1001')

        for command in ("restore", "verify"):
            args = [command, "--repo", repo, backup_id, "--key", self.key, "--trusted-key",
                    self.trusted]
            if command == "restore":
                args += ["--scratch", "local", "--verify"]
            result = self.stowage(*args, env=env, expect=3)
            self.assertIn(self.manifest_key(backup_id), result.stderr)
            self.assertIn(backup_id, result.stderr)
            self.assertIn(key_id_of(self.trusted), result.stderr)
            self.assertIn("does not verify", result.stderr)

        unchecked = self.stowage("verify", "--repo", repo, backup_id, "--key", self.key, env=env)
        self.assertIn("manifest signatures are not checked", unchecked.stderr)

        listing = self.stowage("list", "--repo", repo, "--json", "--trusted-key", self.trusted,
                               env=env)
        self.assertEqual("invalid", json.loads(listing.stdout)[0]["signature"]["status"])
        rekey = self.stowage("rekey", "--repo", repo, backup_id, "--key", self.key,
                             "--add-recipient", self.new_key + ".pub", "--signing-key",
                             self.signing_key, env=env, expect=3)
        self.assertIn("does not verify", rekey.stderr)

    def test_truncated_newest_manifest_blocks_latest(self):
        repo = self.file_repo()
        older = self.signed_backup(repo)
        newest = self.signed_backup(repo)
        path = os.path.join(repo[len("file://"):], self.manifest_key(newest))
        with open(path, "r+b") as handle:
            handle.truncate(40)

        for trusted in (["--trusted-key", self.trusted], []):
            result = self.stowage("verify", "--repo", repo, "latest", "--key", self.key,
                                  *trusted, expect=3)
            self.assertIn(self.manifest_key(newest), result.stderr)
            self.assertIn("may be newer than backup %s" % older, result.stderr)

        self.stowage("verify", "--repo", repo, older, "--key", self.key, "--trusted-key",
                     self.trusted)
        listing = self.stowage("list", "--repo", repo, "--json")
        self.assertEqual([older], [entry["id"] for entry in json.loads(listing.stdout)])
        self.assertIn("skipping %s" % self.manifest_key(newest), listing.stderr)

        # An invalid manifest of another catalog name does not block this one.
        os.remove(path)
        other = os.path.join(repo[len("file://"):], "backups", "other", "20991231T000000Z-000000")
        os.makedirs(other)
        with open(os.path.join(other, "manifest.json"), "w") as handle:
            handle.write("{")
        result = self.stowage("verify", "--repo", repo, "latest", "--key", self.key)
        self.assertIn(older, result.stderr + result.stdout)

    def test_untrusted_and_unsigned_manifests(self):
        repo = self.file_repo()
        signed_id = self.signed_backup(repo)
        unsigned = json.loads(self.backup(repo, "keysdb", "--json").stdout)["id"]

        result = self.stowage("verify", "--repo", repo, signed_id, "--key", self.key,
                              "--trusted-key", self.other + ".sign.pub", expect=3)
        self.assertIn("is signed by key id %s, which is not a trusted key"
                      % key_id_of(self.trusted), result.stderr)

        env = {"STOWAGE_TRUSTED_KEYS": ":" + self.trusted}
        result = self.stowage("extract", "--repo", repo, unsigned, "--key", self.key, "--to",
                              os.path.join(self.workdir, "unsigned-extract"), env=env, expect=3)
        self.assertIn("%s of backup %s is not signed" % (self.manifest_key(unsigned), unsigned),
                      result.stderr)

        rekey = ["rekey", "--repo", repo, unsigned, "--key", self.key, "--signing-key",
                 self.signing_key]
        self.stowage(*rekey, expect=3)
        result = self.stowage(*rekey, "--accept-unsigned")
        self.assertIn("added none; removed none", result.stdout)
        self.stowage("verify", "--repo", repo, unsigned, "--key", self.key, env=env)

    def test_rekey_removal_resumes(self):
        # A rotation stopped after the first backup: the same command again
        # finishes the second and leaves the first as it is.
        repo = self.file_repo()
        first = self.signed_backup(repo)
        second = self.signed_backup(repo)
        old_id = key_id_of(self.pub)
        rotate = ["rekey", "--repo", repo, "--key", self.key, "--add-recipient",
                  self.new_key + ".pub", "--remove-recipient", old_id, "--signing-key",
                  self.signing_key]
        self.stowage(*rotate[:3], first, *rotate[3:])

        result = self.stowage(*rotate, "--all")

        self.assertIn(second, result.stdout)
        for backup_id in (first, second):
            recipients = [r["key_id"] for r in
                          self.show_json(repo, backup_id)["encryption"]["recipients"]]
            self.assertEqual([key_id_of(self.new_key + ".pub")], recipients, backup_id)

    def test_rekey_all_refuses_unreadable_manifest(self):
        repo = self.file_repo()
        directory = repo[len("file://"):]
        good = self.signed_backup(repo)
        broken = self.signed_backup(repo)
        with open(os.path.join(directory, self.manifest_key(broken)), "w") as handle:
            handle.write("{not json")
        with open(os.path.join(directory, self.manifest_key(good)), "rb") as handle:
            before = handle.read()

        result = self.stowage("rekey", "--repo", repo, "--all", "--key", self.key,
                              "--add-recipient", self.new_key + ".pub", "--signing-key",
                              self.signing_key, expect=3)

        self.assertIn("unreadable manifests: 1", result.stderr)
        self.assertIn(self.manifest_key(broken), result.stderr)
        with open(os.path.join(directory, self.manifest_key(good)), "rb") as handle:
            self.assertEqual(before, handle.read())

    def test_rekey_refusals_change_nothing(self):
        repo = self.file_repo()
        directory = repo[len("file://"):]
        first = self.signed_backup(repo)
        second = self.signed_backup(repo)
        old_id = key_id_of(self.pub)
        new_id = key_id_of(self.new_key + ".pub")
        self.stowage("rekey", "--repo", repo, first, "--key", self.key, "--add-recipient",
                     self.new_key + ".pub", "--remove-recipient", old_id, "--signing-key",
                     self.signing_key)
        manifests = {}
        for backup_id in (first, second):
            with open(os.path.join(directory, self.manifest_key(backup_id)), "rb") as handle:
                manifests[backup_id] = handle.read()

        base = ["rekey", "--repo", repo, "--signing-key", self.signing_key]
        # With --all a backup without the key to remove is one done before;
        # the other cannot be opened with the new key.
        every = self.stowage(*base, "--all", "--key", self.new_key, "--remove-recipient",
                             old_id, expect=8)
        self.assertNotIn("backup %s has no recipient" % first, every.stderr)
        self.assertIn("backup %s is not encrypted to key id %s" % (second, new_id),
                      every.stderr)
        self.assertIn("1 of 2 backups cannot be rekeyed", every.stderr)
        unknown = self.stowage(*base, "--all", "--key", self.key, "--remove-recipient",
                               "0123456789abcdef", expect=2)
        self.assertIn("no backup of the 2 selected has a recipient with key id 0123456789abcdef",
                      unknown.stderr)
        absent = self.stowage(*base, first, "--key", self.new_key, "--remove-recipient", old_id,
                              expect=2)
        self.assertIn("backup %s has no recipient with key id %s" % (first, old_id),
                      absent.stderr)
        last = self.stowage(*base, first, "--key", self.new_key, "--remove-recipient", new_id,
                            expect=2)
        self.assertIn("would leave backup %s with no recipient" % first, last.stderr)
        dry = self.stowage(*base, second, "--key", self.key, "--add-recipient",
                           self.new_key + ".pub", "--dry-run")
        self.assertIn("would be rekeyed: added %s" % new_id, dry.stdout)

        for backup_id in (first, second):
            with open(os.path.join(directory, self.manifest_key(backup_id)), "rb") as handle:
                self.assertEqual(manifests[backup_id], handle.read(), backup_id)
        locks = os.path.join(directory, "locks")
        self.assertEqual([], os.listdir(locks) if os.path.isdir(locks) else [])


if __name__ == "__main__":
    unittest.main()
