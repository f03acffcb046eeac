"""Throwaway PostgreSQL 15 clusters in temporary directories.

    with PostgresCluster() as pg:
        pg.createdb("shop")
        pg.pgbench_init(scale=1, db="shop")
        print(pg.conninfo("shop"), pg.psql("SELECT count(*) FROM pgbench_accounts", db="shop"))

PostgreSQL refuses to run as root, so as root the server runs as the
`postgres` system user (or `stowage-test`, created when `postgres` does not
exist) in a directory that user owns. Client tools (psql, pgbench) run as the
calling user and connect over TCP to 127.0.0.1.

main() starts a cluster, runs one command with the connection in its
environment and stops the cluster again (scripts/demo.sh uses it):

    PYTHONPATH=tests python3 -c 'import sys; from harness.postgres import main; sys.exit(main())' \
        --db demo --pgbench-scale 1 -- COMMAND [ARG...]

(python3 -m harness.postgres works too, with a RuntimeWarning from runpy
because the package imports this module first.)
"""

import argparse
import os
import pwd
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time

from . import (
    RUN_ID_VARIABLE, TAG_VARIABLE, clean_environment, die_with_parent_prefix, forget_owner, free_port,
    mark_owner, new_tag, process_exists, register_server, remove_stale_directories, stop_process, tail,
    unregister_server,
)

DEFAULT_BIN_DIR = "/usr/lib/postgresql/15/bin"
DIRECTORY_PREFIX = "stowage-pg-"
FALLBACK_SERVER_USER = "stowage-test"

# Durability is pointless for a cluster that is deleted after the test.
FAST_SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
}


class PostgresError(RuntimeError):
    """A PostgreSQL tool failed; the message includes its output."""


