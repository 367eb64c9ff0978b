"""What the server's routes share: its configuration, the loaded service (once ready), metrics, the worker pool for
request preparation, and what a shutdown needs to know."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from . import errors
from .metrics import Metrics
from .service import Service

PROMPT_WORKERS = 2


@dataclass
class ServerConfig:
    api_key: str | None = None
    max_body_bytes: int = 8 * 1024 * 1024
    body_timeout: float = 30.0  # seconds a request body may pause between chunks
    allowed_origins: tuple[str, ...] = ()  # CORS; empty: no cross-origin access


@dataclass
class ServerState:
    config: ServerConfig
    loader: Callable[[], Service] | None = None  # runs in a thread at startup
    on_load_failure: Callable[[BaseException], None] | None = None
    service: Service | None = None
    load_error: str | None = None
    metrics: Metrics = field(default_factory=Metrics)
    # Parsing, templating and tokenizing requests, off the event loop (a few at a time: they compete for the CPU).
    prompt_workers: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(PROMPT_WORKERS, thread_name_prefix="infini-qwen3-prompt"))
    draining: bool = False  # shutting down: new requests get 503, running ones may finish
    live: set = field(default_factory=set)  # generations being answered (what a shutdown waits for)

    def ready(self) -> Service:
        if self.service is None:
            raise errors.not_ready()
        return self.service
