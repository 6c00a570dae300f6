"""A private redis-server for one run: loopback only, a free port, a generated password,
and no way to outlive the process that started it."""

from __future__ import annotations

import atexit
import ctypes
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

_STARTUP_TIMEOUT_S = 10.0
_SHUTDOWN_TIMEOUT_S = 5.0
# A free port can be taken by someone else between our probe and redis-server's bind.
_PORT_ATTEMPTS = 5
_POLL_S = 0.05
_LOG_TAIL_LINES = 20
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


class EmbeddedRedisError(RuntimeError):
    """redis-server could not be started; the message carries the tail of its log."""


class EmbeddedRedis:
    """Runs ``redis-server`` as a child process for as long as this object is open.

    The server listens on 127.0.0.1 only, on a port picked free at start, behind a
    password generated per instance. It persists nothing unless ``append_only`` (then an
    AOF in ``workdir``, so a restarted server with the same workdir has the same data).
    The child is killed with its parent even on SIGKILL (``PR_SET_PDEATHSIG``; note this
    fires when the *thread* that called :meth:`start` exits, so start it from a thread
    that lives as long as the run, normally the main one).
    """

    def __init__(self, workdir: str | Path, *, append_only: bool) -> None:
        self.workdir = Path(workdir).resolve()
        self.append_only = append_only
        self.password = secrets.token_urlsafe(24)
        self.port: int | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("EmbeddedRedis has not been started")
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def log_path(self) -> Path:
        return self.workdir / "redis.log"

    def start(self) -> EmbeddedRedis:
        if self._process is not None:
            raise RuntimeError(f"EmbeddedRedis is already running on port {self.port}")
        binary = shutil.which("redis-server")
        if binary is None:
            raise EmbeddedRedisError("redis-server is not on PATH (Debian package: redis-server)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        for _ in range(_PORT_ATTEMPTS):
            port = _free_port()
            process = self._launch(binary, port)
            if self._wait_until_serving(process, port):
                self.port, self._process = port, process
                atexit.register(self.close)
                return self
        raise EmbeddedRedisError(f"redis-server found no free port in {_PORT_ATTEMPTS} attempts{self._log_tail()}")

    def close(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after a timeout); safe to call twice."""
        atexit.unregister(self.close)
        if self._process is not None:
            _stop(self._process)
            self._process = None

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _launch(self, binary: str, port: int) -> subprocess.Popen[bytes]:
        # The password goes into a private config file, not argv, where `ps` would show it.
        config = self.workdir / "redis.conf"
        _write_private(config, self._config_text(port))
        with open(self.log_path, "wb") as log:
            return subprocess.Popen(
                [binary, str(config)],
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent(os.getpid()),
                # Its own session: a Ctrl-C in the terminal reaches the run, which then
                # shuts the server down after its last writes, instead of killing it first.
                start_new_session=True,
            )

    def _config_text(self, port: int) -> str:
        workdir = str(self.workdir).replace("\\", "\\\\").replace('"', '\\"')
        return "\n".join(
            [
                "bind 127.0.0.1",
                f"port {port}",
                "protected-mode yes",
                f"requirepass {self.password}",
                f'dir "{workdir}"',
                'save ""',
                f"appendonly {'yes' if self.append_only else 'no'}",
                "daemonize no",
                "",
            ]
        )

    def _wait_until_serving(self, process: subprocess.Popen[bytes], port: int) -> bool:
        """True once our server answers; False if its port turned out to be taken."""
        client = redis.Redis(
            host="127.0.0.1",
            port=port,
            password=self.password,
            socket_connect_timeout=_POLL_S * 10,
            socket_timeout=_POLL_S * 10,
            retry=Retry(NoBackoff(), 0),
        )
        deadline = time.monotonic() + _STARTUP_TIMEOUT_S
        try:
            while time.monotonic() < deadline:
                if process.poll() is not None:
                    if "Address already in use" in self._log_tail():
                        return False
                    raise EmbeddedRedisError(f"redis-server exited with code {process.returncode}{self._log_tail()}")
                try:
                    # Whoever else holds a colliding port does not have our process id.
                    if client.info("server")["process_id"] == process.pid:
                        return True
                except redis.RedisError:
                    pass
                time.sleep(_POLL_S)
        finally:
            client.close()
        _stop(process)
        raise EmbeddedRedisError(
            f"redis-server did not answer on 127.0.0.1:{port} within {_STARTUP_TIMEOUT_S:g} s{self._log_tail()}"
        )

    def _log_tail(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()[-_LOG_TAIL_LINES:]
        except OSError as err:
            return f"; its log {self.log_path} is unreadable: {err}"
        return f"; last lines of {self.log_path}:\n" + "\n".join(lines)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # the mode above only applies when the file is new
    with os.fdopen(fd, "w") as file:
        file.write(text)


def _die_with_parent(parent_pid: int) -> Callable[[], None]:
    """A preexec_fn asking the kernel to SIGTERM the child when its parent dies."""
    libc = ctypes.CDLL(None, use_errno=True)  # loaded here: a preexec_fn should not load libraries

    def set_parent_death_signal() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        # If the parent died before prctl took effect, no signal will ever come.
        if os.getppid() != parent_pid:
            os._exit(1)

    return set_parent_death_signal


def _stop(process: subprocess.Popen[bytes]) -> None:
    # redis-server exits cleanly on SIGTERM: it flushes the AOF and, with `save ""`,
    # writes no snapshot, so this is SHUTDOWN NOSAVE without needing a connection.
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(_SHUTDOWN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
