"""Helpers to run the stowage binary from integration tests.

    code, out, err = run_stowage(["list", "--repo", "file://" + repo], env=moto.env())
    assert_no_secret([out, err], [moto_secret, db_password])

The binary is STOWAGE_BIN (ctest sets it to the target it built), else
build/stowage in the repository.
"""

import os
import re
import signal
import subprocess
from collections import namedtuple

from . import REPO_ROOT, clean_environment

# Paths that do not exist, so that the host's ~/.aws files cannot change a test.
_MISSING_DIRECTORY = "/nonexistent/stowage-test"

# Reports of AddressSanitizer, LeakSanitizer and UndefinedBehaviorSanitizer.
# A sanitizer exits non-zero, which a test that expects a failure would take
# for the expected exit code, so run_stowage checks the output instead.
_SANITIZER_REPORT = re.compile(
    r"^==\d+==ERROR: (AddressSanitizer|LeakSanitizer)|^\S+:\d+:\d+: runtime error: "
    r"|^SUMMARY: (AddressSanitizer|UndefinedBehaviorSanitizer)",
    re.MULTILINE)

StowageResult = namedtuple("StowageResult", "returncode stdout stderr")
StowageResult.__doc__ = "Exit code and output of one stowage run; unpacks as (code, stdout, stderr)."


def stowage_binary():
    """Return the path of the stowage binary, or raise FileNotFoundError naming it."""
    path = os.environ.get("STOWAGE_BIN") or os.path.join(REPO_ROOT, "build", "stowage")
    if not os.access(path, os.X_OK):
        raise FileNotFoundError("stowage binary %s not found or not executable; build it with "
                                "scripts/test.sh or set STOWAGE_BIN" % path)
    return path


def stowage_environment(env=None):
    """Return the environment for a stowage run.

    It starts from the host's environment without AWS, libpq and proxy
    settings, points the AWS config and credentials files at a path that
    does not exist, applies env, and always ends with
    AWS_EC2_METADATA_DISABLED=true.
    """
    result = clean_environment({
        "AWS_CONFIG_FILE": _MISSING_DIRECTORY + "/config",
        "AWS_SHARED_CREDENTIALS_FILE": _MISSING_DIRECTORY + "/credentials",
    })
    if env:
        result.update(env)
    result["AWS_EC2_METADATA_DISABLED"] = "true"
    return result


def check_sanitizer_report(stderr):
    """Raise AssertionError when stderr contains a sanitizer report."""
    text = stderr.decode(errors="replace") if isinstance(stderr, bytes) else stderr
    match = _SANITIZER_REPORT.search(text or "")
    if match:
        raise AssertionError("stowage reported a sanitizer error:\n%s" % text[max(0, match.start() - 2000):])


def run_stowage(args, env=None, timeout=120, input=None, cwd=None, text=True):
    """Run stowage with args; return StowageResult(returncode, stdout, stderr).

    env is merged over stowage_environment(). input is str (or bytes with
    text=False) for standard input; without it, standard input is empty.
    On timeout the whole process group (stowage and the pg_dump it started)
    is killed and subprocess.TimeoutExpired is raised. A sanitizer report in
    stderr raises AssertionError, whatever the exit code.
    """
    process = spawn_stowage(args, env=env, cwd=cwd, text=text,
                            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL)
    try:
        stdout, stderr = process.communicate(input=input, timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(process)
        stdout, stderr = process.communicate()
        raise subprocess.TimeoutExpired(process.args, timeout, output=stdout, stderr=stderr)
    check_sanitizer_report(stderr)
    return StowageResult(process.returncode, stdout, stderr)


def spawn_stowage(args, env=None, cwd=None, text=True, stdin=subprocess.DEVNULL,
                  stdout=subprocess.PIPE, stderr=subprocess.PIPE):
    """Start stowage with args and return the Popen, for tests that signal or kill it mid-run.

    stowage runs in its own process group, so os.killpg(process.pid, ...)
    reaches the programs it started as well.
    """
    command = [stowage_binary()] + [str(arg) for arg in args]
    return subprocess.Popen(command, env=stowage_environment(env), cwd=cwd, text=text,
                            stdin=stdin, stdout=stdout, stderr=stderr, start_new_session=True)


def _kill_group(process):
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def assert_no_secret(texts, secrets):
    """Raise AssertionError when any secret occurs in any of texts.

    texts and secrets may be str or bytes, or lists of them. Empty secrets
    are ignored. The message names the text and the secret by index and
    length only, so that the failure output does not spread the secret.
    """
    if isinstance(texts, (str, bytes)):
        texts = [texts]
    if isinstance(secrets, (str, bytes)):
        secrets = [secrets]
    for secret_index, secret in enumerate(secrets):
        if not secret:
            continue
        secret_bytes = secret.encode() if isinstance(secret, str) else secret
        for text_index, text in enumerate(texts):
            if text is None:
                continue
            text_bytes = text.encode(errors="surrogateescape") if isinstance(text, str) else text
            position = text_bytes.find(secret_bytes)
            if position >= 0:
                raise AssertionError(
                    "secret #%d (%d bytes) appears in text #%d at offset %d"
                    % (secret_index, len(secret_bytes), text_index, position))
