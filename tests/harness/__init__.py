"""Test harness: real PostgreSQL, moto_server and a fault-injecting proxy on loopback.

Integration tests in tests/integration import it with:

    import os, sys; sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    from harness import PostgresCluster, MotoServer, FaultProxy, run_stowage

Every server the harness starts listens on 127.0.0.1 only, on a port taken
by binding to port 0, and is stopped when its context manager exits, at
interpreter exit, or (for direct children) when the test process dies.

Importing the package sets AWS_EC2_METADATA_DISABLED=true in this process,
so that no boto3 client created by a test can reach the instance metadata
address.
"""

import atexit
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid

os.environ["AWS_EC2_METADATA_DISABLED"] = "true"

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Environment variable that marks every server process started by the
# harness. test.sh sets STOWAGE_TEST_RUN_ID and looks for it after ctest to
# report servers that a test left running.
TAG_VARIABLE = "STOWAGE_TEST_TAG"
RUN_ID_VARIABLE = "STOWAGE_TEST_RUN_ID"

_PROXY_VARIABLES = {
    "http_proxy", "https_proxy", "all_proxy", "no_proxy", "ftp_proxy",
}


def free_port():
    """Return a TCP port on 127.0.0.1 that was free a moment ago.

    The port is released before the caller binds it, so another process can
    take it in between. Servers started by the harness retry with a new port
    when their bind fails.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_is_open(port, host="127.0.0.1"):
    """Return True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def clean_environment(extra=None):
    """Return a copy of os.environ without AWS, libpq and proxy settings.

    Host settings such as AWS_PROFILE, PGPASSWORD or http_proxy must not leak
    into a test. AWS_EC2_METADATA_DISABLED=true is always set; values in
    extra are applied last.
    """
    env = {}
    for name, value in os.environ.items():
        if name.startswith("AWS_") or name.startswith("PG"):
            continue
        if name.lower() in _PROXY_VARIABLES:
            continue
        env[name] = value
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    if extra:
        env.update(extra)
    return env


def new_tag():
    """Return a unique value for TAG_VARIABLE."""
    return uuid.uuid4().hex


def tagged_processes(tag, variable=TAG_VARIABLE):
    """Return the ids of live processes whose environment has variable=tag.

    Reads /proc/PID/environ, so as a non-root user it sees only that user's
    processes.
    """
    needle = ("%s=%s" % (variable, tag)).encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/environ" % entry, "rb") as handle:
                variables = handle.read().split(b"\0")
        except OSError:
            continue
        if needle in variables and _is_alive(int(entry)):
            found.append(int(entry))
    return found


# File in each server directory naming the test process that owns it.
OWNER_FILE = "harness-owner"


def _process_start_time(pid):
    """Return the start time of a process (clock ticks since boot), or None when it does not exist."""
    try:
        with open("/proc/%d/stat" % pid) as handle:
            return handle.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def process_exists(pid):
    """Return True when a process with this id exists and is not a zombie."""
    return _is_alive(pid)


def mark_owner(directory):
    """Record the current process (id and start time) as the owner of a server directory."""
    with open(os.path.join(directory, OWNER_FILE), "w") as handle:
        handle.write("%d %s\n" % (os.getpid(), _process_start_time(os.getpid())))


def forget_owner(directory):
    """Remove the owner record, so that remove_stale_directories leaves a kept directory alone."""
    try:
        os.unlink(os.path.join(directory, OWNER_FILE))
    except FileNotFoundError:
        pass


def remove_stale_directories(base, prefix, is_idle=None):
    """Delete the server directories under base whose owning test process has exited.

    A test process killed by a ctest timeout cannot delete its directories,
    so the next harness run does. Directories without an owner record are
    kept; is_idle(directory), when given, must also return True.
    """
    try:
        entries = os.listdir(base)
    except OSError:
        return
    for entry in entries:
        if not entry.startswith(prefix):
            continue
        directory = os.path.join(base, entry)
        try:
            with open(os.path.join(directory, OWNER_FILE)) as handle:
                pid, start_time = handle.read().split()
        except (OSError, ValueError):
            continue
        if _process_start_time(int(pid)) == start_time:
            continue
        if is_idle is not None and not is_idle(directory):
            continue
        shutil.rmtree(directory, ignore_errors=True)


def _is_alive(pid):
    """Return False for a process that has exited but is still a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as handle:
            state = handle.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def die_with_parent_prefix(signal_name):
    """Return a command prefix that sends signal_name to the child when the test process dies.

    setpriv (util-linux) sets PR_SET_PDEATHSIG and then executes the
    command, so a server started this way stops even when ctest kills the
    test with SIGKILL. The signal follows the thread that started the child,
    so start servers from the main thread or from a thread that outlives them.
    """
    return ["setpriv", "--pdeathsig", signal_name, "--"]


def stop_process(process, first_signal=signal.SIGTERM, timeout=20.0):
    """Send first_signal to a Popen, wait up to timeout seconds, then SIGKILL it."""
    if process.poll() is not None:
        return process.returncode
    try:
        process.send_signal(first_signal)
    except ProcessLookupError:
        pass
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait(10)


def wait_until(predicate, timeout, interval=0.05, description="condition"):
    """Call predicate until it returns a true value, or raise TimeoutError after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError("timed out after %.0f s waiting for %s" % (timeout, description))
        time.sleep(interval)


def processes_in(directory):
    """Return the pids of live (not zombie) processes whose working directory is in directory.

    A PostgreSQL postmaster and its children run in their data directory, so
    this finds a server left running in a scratch or test directory.
    """
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cwd = os.readlink("/proc/%s/cwd" % entry)
            with open("/proc/%s/stat" % entry) as handle:
                state = handle.read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z" and (cwd == directory or cwd.startswith(directory + "/")):
            found.append(int(entry))
    return found


def tail(path, lines=40):
    """Return the last lines of a text file, or a note that it cannot be read."""
    try:
        with open(path, errors="replace") as handle:
            return "".join(handle.readlines()[-lines:])
    except OSError as error:
        return "(cannot read %s: %s)" % (path, error)


_live_servers = []
_live_servers_lock = threading.Lock()


def register_server(server, close):
    """Remember a started server so that interpreter exit calls close() if the test did not.

    unittest does not call tearDownClass when setUpClass fails, so a server
    started there is stopped and its directory deleted only here.
    """
    with _live_servers_lock:
        _live_servers.append((server, close))


def unregister_server(server):
    with _live_servers_lock:
        _live_servers[:] = [entry for entry in _live_servers if entry[0] is not server]


@atexit.register
def _close_live_servers():
    with _live_servers_lock:
        entries = list(reversed(_live_servers))
    for server, close in entries:
        try:
            close()
        except Exception as error:  # keep closing the others
            print("harness: closing %r at exit failed: %s" % (server, error))


# The submodules import the helpers above, so they are imported last.
from .postgres import PostgresCluster  # noqa: E402
from .moto import MotoServer  # noqa: E402
from .faultproxy import FaultProxy, RequestRecord, Rule  # noqa: E402
from .stowage import (  # noqa: E402
    StowageResult, assert_no_secret, run_stowage, spawn_stowage, stowage_binary,
)

__all__ = [
    "REPO_ROOT", "PostgresCluster", "MotoServer", "FaultProxy", "RequestRecord", "Rule",
    "StowageResult", "run_stowage", "spawn_stowage", "stowage_binary", "assert_no_secret",
    "free_port", "port_is_open", "clean_environment", "tagged_processes",
]
