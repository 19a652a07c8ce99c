"""A throwaway redis-server for tests: free loopback port, temp dir, no persistence.

The binary is $CACHEKIT_REDIS_SERVER or `redis-server` on PATH. Without one the tests that
need it skip, unless CACHEKIT_REQUIRE_REDIS=1 (set by .ci/run), where they fail.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

HOW_TO_GET_ONE = (
    "redis-server not found: install it (apt-get install redis-server, brew install redis) "
    "or set CACHEKIT_REDIS_SERVER=/path/to/redis-server"
)


def find_binary() -> str | None:
    return os.environ.get("CACHEKIT_REDIS_SERVER") or shutil.which("redis-server")


def required() -> bool:
    return os.environ.get("CACHEKIT_REQUIRE_REDIS") == "1"


def require_binary() -> str:
    """The binary, or skip (fail under CACHEKIT_REQUIRE_REDIS=1) with how to get one."""
    binary = find_binary()
    if binary is None:
        if required():
            pytest.fail(HOW_TO_GET_ONE + " (CACHEKIT_REQUIRE_REDIS=1)", pytrace=False)
        pytest.skip(HOW_TO_GET_ONE)
    return binary


def free_port(cluster: bool = False) -> int:
    """A free loopback port; for a cluster node, one whose bus port (+10000) is free too."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if not cluster:
            return port
        if port + 10000 <= 65535:
            with socket.socket() as bus:
                try:
                    bus.bind(("127.0.0.1", port + 10000))
                except OSError:
                    continue
                return port


class RedisServer:
    """One redis-server process; `kill()` and `start()` again keep the same port."""

    def __init__(self, binary: str, cluster: bool = False) -> None:
        self.binary = binary
        self.port = free_port(cluster)
        self.dir = tempfile.mkdtemp(prefix="cachekit-redis-")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, *extra: str) -> None:
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--save", "", "--appendonly", "no", "--dir", self.dir, "--logfile", ""]
        args += extra
        self.process = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=self.dir
        )
        deadline = time.monotonic() + 10
        while not self._answers():
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not answer PING within 10 s")
            time.sleep(0.01)

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL: the server vanishes mid-conversation, as in a crash."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)
