"""The real server for the HTTP benchmarks: uvicorn on 127.0.0.1, one worker, in a subprocess.

    with uvicorn_server("heroes.main:create_app", {"DATABASE_URL": url}) as server:
        server.get("/heroes/1")            # (status, body) over a real socket
        server.download("/heroes/export")  # (status, lines, seconds), the body read and dropped
        server.memory()                    # its VmRSS and VmHWM (peak), from /proc/<pid>/status

Every server is stopped when its block ends, whatever happened inside. The access log is off for
every app alike: it is uvicorn's cost, not the app's.
"""

import http.client
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlencode

from fastapi import FastAPI

from heroes.config import Settings
from heroes.db import create_db_engine
from heroes.main import create_app

HOST = "127.0.0.1"  # loopback only, always
SEARCH_PATH = "HEROES_BENCH_SEARCH_PATH"  # scratch_app: the PostgreSQL schema the tables are in


def lab_on_schema() -> FastAPI:
    """uvicorn factory: `create_app()` on DATABASE_URL, with PostgreSQL's search_path set to
    HEROES_BENCH_SEARCH_PATH (a lesson's scratch schema)."""
    settings = Settings()
    engine = create_db_engine(settings=settings, search_path=os.environ.get(SEARCH_PATH) or None)
    return create_app(settings=settings, engine=engine)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def status_bytes(pid: int, field: str) -> int | None:
    """VmRSS, VmHWM... of a process, in bytes (Linux), or None."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(f"{field}:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def reset_peak(pid: int) -> bool:
    """Linux: reset a process's resident high-water mark (VmHWM) to its resident memory now."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        return True
    except OSError:
        return False


@dataclass
class Server:
    process: subprocess.Popen
    port: int

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def get(self, path: str, params: dict | None = None) -> tuple[int, bytes]:
        """One GET on a fresh connection: (status, body)."""
        connection = http.client.HTTPConnection(HOST, self.port, timeout=60)
        try:
            connection.request("GET", f"{path}?{urlencode(params)}" if params else path)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def download(self, path: str, params: dict | None = None) -> tuple[int, int, float]:
        """GET the whole body, counting its lines and keeping none: (status, lines, seconds)."""
        connection = http.client.HTTPConnection(HOST, self.port, timeout=600)
        buffer = bytearray(1 << 20)
        lines = 0
        try:
            started = time.perf_counter()
            connection.request("GET", f"{path}?{urlencode(params)}" if params else path)
            response = connection.getresponse()
            while read := response.readinto(buffer):
                lines += buffer.count(b"\n", 0, read)
            return response.status, lines, time.perf_counter() - started
        finally:
            connection.close()

    def memory(self) -> tuple[int | None, int | None]:
        """(resident memory now, its high-water mark) of the server process, in bytes."""
        return status_bytes(self.process.pid, "VmRSS"), status_bytes(self.process.pid, "VmHWM")

    def reset_peak(self) -> bool:
        """Reset the server's resident high-water mark, so the next peak is the next request's."""
        return reset_peak(self.process.pid)


@contextmanager
def uvicorn_server(app: str, env: dict[str, str] | None = None, *, ready_path: str = "/") -> Iterator[Server]:
    """`app` ("module:factory") served by uvicorn on 127.0.0.1, one worker, in a subprocess; then stopped."""
    port = _free_port()
    command = [
        sys.executable, "-m", "uvicorn", app, "--factory", "--host", HOST, "--port", str(port),
        "--workers", "1", "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            command, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL, stderr=log
        )
        server = Server(process, port)
        try:
            _wait_until_ready(server, ready_path, log)
            yield server
        finally:
            _stop(process)


def _wait_until_ready(server: Server, path: str, log, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if server.process.poll() is not None:
            log.seek(0)
            output = log.read().decode(errors="replace")[-2000:]
            raise RuntimeError(f"uvicorn exited ({server.process.returncode}):\n{output}")
        try:
            server.get(path)
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not answer on {server.url} in {timeout:.0f} s") from None
            time.sleep(0.05)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)  # uvicorn shuts down gracefully: lifespan, pool disposed
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
