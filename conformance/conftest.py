"""Starts real servers (subprocesses on loopback) on the embedded demo checkpoint for the conformance suite; or, with
`--base-url URL [--model NAME] [--api-key KEY]`, runs the protocol-level cases against any OpenAI-compatible
server already running there, skipping (with the reason) those that need this project's own fixtures.

`main`: a roomy server (32 running requests, 256-token context, 64 KiB body limit, f32 so that logprobs and
penalties can be checked against transformers token for token) most tests share.
`guarded`: one running request, a queue of one and an API key, for the 429 and 401 cases."""

from __future__ import annotations

import httpx
import openai
import pytest

from .features import feature_of
from .server_process import ServerProcess

MODEL = "qwen3-demo"  # --model replaces it before the test modules import it (pytest_configure)
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


# With --base-url, what cannot run against someone else's server: fixtures that start servers of this project's
# own (other options or checkpoints) or compare with transformers on its demo checkpoint, and modules about this
# project's own operations (metrics names, logs, shutdown, connection limits, its tokenizer endpoints).
OWN_FIXTURES = {"guarded_server", "scripted_server", "scripted", "paged_server", "uncached_server", "parse_server",
                "single_rank_server", "reference", "transformers_samples", "task_manager"}
OWN_MODULES = {"test_lifecycle", "test_shutdown", "test_connections", "test_paged_kv", "test_tensor_parallel",
               "test_quantized_servers", "test_control_tokens", "test_special_delimiters", "test_lm_eval",
               "test_prefix_cache"}


def pytest_addoption(parser):
    group = parser.getgroup("conformance target")
    group.addoption("--base-url", help="run the protocol-level cases against the OpenAI-compatible server at this "
                    "URL (e.g. http://127.0.0.1:8000) instead of servers this suite starts")
    group.addoption("--model", dest="target_model", help="with --base-url: the model name to send")
    group.addoption("--api-key", dest="target_api_key", help="with --base-url: the bearer key to send")


def pytest_configure(config):
    global MODEL
    config.addinivalue_line("markers", "own_server: the case asserts this suite's own server configuration; "
                                       "skipped with --base-url")
    if config.getoption("target_model", default=None):
        MODEL = config.getoption("target_model")


def external_target(config) -> str | None:
    return config.getoption("base_url", default=None)


def pytest_collection_modifyitems(config, items):
    # The hook sees the whole session's items (unit and parity tests too, when pytest runs everything).
    cases = [item for item in items if item.module.__name__.startswith("conformance.")]
    for item in cases:  # the matrix's row of each case (conformance/features.py), in the JUnit XML
        module = item.module.__name__.rsplit(".", 1)[-1]
        item.user_properties.append(("feature", feature_of(module, getattr(item, "originalname", item.name))))
    if external_target(config) is None:
        return
    for item in cases:
        module = item.module.__name__.rsplit(".", 1)[-1]
        own = sorted(OWN_FIXTURES & set(item.fixturenames))
        if module in OWN_MODULES or own or item.get_closest_marker("own_server"):
            why = f"fixture {own[0]}" if own else "marker own_server" if item.get_closest_marker("own_server") \
                else f"module {module}"
            item.add_marker(pytest.mark.skip(reason=f"needs this project's own server ({why})"))


class ExternalServer:
    """A server this suite did not start: only its URL is known (it is not restarted, and its logs are not read)."""

    def __init__(self, base_url: str, api_key: str | None):
        self.base_url, self.api_key = base_url.rstrip("/"), api_key

    def alive(self) -> bool:
        return True

    def log(self) -> str:
        return ""


def reach(base_url: str, api_key: str | None) -> None:
    """Fails the whole run at once, with the reason, when the target does not answer /v1/models."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        response = httpx.get(f"{base_url.rstrip('/')}/v1/models", headers=headers, timeout=5)
    except httpx.HTTPError as exc:
        pytest.exit(f"--base-url {base_url}: no OpenAI-compatible server answers there ({exc})", returncode=2)
    if response.status_code != 200:
        pytest.exit(f"--base-url {base_url}: GET /v1/models answered {response.status_code}: {response.text[:200]}",
                    returncode=2)


@pytest.fixture(scope="session")
def server(request, tmp_path_factory):
    target = external_target(request.config)
    if target is not None:
        api_key = request.config.getoption("target_api_key", default=None)
        reach(target, api_key)
        yield ExternalServer(target, api_key)
        return
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


def api_key_of(server) -> str:
    return getattr(server, "api_key", None) or "unused"


@pytest.fixture
def client(server):
    return openai.OpenAI(base_url=f"{server.base_url}/v1", api_key=api_key_of(server), max_retries=0, timeout=120)


@pytest.fixture
def async_client(server):
    return openai.AsyncOpenAI(base_url=f"{server.base_url}/v1", api_key=api_key_of(server), max_retries=0,
                              timeout=120)


@pytest.fixture
def http(server):
    headers = {"Authorization": f"Bearer {server.api_key}"} if getattr(server, "api_key", None) else None
    with httpx.Client(base_url=server.base_url, timeout=120, headers=headers) as c:
        yield c


@pytest.fixture(autouse=True)
def server_survives(request):
    """After every test, whatever it sent: the servers it used are alive and healthy."""
    yield
    for name in ("server", "guarded_server", "scripted_server"):
        if name in request.fixturenames:
            process = request.getfixturevalue(name)
            assert process.alive(), f"the server died:\n{process.log()[-4000:]}"
            if isinstance(process, ExternalServer):
                continue  # another server's health route is its own business
            assert httpx.get(f"{process.base_url}/health", timeout=10).status_code == 200
