"""A real ``redis-server`` on a free loopback port, for tests and benchmarks (no persistence).

Started with :meth:`RedisServer.start`, ready when it answers PING (polled against a deadline,
never a fixed sleep), stopped with :meth:`stop`; :meth:`start` again brings it back on the same
port (an empty server, as after a restart without persistence).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from tests.ports import free_port

__all__ = ["RedisServer", "emptied", "redis_keys", "redis_server_binary"]


def redis_server_binary() -> str | None:
    """The ``redis-server`` executable, if installed (Debian: /usr/bin/redis-server)."""
    return shutil.which("redis-server") or next(
        (p for p in ("/usr/bin/redis-server", "/usr/sbin/redis-server") if Path(p).is_file()), None)


class RedisServer:
    """One redis-server process on 127.0.0.1 (``url``: ``redis://127.0.0.1:PORT/0``)."""

    def __init__(self, binary: str, *, password: str | None = None) -> None:
        self.binary = binary
        self.port = free_port()
        self.password = password
        self._dir = tempfile.mkdtemp(prefix="kosmo-redis-")
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self, deadline: float = 20.0) -> RedisServer:
        command = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                   "--dir", self._dir, "--daemonize", "no", "--loglevel", "warning"]
        if self.password:
            command += ["--requirepass", self.password]
        self._process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self._wait_ready(time.monotonic() + deadline)
        return self

    def _wait_ready(self, deadline: float) -> None:
        import redis

        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5, socket_timeout=0.5)
        try:
            while True:
                assert self._process is not None
                if self._process.poll() is not None:
                    error = self._process.stderr.read().decode(errors="replace") if self._process.stderr else ""
                    raise RuntimeError(f"redis-server exited with {self._process.returncode}: {error.strip()[:500]}")
                try:
                    if client.ping():
                        return
                except redis.RedisError:
                    if time.monotonic() > deadline:
                        self.stop()
                        raise RuntimeError(f"redis-server on port {self.port} did not answer PING in time") from None
                    time.sleep(0.01)  # polling interval while waiting for the server's PONG, not synchronisation
        finally:
            client.close()

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        if process is not None and process.stderr is not None:
            process.stderr.close()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def emptied(server: RedisServer) -> str:
    """``server``'s URL, its database emptied first (each test starts from no keys)."""
    import redis

    client = redis.Redis.from_url(server.url)
    client.flushdb()
    client.close()
    return server.url


def redis_keys(url: str) -> list[bytes]:
    """Every key the Redis at ``url`` holds."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        return list(client.scan_iter("*"))
    finally:
        client.close()
