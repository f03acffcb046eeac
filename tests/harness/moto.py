"""moto_server on loopback: S3, RDS, STS, KMS and IAM on one port.

    with MotoServer(extra_env={"S3_UPLOAD_PART_MIN_SIZE": "1024"}) as moto:
        moto.create_bucket("backups")
        s3 = moto.client("s3")
        moto.aws("s3", "ls", "s3://backups")
        run_stowage([...], env=moto.env())

Facts about moto 5.2 that tests rely on:
- POST /moto-api/reset wipes all state but not the remaining count of
  unauthenticated requests: call reset_auth() again after reset() when a
  test needs signature checking.
- GET /moto-api/data.json does not use up one of the unauthenticated
  requests allowed by INITIAL_NO_AUTH_ACTION_COUNT, so it is the readiness
  probe.
"""

import http.client
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import boto3
import botocore.config

from . import (
    RUN_ID_VARIABLE, TAG_VARIABLE, clean_environment, die_with_parent_prefix, free_port, mark_owner,
    new_tag, register_server, remove_stale_directories, stop_process, tail, unregister_server,
)

ACCESS_KEY_ID = "testing"
SECRET_ACCESS_KEY = "testing"
DEFAULT_REGION = "us-east-1"
DIRECTORY_PREFIX = "stowage-moto-"


class MotoError(RuntimeError):
    """moto_server or awscli failed; the message includes their output."""


def moto_server_command():
    """Return the moto_server program of the Python running the tests, else the one on PATH.

    The first is the same moto that the tests import, and it avoids the
    start-up cost of a pyenv shim.
    """
    beside_python = os.path.join(os.path.dirname(sys.executable), "moto_server")
    if os.access(beside_python, os.X_OK):
        return beside_python
    found = shutil.which("moto_server")
    if found is None:
        raise MotoError("moto_server not found on PATH; it is installed with moto[server]")
    return found