class PostgresCluster:
    """A PostgreSQL server on 127.0.0.1 with its data in a temporary directory.

    superuser is the role that initdb creates. Without a password every
    connection is trusted. With a password, TCP connections must
    authenticate with scram-sha-256 while the socket in the temporary
    directory stays trusted. settings are extra server parameters
    (name -> value). keep=True, or STOWAGE_KEEP_TMP=1 in the environment,
    leaves the directory in place for inspection.
    """

    def __init__(self, superuser="postgres", password=None, settings=None,
                 bin_dir=None, base_dir=None, keep=None, start_timeout=60):
        self.superuser = superuser
        self.password = password
        self.settings = dict(FAST_SETTINGS)
        self.settings.update(settings or {})
        self.bin_dir = bin_dir or os.environ.get("STOWAGE_PG_BIN_DIR", DEFAULT_BIN_DIR)
        self.base_dir = base_dir or tempfile.gettempdir()
        self.keep = keep if keep is not None else os.environ.get("STOWAGE_KEEP_TMP") == "1"
        self.start_timeout = start_timeout
        self.host = "127.0.0.1"
        self.port = None
        self.directory = None
        self.tag = new_tag()
        self._process = None
        self._log_handle = None
        self._server_user = None

    def __repr__(self):
        return "PostgresCluster(port=%s, directory=%s)" % (self.port, self.directory)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, exc_type, exc, traceback):
        self.close()
        return False

    # Paths -----------------------------------------------------------------

    @property
    def data_dir(self):
        return os.path.join(self.directory, "data")

    @property
    def socket_dir(self):
        return self.directory

    @property
    def log_path(self):
        return os.path.join(self.directory, "server.log")

    def tool(self, name):
        """Return the path of a PostgreSQL program (psql, pg_dump, pgbench, ...)."""
        path = os.path.join(self.bin_dir, name)
        if not os.access(path, os.X_OK):
            raise PostgresError("%s not found; run scripts/install-deps.sh to install PostgreSQL 15" % path)
        return path

    # Connection strings ----------------------------------------------------

    def conninfo(self, db="postgres", user=None):
        """Return a libpq keyword/value connection string for db."""
        parts = ["host=%s" % self.host, "port=%d" % self.port,
                 "user=%s" % (user or self.superuser), "dbname=%s" % db]
        return " ".join(parts)

    def uri(self, db="postgres", user=None):
        """Return a postgresql:// connection URI for db."""
        return "postgresql://%s@%s:%d/%s" % (user or self.superuser, self.host, self.port, db)

    def env(self, db="postgres", user=None):
        """Return PGHOST, PGPORT, PGUSER, PGDATABASE (and PGPASSWORD when set) for a child process."""
        variables = {
            "PGHOST": self.host,
            "PGPORT": str(self.port),
            "PGUSER": user or self.superuser,
            "PGDATABASE": db,
        }
        if self.password is not None:
            variables["PGPASSWORD"] = self.password
        return variables

    # Lifecycle -------------------------------------------------------------

    def start(self):
        """Create the directory, run initdb and start the server; return once it accepts connections.

        On failure the server is stopped and the directory deleted before the
        exception propagates.
        """
        try:
            self._start()
        except BaseException:
            self.stop()
            self.cleanup()
            raise

    def _start(self):
        self._server_user = _pick_server_user()
        remove_stale_directories(self.base_dir, DIRECTORY_PREFIX, _server_stopped)
        self.directory = tempfile.mkdtemp(prefix=DIRECTORY_PREFIX, dir=self.base_dir)
        mark_owner(self.directory)
        register_server(self, self.close)
        if self._server_user is not None:
            _check_traversable(self.directory, self._server_user)
            os.chown(self.directory, self._server_user.pw_uid, self._server_user.pw_gid)
        self._initdb()

        # Another process can take the port between free_port() and the
        # server's bind, so a bind failure is retried with a new port.
        for attempt in range(5):
            self.port = free_port()
            if self._start_server():
                return
        raise PostgresError("PostgreSQL could not bind a free port after 5 attempts:\n%s" % tail(self.log_path))

    def stop(self):
        """Stop the server with a fast shutdown (SIGINT), escalating to SIGKILL after 30 s."""
        if self._process is not None:
            stop_process(self._process, signal.SIGINT, timeout=30)
            self._process = None
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None

    def close(self):
        """Stop the server and delete its directory (what leaving the context does)."""
        self.stop()
        self.cleanup()

    def cleanup(self):
        """Delete the temporary directory unless keep is set."""
        unregister_server(self)
        if self.directory is None:
            return
        if self.keep:
            forget_owner(self.directory)
            print("PostgresCluster: kept %s" % self.directory, file=sys.stderr)
        else:
            shutil.rmtree(self.directory, ignore_errors=True)
        self.directory = None

    def is_running(self):
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self):
        """Process id of the postmaster, or None when it is not running."""
        return self._process.pid if self.is_running() else None

    def _run_as_server_user(self, command, **kwargs):
        kwargs.setdefault("cwd", self.directory)
        env = clean_environment({"HOME": self.directory, "LC_ALL": "C.UTF-8"})
        if self._server_user is not None:
            kwargs.update(user=self._server_user.pw_uid, group=self._server_user.pw_gid,
                          extra_groups=[])
            env["USER"] = env["LOGNAME"] = self._server_user.pw_name
        return subprocess.run(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, **kwargs)

    def _initdb(self):
        command = [self.tool("initdb"), "-D", self.data_dir, "-U", self.superuser,
                   "-E", "UTF8", "--locale=C.UTF-8", "--no-sync", "--no-instructions",
                   "--auth-local=trust"]
        password_file = None
        if self.password is not None:
            password_file = os.path.join(self.directory, "initdb-password")
            with open(password_file, "w") as handle:
                handle.write(self.password + "\n")
            os.chmod(password_file, 0o600)
            if self._server_user is not None:
                os.chown(password_file, self._server_user.pw_uid, self._server_user.pw_gid)
            command += ["--auth-host=scram-sha-256", "--pwfile", password_file]
        else:
            command += ["--auth-host=trust"]
        try:
            result = self._run_as_server_user(command, timeout=120)
        finally:
            if password_file is not None:
                os.unlink(password_file)
        if result.returncode != 0:
            raise PostgresError("initdb failed with exit code %d:\n%s" % (result.returncode, result.stdout))

    def _start_server(self):
        """Start postgres in the foreground as a child; return False when its port was taken.

        The server is a direct child started through setpriv --pdeathsig
        rather than through pg_ctl start, whose daemonised postmaster would
        outlive a test process killed by a ctest timeout.
        """
        options = dict(self.settings)
        options.update({
            "listen_addresses": self.host,
            "port": str(self.port),
            "unix_socket_directories": self.socket_dir,
        })
        command = die_with_parent_prefix("SIGINT") + [self.tool("postgres"), "-D", self.data_dir]
        for name, value in options.items():
            command += ["-c", "%s=%s" % (name, value)]

        env = clean_environment({"HOME": self.directory, "LC_ALL": "C.UTF-8", TAG_VARIABLE: self.tag})
        if os.environ.get(RUN_ID_VARIABLE):
            env[RUN_ID_VARIABLE] = os.environ[RUN_ID_VARIABLE]
        user_options = {}
        if self._server_user is not None:
            user_options = dict(user=self._server_user.pw_uid, group=self._server_user.pw_gid,
                                extra_groups=[])
            env["USER"] = env["LOGNAME"] = self._server_user.pw_name

        if self._log_handle is not None:
            self._log_handle.close()
        self._log_handle = open(self.log_path, "ab")
        start_offset = self._log_handle.tell()
        self._process = subprocess.Popen(command, env=env, cwd=self.directory, stdin=subprocess.DEVNULL,
                                         stdout=self._log_handle, stderr=subprocess.STDOUT,
                                         start_new_session=True, **user_options)

        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                log = _read_from(self.log_path, start_offset)
                code = self._process.returncode
                self._process = None
                if "Address already in use" in log:
                    return False
                raise PostgresError("PostgreSQL exited with code %d during start-up:\n%s" % (code, log))
            if self._postmaster_ready():
                return True
            time.sleep(0.05)
        self.stop()
        raise PostgresError("PostgreSQL did not become ready within %d s:\n%s"
                            % (self.start_timeout, tail(self.log_path)))

    def _postmaster_ready(self):
        """Return True when postmaster.pid reports the 'ready' state, as pg_ctl start waits for."""
        try:
            with open(os.path.join(self.data_dir, "postmaster.pid")) as handle:
                lines = handle.read().splitlines()
        except OSError:
            return False
        # Line 8 of postmaster.pid is the postmaster status (PostgreSQL 10 and later).
        return len(lines) >= 8 and lines[7].strip() == "ready"

    # Client tools ----------------------------------------------------------

    def client_environment(self, extra=None):
        """Return the environment for client tools: the host's, without AWS, PG* and proxy settings."""
        env = clean_environment({"PGCONNECT_TIMEOUT": "10"})
        if self.password is not None:
            env["PGPASSWORD"] = self.password
        if extra:
            env.update(extra)
        return env

    def run_tool(self, name, *args, input=None, timeout=300, check=True):
        """Run a PostgreSQL client program with the client environment; return the CompletedProcess.

        Arguments are passed as they are, so include the connection (for
        example -d with conninfo()). Output is text; raises PostgresError on a
        non-zero exit when check is true.
        """
        command = [self.tool(name)] + list(args)
        result = subprocess.run(command, input=input, env=self.client_environment(),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                timeout=timeout)
        if check and result.returncode != 0:
            raise PostgresError("%s failed with exit code %d:\n%s%s"
                                % (" ".join(command), result.returncode, result.stdout, result.stderr))
        return result

    def psql(self, sql, db="postgres", user=None, timeout=300):
        """Run SQL with psql (ON_ERROR_STOP, unaligned, tuples only); return its output without the final newline."""
        result = self.run_tool("psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-A", "-t",
                               "-d", self.conninfo(db, user), "-f", "-",
                               input=sql, timeout=timeout)
        return result.stdout.rstrip("\n")

    def query(self, sql, db="postgres", user=None):
        """Run one query; return its rows as tuples of strings, with None for NULL.

        Rows are split at newlines, so values must not contain newlines.
        """
        null_marker = "\x02NULL\x03"
        result = self.run_tool("psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-A", "-t",
                               "-F", "\x1f", "-P", "null=%s" % null_marker,
                               "-d", self.conninfo(db, user), "-c", sql)
        rows = []
        for line in result.stdout.split("\n")[:-1]:
            rows.append(tuple(None if field == null_marker else field for field in line.split("\x1f")))
        return rows

    def createdb(self, name, owner=None):
        """Create a database (template0, UTF8)."""
        args = ["-h", self.host, "-p", str(self.port), "-U", self.superuser, "-T", "template0", "-E", "UTF8"]
        if owner:
            args += ["-O", owner]
        self.run_tool("createdb", *args, name)

    def pgbench_init(self, scale=1, db="postgres"):
        """Create and fill the pgbench tables (100,000 pgbench_accounts rows per scale unit)."""
        self.run_tool("pgbench", "-i", "-q", "-s", str(scale),
                      "-h", self.host, "-p", str(self.port), "-U", self.superuser, db)


