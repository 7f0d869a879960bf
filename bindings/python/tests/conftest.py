"""Fixtures: a real supa-realtime-server on a free loopback port (with PostgreSQL when
DATABASE_URL is set), HS256 tokens, and small deadline-bound helpers."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import queue
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import pytest

ROOT = Path(__file__).resolve().parents[3]
SECRET = "super-secret-jwt-token-with-at-least-32-characters-long"
DEADLINE = 10.0  # seconds; every wait in these tests ends by then


@dataclass
class Server:
    http_url: str  # http://127.0.0.1:PORT
    anon_key: str
    service_key: str
    database_url: Optional[str]

    @property
    def url(self) -> str:
        return self.http_url + "/realtime/v1"


class LineReader:
    """Reads a child's stdout lines on a thread so that waits can have deadlines."""

    def __init__(self, proc: subprocess.Popen):
        self.lines: "queue.Queue[Optional[str]]" = queue.Queue()
        self.seen: List[str] = []

        def pump() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                self.lines.put(line.rstrip("\n"))
            self.lines.put(None)

        threading.Thread(target=pump, daemon=True).start()

    def wait_for(self, pred: Callable[[str], bool], what: str, timeout: float = DEADLINE) -> str:
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out waiting for {what}; got {self.seen}")
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(f"process ended before {what}; got {self.seen}")
            self.seen.append(line)
            if pred(line):
                return line


def serve(*extra: str) -> Any:
    """Runs a server (with the extra command-line options) until the generator is closed."""
    binary = os.environ.get("SUPA_REALTIME_SERVER") or str(
        ROOT / "target" / "debug" / "supa-realtime-server"
    )
    if not Path(binary).exists():
        pytest.fail(f"{binary} not found: run `cargo build -p supa-realtime-server`")
    db = os.environ.get("DATABASE_URL") or None
    args = [binary, "--listen", "127.0.0.1:0", *extra]
    if db:
        # A temporary replication slot: test servers leave nothing behind in the database.
        args += ["--database-url", db, "--temporary-slot"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    out = LineReader(proc)
    http = out.wait_for(lambda l: l.startswith("listening on "), "listening line")
    anon = out.wait_for(lambda l: l.startswith("anon key: "), "anon key line")
    service = out.wait_for(lambda l: l.startswith("service_role key: "), "service key line")
    yield Server(
        http_url=http.removeprefix("listening on ").strip(),
        anon_key=anon.removeprefix("anon key: ").strip(),
        service_key=service.removeprefix("service_role key: ").strip(),
        database_url=db,
    )
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="session")
def server() -> Server:
    yield from serve()


@pytest.fixture(scope="module")
def roomy_server() -> Server:
    """A server that queues up to 100,000 frames per socket before it drops the socket as
    too slow (default 4,096): for bursts into a client whose debug-built network thread,
    sharing the machine's cores with the sender, may read slower than the sender writes.
    What such a test is about is the client's own queue, not the server's slow-consumer limit."""
    yield from serve("--outbound-queue", "100000")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign_token(claims: Dict[str, Any]) -> str:
    """An HS256 JWT signed with the server's (default) secret."""
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = _b64(json.dumps(claims).encode())
    sig = hmac.new(SECRET.encode(), f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{_b64(sig)}"


def user_token(sub: str, expires_in: int = 3600) -> str:
    return sign_token({"role": "authenticated", "sub": sub, "exp": int(time.time()) + expires_in})


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def run(coro: Any) -> Any:
    """Runs a test coroutine with an overall deadline."""

    async def bounded() -> Any:
        return await asyncio.wait_for(coro, 60)

    return asyncio.run(bounded())


async def until(pred: Callable[[], bool], what: str, timeout: float = DEADLINE) -> None:
    """Polls a condition that callbacks (on the dispatch thread) make true."""
    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


class Peer:
    """The official Python client in a child process (realtime_py_peer.py), on one channel."""

    def __init__(self, server: Server, name: str, command: str, n: int = 0):
        import sys

        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("realtime_py_peer.py")),
             server.url, server.anon_key, name, command, str(n)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.out = LineReader(self.proc)

    def __enter__(self) -> "Peer":
        return self

    def __exit__(self, *exc: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=DEADLINE)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def psql(database_url: str, sql: str) -> None:
    subprocess.run(
        ["psql", database_url, "-v", "ON_ERROR_STOP=1", "-q", "-c", sql],
        check=True,
        capture_output=True,
        timeout=30,
    )
