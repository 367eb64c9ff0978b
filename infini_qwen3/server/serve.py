"""`infini-qwen3 serve`: load a checkpoint (or the embedded demo) and serve the OpenAI-compatible API."""

from __future__ import annotations

import argparse
import logging
import os
import re

from ..devices import add_device_arguments, model_device_kwargs
from ..engine import DEFAULT_MAX_BATCH
from ..kv_memory import GPU_MEMORY_UTILIZATION
from ..model import DTYPES
from .connections import DEFAULT_HEAD_TIMEOUT

log = logging.getLogger("infini_qwen3.server")

DEMO_NAME = "qwen3-demo"
DEFAULT_SHUTDOWN_TIMEOUT = 20.0


def add_serve_parser(subparsers) -> None:
    p = subparsers.add_parser("serve", help="serve the OpenAI-compatible API (SSE streaming)")
    p.add_argument("--model", help="checkpoint directory; without it an embedded demo checkpoint is served")
    p.add_argument("--served-model-name", help="the model name clients send (default: the --model argument)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    add_device_arguments(p)
    p.add_argument("--dtype", default="bf16", choices=sorted(DTYPES))
    p.add_argument("--max-batch", type=int, default=DEFAULT_MAX_BATCH, help="most requests running at once")
    p.add_argument("--max-model-len", type=int,
                   help="context window per request (default: the checkpoint's, capped to what the KV cache holds)")
    p.add_argument("--kv-cache-memory", type=memory_size,
                   help="bytes for the shared paged KV cache, e.g. 4GiB or 512MiB (default: 1GiB on the CPU; on a GPU "
                        "--gpu-memory-utilization of its memory less what is in use, the weights and a 2 GiB reserve)")
    p.add_argument("--gpu-memory-utilization", type=float, default=GPU_MEMORY_UTILIZATION,
                   help="fraction of GPU memory this server may use when --kv-cache-memory is not given")
    p.add_argument("--max-step-tokens", type=int, default=512, help="tokens per batched step (prefill chunking)")
    p.add_argument("--cuda-graphs", default="on", choices=["on", "off"],
                   help="capture decode steps as CUDA graphs and replay them (NVIDIA; the CPU always runs eagerly)")
    p.add_argument("--max-queue", type=int, default=256, help="waiting requests before new ones get 429")
    p.add_argument("--enable-prefix-caching", action=argparse.BooleanOptionalAction, default=True,
                   help="reuse the KV blocks of earlier prompts that began with the same tokens (default: on)")
    p.add_argument("--max-body-bytes", type=int, default=8 * 1024 * 1024)
    p.add_argument("--request-head-timeout", type=float, default=DEFAULT_HEAD_TIMEOUT,
                   help="seconds a connection may take to send a complete request head (idle and half-sent "
                        "requests are closed after it)")
    p.add_argument("--request-body-timeout", type=float, default=30.0,
                   help="seconds a request body may pause; a body that stops is answered 408")
    p.add_argument("--max-connections", type=int, default=1024,
                   help="requests on connections beyond this many are answered 503 at once")
    p.add_argument("--allowed-origins", nargs="*", default=[],
                   help="origins browsers may call this server from (CORS, with preflight); none by default")
    p.add_argument("--shutdown-timeout", type=float, default=DEFAULT_SHUTDOWN_TIMEOUT,
                   help="on SIGTERM/SIGINT: seconds running requests may take to finish before their streams end "
                        "with an error event and [DONE]")
    p.add_argument("--api-key", default=os.environ.get("INFINI_QWEN3_API_KEY"),
                   help="require `Authorization: Bearer KEY` on /v1 routes (default: $INFINI_QWEN3_API_KEY)")
    p.add_argument("--reasoning-parser", default="qwen3", choices=["qwen3", "none"],
                   help="qwen3: <think>...</think> goes to reasoning_content (default); none: left in content")
    p.add_argument("--enable-thinking", default="true", choices=["true", "false"],
                   help="default of chat_template_kwargs.enable_thinking for requests that do not set it")
    p.add_argument("--chat-special-tokens", default="text", choices=["text", "parse"],
                   help="text: control tokens in a chat prompt come only from the chat template, the request's strings "
                        "are always text (default); parse: control-token strings in messages become control tokens")
    p.set_defaults(run=run_serve)


MEMORY_UNITS = {"": 1, "B": 1, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "KB": 10**3, "MB": 10**6, "GB": 10**9}


def memory_size(text: str) -> int:
    """'4GiB', '512MiB', '1.5GB' or a byte count."""
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*", text)
    if not match or match.group(2).upper() not in MEMORY_UNITS:
        raise argparse.ArgumentTypeError(f"not a memory size: {text!r} (e.g. 4GiB, 512MiB or a byte count)")
    return int(float(match.group(1)) * MEMORY_UNITS[match.group(2).upper()])


def make_loader(args):
    """What the server runs in the background at startup: the model, the engine, the service."""

    def load():
        from ..engine import Engine
        from ..model import Qwen3Model
        from .service import Service, ServiceInfo

        demo = args.model is None
        if demo:
            from ..demo_checkpoint import ensure_demo_checkpoint

            log.warning("no --model given: serving the embedded DEMO checkpoint (tiny Qwen3, random weights, real "
                        "Qwen3 tokenizer); its output is meaningless text")
            model_dir = ensure_demo_checkpoint()
        else:
            model_dir = args.model
        model = Qwen3Model(model_dir, **model_device_kwargs(args), dtype=args.dtype, max_model_len=args.max_model_len,
                           kv_cache_memory=args.kv_cache_memory,
                           max_step_tokens=args.max_step_tokens, cuda_graphs=args.cuda_graphs == "on",
                           gpu_memory_utilization=args.gpu_memory_utilization)
        if args.max_model_len is None and model.max_model_len < model.config.max_position_embeddings:
            log.warning("the context is capped to %d tokens (the checkpoint allows %d): that is what --kv-cache-memory "
                        "holds", model.max_model_len, model.config.max_position_embeddings)
        log.info("model on %s, %d rank(s) (device ids %s); weights: %s; KV cache: %d blocks of %d tokens (%.1f MiB), "
                 "context %d tokens", model.device, len(model.device_ids), model.device_ids, model.weight_format,
                 model.kv_blocks, model.block_size, model.kv_blocks * model.kv_block_bytes / 2**20,
                 model.max_model_len)
        engine = Engine(model, max_batch=args.max_batch, max_queue=args.max_queue,
                        enable_prefix_caching=args.enable_prefix_caching)
        engine.start()
        name = args.served_model_name or (DEMO_NAME if demo else args.model)
        info = ServiceInfo(served_name=name, demo=demo,
                           reasoning_parser=None if args.reasoning_parser == "none" else args.reasoning_parser,
                           enable_thinking=args.enable_thinking == "true",
                           chat_special_tokens=args.chat_special_tokens)
        return Service(model, engine, info)

    return load


def run_serve(args) -> int:
    import uvicorn

    from .app import create_app
    from .connections import protocol_with_head_timeout
    from .shutdown import GracefulServer
    from .state import ServerConfig, ServerState

    if args.max_batch < 1 or args.max_step_tokens < 1 or (args.max_model_len is not None and args.max_model_len < 2):
        raise ValueError("--max-batch and --max-step-tokens must be at least 1, --max-model-len at least 2")
    if not 0 < args.gpu_memory_utilization <= 1:
        raise ValueError("--gpu-memory-utilization must be in (0, 1]")
    if args.api_key is not None and not args.api_key.strip():
        raise ValueError("--api-key (or INFINI_QWEN3_API_KEY) is empty: give a key, or unset it to serve without one")
    if args.shutdown_timeout < 0 or args.request_head_timeout <= 0 or args.request_body_timeout <= 0:
        raise ValueError("--shutdown-timeout must be >= 0, the request timeouts > 0")
    if args.max_connections < 1:
        raise ValueError("--max-connections must be at least 1")
    config = ServerConfig(api_key=args.api_key, max_body_bytes=args.max_body_bytes,
                          body_timeout=args.request_body_timeout, allowed_origins=tuple(args.allowed_origins))
    state = ServerState(config, loader=make_loader(args))
    uvicorn_config = uvicorn.Config(create_app(state), host=args.host, port=args.port, log_level="info",
                                    timeout_graceful_shutdown=5, limit_concurrency=args.max_connections,
                                    http=protocol_with_head_timeout(args.request_head_timeout))
    server = GracefulServer(uvicorn_config, state, args.shutdown_timeout)
    failed = []

    def stop_on_failure(exc: BaseException) -> None:
        failed.append(exc)
        server.should_exit = True

    state.on_load_failure = stop_on_failure
    log.info("listening on http://%s:%d (model loading in the background; /health answers 503 until ready)",
             args.host, args.port)
    server.run()
    return 1 if failed else 0