def _pick_server_user():
    """Return the pwd entry to run the server as, or None to run as the current user."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", FALLBACK_SERVER_USER):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            pass
    subprocess.run(["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
                    "--shell", "/usr/sbin/nologin", FALLBACK_SERVER_USER], check=True)
    return pwd.getpwnam(FALLBACK_SERVER_USER)


def _check_traversable(directory, user):
    """Raise PostgresError unless user may enter every parent of directory."""
    groups = set(os.getgrouplist(user.pw_name, user.pw_gid))
    path = os.path.dirname(os.path.abspath(directory))
    while True:
        info = os.stat(path)
        if info.st_uid == user.pw_uid:
            allowed = info.st_mode & stat.S_IXUSR
        elif info.st_gid in groups:
            allowed = info.st_mode & stat.S_IXGRP
        else:
            allowed = info.st_mode & stat.S_IXOTH
        if not allowed:
            raise PostgresError(
                "user %s cannot enter %s, so the server cannot use %s; set TMPDIR to a directory "
                "whose parents all allow others to enter (such as /tmp)" % (user.pw_name, path, directory))
        if path == "/":
            return
        path = os.path.dirname(path)


def _server_stopped(directory):
    """Return True unless postmaster.pid in directory names a live process."""
    try:
        with open(os.path.join(directory, "data", "postmaster.pid")) as handle:
            pid = int(handle.readline())
    except (OSError, ValueError):
        return True
    return not process_exists(pid)


def _read_from(path, offset):
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            return handle.read().decode(errors="replace")
    except OSError as error:
        return "(cannot read %s: %s)" % (path, error)


def main(argv=None):
    """Start a cluster, run one command with the connection in its environment, stop the cluster.

    The command gets PGHOST, PGPORT, PGUSER, PGDATABASE and
    STOWAGE_PG_CONNINFO / STOWAGE_PG_URI for the chosen database. Returns
    the command's exit code.
    """
    parser = argparse.ArgumentParser(prog="harness.postgres", description=main.__doc__)
    parser.add_argument("--db", default="postgres", help="database to create (default: postgres, which exists)")
    parser.add_argument("--pgbench-scale", type=int, default=0,
                        help="fill the database with pgbench tables at this scale (0: none)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="command to run, after --")
    options = parser.parse_args(argv)
    command = options.command[1:] if options.command[:1] == ["--"] else options.command
    if not command:
        parser.error("missing command after --")

    # SIGTERM becomes SystemExit so the context manager stops the server.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    with PostgresCluster() as cluster:
        if options.db != "postgres":
            cluster.createdb(options.db)
        if options.pgbench_scale > 0:
            cluster.pgbench_init(options.pgbench_scale, options.db)
        env = dict(os.environ)
        env.update(cluster.env(options.db))
        env["STOWAGE_PG_CONNINFO"] = cluster.conninfo(options.db)
        env["STOWAGE_PG_URI"] = cluster.uri(options.db)
        return subprocess.call(command, env=env)


if __name__ == "__main__":
    sys.exit(main())
