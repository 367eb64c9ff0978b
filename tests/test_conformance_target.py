"""`pytest conformance --base-url URL` against a server this suite did not start: an unreachable URL stops the run
at once with the reason; cases that need this project's own fixtures are skipped, each saying why."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from harness.results import REPO


class ModelsOnly(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's name)
        body = json.dumps({"object": "list", "data": [{"id": "stub", "object": "model", "created": 0,
                                                       "owned_by": "someone"}]}).encode()
        self.send_response(200 if self.path == "/v1/models" else 404)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def run_conformance(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=300)


def test_an_unreachable_target_stops_the_run_with_the_reason():
    run = run_conformance("conformance/test_chat.py", "--base-url", "http://127.0.0.1:9")
    assert run.returncode == 2
    assert "--base-url http://127.0.0.1:9: no OpenAI-compatible server answers there" in run.stdout + run.stderr


def test_cases_bound_to_this_projects_servers_are_skipped_with_the_reason():
    stub = ThreadingHTTPServer(("127.0.0.1", 0), ModelsOnly)
    threading.Thread(target=stub.serve_forever, daemon=True).start()
    try:
        run = run_conformance("conformance/test_control_tokens.py", "conformance/test_text_integrity.py",
                              "--base-url", f"http://127.0.0.1:{stub.server_address[1]}", "--model", "stub")
    finally:
        stub.shutdown()
    assert run.returncode == 0, run.stdout[-3000:]
    assert "passed" not in run.stdout.splitlines()[-1] and "skipped" in run.stdout.splitlines()[-1]
    assert "needs this project's own server (module test_control_tokens)" in run.stdout
    assert "needs this project's own server (fixture scripted)" in run.stdout
