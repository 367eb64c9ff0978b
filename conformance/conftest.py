"""Starts real servers (subprocesses on loopback) on the embedded demo checkpoint for the conformance suite.

`main`: a roomy server (32 running requests, 256-token context, 64 KiB body limit, f32 so that logprobs and
penalties can be checked against transformers token for token) most tests share.
`guarded`: one running request, a queue of one and an API key, for the 429 and 401 cases."""

from __future__ import annotations

import httpx
import openai
import pytest

from .server_process import ServerProcess

MODEL = "qwen3-demo"
API_KEY = "conformance-secret"
ALLOWED_ORIGIN = "http://app.example"  # the main server's only CORS origin


# The main server's options; test_tensor_parallel.py runs the core cases again on the same server with --ndev 2.
MAIN_SERVER_ARGS = ("--max-batch", "32", "--max-model-len", "256", "--max-body-bytes", "65536", "--dtype", "f32",
                    "--allowed-origins", ALLOWED_ORIGIN, "--max-step-tokens", "256")


@pytest.fixture(scope="session")
def rank_args() -> tuple[str, ...]:
    """Serve options that split the model over ranks, for the servers the core test modules start: none here;
    test_tensor_parallel.py runs those modules again with --ndev 2."""
    return ()


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    with ServerProcess(*MAIN_SERVER_ARGS, log_path=tmp_path_factory.mktemp("server") / "main.log") as process:
        yield process


@pytest.fixture(scope="session")
def guarded_server(tmp_path_factory, server):  # after `server`: the demo checkpoint is already built
    with ServerProcess("--max-batch", "1", "--max-queue", "1", "--max-model-len", "4096",
                       "--api-key", API_KEY, log_path=tmp_path_factory.mktemp("server") / "guarded.log") as process:
        yield process


@pytest.fixture(scope="session")
def scripted_server(tmp_path_factory):
    """The scripted checkpoint (harness/fixtures/scripted.py): it answers with a think block and a tool call."""
    from harness.fixtures.scripted import scripted_checkpoint

    with ServerProcess("--model", str(scripted_checkpoint()), "--served-model-name", "scripted",
                       "--max-batch", "4", "--max-model-len", "512",
                       log_path=tmp_path_factory.mktemp("server") / "scripted.log") as process:
        yield process


@pytest.fixture
def scripted(scripted_server):
    return openai.OpenAI(base_url=f"{scripted_server.base_url}/v1", api_key="unused", max_retries=0, timeout=120)


@pytest.fixture
def client(server):
    return openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="unused", max_retries=0, timeout=120)


@pytest.fixture
def async_client(server):
    return openai.AsyncOpenAI(base_url=f"{server.base_url}/v1", api_key="unused", max_retries=0, timeout=120)


@pytest.fixture
def http(server):
    with httpx.Client(base_url=server.base_url, timeout=120) as c:
        yield c


@pytest.fixture(autouse=True)
def server_survives(request):
    """After every test, whatever it sent: the servers it used are alive and healthy."""
    yield
    for name in ("server", "guarded_server", "scripted_server"):
        if name in request.fixturenames:
            process = request.getfixturevalue(name)
            assert process.alive(), f"the server died:\n{process.log()[-4000:]}"
            assert httpx.get(f"{process.base_url}/health", timeout=10).status_code == 200