class MotoServer:
    """A moto_server process on 127.0.0.1 and a free port.

    extra_env is added to moto's environment, for example
    {"S3_UPLOAD_PART_MIN_SIZE": "1024"} or {"INITIAL_NO_AUTH_ACTION_COUNT": "3"}.
    region is the default for client(), aws(), create_bucket() and env().
    """

    def __init__(self, extra_env=None, region=DEFAULT_REGION, start_timeout=60):
        self.extra_env = dict(extra_env or {})
        self.region = region
        self.start_timeout = start_timeout
        self.host = "127.0.0.1"
        self.port = None
        self.tag = new_tag()
        self.directory = None
        self._process = None
        self._log_handle = None

    def __repr__(self):
        return "MotoServer(port=%s)" % self.port

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, exc_type, exc, traceback):
        self.stop()
        return False

    @property
    def endpoint(self):
        """Base URL of the server, http://127.0.0.1:PORT."""
        return "http://%s:%d" % (self.host, self.port)

    @property
    def log_path(self):
        return os.path.join(self.directory, "moto.log")

    @property
    def pid(self):
        return self._process.pid if self.is_running() else None

    def is_running(self):
        return self._process is not None and self._process.poll() is None

    def start(self):
        """Start moto_server and return once it responds to HTTP requests; on failure, stop it and raise."""
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self):
        # The directory contains the log and moto's spooled uploads (TMPDIR).
        remove_stale_directories(tempfile.gettempdir(), DIRECTORY_PREFIX)
        self.directory = tempfile.mkdtemp(prefix=DIRECTORY_PREFIX)
        mark_owner(self.directory)
        env = clean_environment({TAG_VARIABLE: self.tag, "TMPDIR": self.directory})
        if os.environ.get(RUN_ID_VARIABLE):
            env[RUN_ID_VARIABLE] = os.environ[RUN_ID_VARIABLE]
        env.update(self.extra_env)
        self._log_handle = open(self.log_path, "ab")

        # A bind failure means another process took the port: retry with a new one.
        for attempt in range(5):
            self.port = free_port()
            command = die_with_parent_prefix("SIGTERM") + [
                moto_server_command(), "-H", self.host, "-p", str(self.port)]
            self._process = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL,
                                             stdout=self._log_handle, stderr=subprocess.STDOUT,
                                             start_new_session=True)
            if self._wait_until_ready():
                register_server(self, self.stop)
                return
        raise MotoError("moto_server could not bind a free port after 5 attempts:\n%s" % tail(self.log_path))

    def _wait_until_ready(self):
        """Return True once the server responds, False when it exited because the port was taken."""
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                log = tail(self.log_path)
                self._process = None
                if "Address already in use" in log:
                    return False
                raise MotoError("moto_server exited during start-up:\n%s" % log)
            try:
                status, _ = self.request("GET", "/moto-api/data.json", timeout=2)
                if status == 200:
                    return True
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise MotoError("moto_server did not respond within %d s:\n%s" % (self.start_timeout, tail(self.log_path)))

    def stop(self):
        """Stop the server (SIGTERM, then SIGKILL after 10 s) and delete its directory."""
        unregister_server(self)
        if self._process is not None:
            stop_process(self._process, signal.SIGTERM, timeout=10)
            self._process = None
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None

    # Control API -----------------------------------------------------------

    def request(self, method, path, body=None, headers=None, timeout=30):
        """Send one plain HTTP request to the server; return (status, body bytes)."""
        connection = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def reset(self):
        """Wipe all state of every service (POST /moto-api/reset)."""
        status, body = self.request("POST", "/moto-api/reset")
        if status != 200:
            raise MotoError("moto reset failed with HTTP %d: %r" % (status, body[:300]))

    def reset_auth(self, count):
        """Switch signature checking on after count more unauthenticated requests ("inf" switches it off)."""
        status, body = self.request("POST", "/moto-api/reset-auth", body=str(count).encode(),
                                    headers={"Content-Type": "text/plain"})
        if status != 200:
            raise MotoError("moto reset-auth failed with HTTP %d: %r" % (status, body[:300]))

    # Clients ---------------------------------------------------------------

    def client(self, service, region=None, endpoint_url=None, access_key=ACCESS_KEY_ID,
               secret_key=SECRET_ACCESS_KEY, session_token=None, retries=None, **config):
        """Return a boto3 client for service on this server (or on endpoint_url, such as a FaultProxy).

        retries is botocore's retry setting. In it max_attempts counts the
        retries after the first attempt, so {"max_attempts": 0, "mode":
        "standard"} shows the first error.
        Other keyword arguments go to botocore.config.Config.
        """
        session = boto3.session.Session(aws_access_key_id=access_key, aws_secret_access_key=secret_key,
                                        aws_session_token=session_token,
                                        region_name=region or self.region)
        config.setdefault("s3", {"addressing_style": "path"})
        if retries is not None:
            config["retries"] = retries
        return session.client(service, endpoint_url=endpoint_url or self.endpoint,
                              config=botocore.config.Config(**config))

    def env(self, region=None, endpoint_url=None):
        """Return the environment that points stowage (or any AWS SDK) at this server."""
        region = region or self.region
        return {
            "AWS_ENDPOINT_URL": endpoint_url or self.endpoint,
            "AWS_REGION": region,
            "AWS_DEFAULT_REGION": region,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def cli_environment(self, region=None):
        """Return the environment for awscli: the host's, without its AWS and proxy settings and config files."""
        env = clean_environment(self.env(region))
        # The host's ~/.aws files must not change what the tests see.
        env["AWS_CONFIG_FILE"] = os.devnull
        env["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
        env["AWS_DEFAULT_OUTPUT"] = "json"
        env["AWS_PAGER"] = ""
        return env

    def aws(self, *args, region=None, input=None, check=True, timeout=120, endpoint_url=None):
        """Run awscli against this server; return the CompletedProcess (text output).

        Raises MotoError on a non-zero exit when check is true.
        """
        command = ["aws", "--endpoint-url", endpoint_url or self.endpoint,
                   "--region", region or self.region] + list(args)
        result = subprocess.run(command, input=input, env=self.cli_environment(region),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                timeout=timeout)
        if check and result.returncode != 0:
            raise MotoError("%s failed with exit code %d:\n%s%s"
                            % (" ".join(command), result.returncode, result.stdout, result.stderr))
        return result

    def create_bucket(self, name, region=None, **kwargs):
        """Create an S3 bucket in region (default: the server's region); extra arguments go to CreateBucket."""
        region = region or self.region
        if region != "us-east-1":
            kwargs.setdefault("CreateBucketConfiguration", {"LocationConstraint": region})
        self.client("s3", region=region).create_bucket(Bucket=name, **kwargs)
        return name
