"""A real `infini-qwen3 serve` in a subprocess on a free loopback port, for the conformance suite."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from harness.fixtures.device import TEST_DEVICE
from harness.results import REPO

CACHE = REPO / "build" / "cache"  # the demo checkpoint is built once per checkout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LoopbackServer:
    """A server in a subprocess on a loopback port, ready once GET /health answers 200 (503 while it loads); its
    output goes to log_path. Subclasses give the command line (and the environment and directory it runs in)."""

    name = "the server"

    def __init__(self, log_path: Path, port: int | None = None):
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.health_seen: list[int] = []  # /health statuses while starting: 503 (loading) before 200
        self.process: subprocess.Popen | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def environment(self) -> dict[str, str] | None:
        return None  # the parent's

    def working_dir(self) -> Path | None:
        return None

    def start(self, timeout: float = 600):
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "w")
        self.process = subprocess.Popen(self.command(), env=self.environment(), stdout=self._log,
                                        stderr=subprocess.STDOUT, cwd=self.working_dir())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{self.log()}")
            try:
                status = httpx.get(f"{self.base_url}/health", timeout=2).status_code
                self.health_seen.append(status)
                if status == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.name} did not become ready in {timeout} s:\n{self.log()}")

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if hasattr(self, "_log"):
            self._log.close()


class ServerProcess(LoopbackServer):
    """A real `infini-qwen3 serve` with these options."""

    def __init__(self, *args: str, log_path: Path, device: str = TEST_DEVICE):
        super().__init__(log_path)
        # On the platform harness the server runs on the device under test (INFINI_QWEN3_TEST_DEVICE).
        self.args = ["--port", str(self.port), "--device", device, *args]

    def command(self) -> list[str]:
        return [sys.executable, "-m", "infini_qwen3", "serve", *self.args]

    def environment(self) -> dict[str, str]:
        return dict(os.environ, INFINI_QWEN3_CACHE=str(CACHE), PYTHONUNBUFFERED="1")

    def working_dir(self) -> Path:
        return REPO
