"""The Starlette application: OpenAI-compatible routes over a Service, with SSE streaming, auth, body limits,
health and Prometheus metrics. The model loads in the background; until it is ready /health answers 503."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from .. import __version__
from ..output import OutputPiece
from . import errors
from .body_fields import parse_json
from .connections import QuietRepeats
from .endpoints import CHAT, COMPLETIONS, Endpoint, Job
from .errors import APIError
from .generation import GenerationFailed
from .plumbing import accept_get, accept_post
from .request_id import RequestIdMiddleware
from .responses_api import RESPONSES
from .service import Service
from .state import ServerState
from .tokenize_routes import detokenize_route, tokenize_route, tokenizer_info_route

log = logging.getLogger("infini_qwen3.server")

ENDPOINTS = (CHAT, COMPLETIONS, RESPONSES)

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


async def until_disconnect(request: Request, work: asyncio.Future) -> None:
    """Cancels `work` when the client goes away (the body has been read, so the next message is the disconnect)."""
    while not work.done():
        message = await request.receive()
        if message["type"] == "http.disconnect":
            work.cancel()
            return


# -- generating endpoints (endpoints.py) -----------------------------------------------------------------------
def finish_log(state: ServerState, job: Job, outcome: str) -> None:
    generation, timing = job.generation, job.generation.timing
    end = timing.last_token or time.monotonic()
    completion = generation.completion_tokens
    decode_time = (timing.last_token - timing.first_token) if timing.first_token and timing.last_token else 0.0
    per_token = decode_time / (completion - 1) if completion > 1 and decode_time > 0 else None
    state.metrics.record_completion(generation.prompt_tokens, completion, timing.ttft, per_token,
                                    end - timing.started)
    rate = completion / (end - timing.started) if end > timing.started else 0.0
    reasons = ",".join(c.finish_reason or "-" for c in generation.choices)
    ttft = f"{timing.ttft:.3f}s" if timing.ttft is not None else "-"
    log.info("%s prompt_tokens=%d completion_tokens=%d ttft=%s tokens/s=%.1f finish=%s %s", generation.request_id,
             generation.prompt_tokens, completion, ttft, rate, reasons, outcome)


def failure(exc: GenerationFailed) -> APIError:
    return errors.shutting_down(str(exc)) if exc.status == 503 else errors.internal(str(exc))


async def stream_job(state: ServerState, job: Job):
    """The endpoint's event stream: its renderer frames the opening, each delta, the end and a failure."""
    renderer, generation = job.renderer, job.generation
    outcome = "cancelled"  # until the stream ends on its own (a client that leaves cancels this generator)
    try:
        for event in renderer.stream_opening():
            yield event
        try:
            async for delta in generation.deltas():
                for event in renderer.stream_delta(delta.index, delta.piece, delta.prompt_logprobs):
                    yield event
            for event in renderer.stream_end(generation.usage()):
                yield event
            outcome = "ok"
        except GenerationFailed as exc:
            outcome = "error"
            log.error("%s failed while streaming: %s", generation.request_id, exc)
            for event in renderer.stream_failure(failure(exc), generation.usage()):
                yield event
    finally:
        job.generation.cancel()
        state.live.discard(job.generation)
        finish_log(state, job, outcome)


async def collect_job(state: ServerState, job: Job, request: Request) -> Response:
    wholes = [OutputPiece() for _ in job.generation.choices]

    async def collect():
        async for delta in job.generation.deltas():
            wholes[delta.index].add(delta.piece)
            if delta.prompt_logprobs is not None:
                job.renderer.scored[delta.index] = delta.prompt_logprobs

    work = asyncio.ensure_future(collect())
    watcher = asyncio.ensure_future(until_disconnect(request, work))
    outcome = "cancelled"
    try:
        await work
        outcome = "ok"
    except asyncio.CancelledError:
        return Response(status_code=499)  # the client is gone; nobody reads this
    except GenerationFailed as exc:
        outcome = "error"
        log.error("%s failed: %s", job.generation.request_id, exc)
        return failure(exc).response()
    finally:
        watcher.cancel()
        job.generation.cancel()
        state.live.discard(job.generation)
        finish_log(state, job, outcome)
    return JSONResponse(job.renderer.body(wholes, job.generation.usage()))


def generation_route(state: ServerState, route: Endpoint):
    endpoint = route.label

    def prepare(service: Service, raw: bytes) -> Job:
        return route.prepare(service, parse_json(raw))

    async def handler(request: Request) -> Response:
        try:
            service, raw = await accept_post(state, request)
            job = await asyncio.get_running_loop().run_in_executor(state.prompt_workers, prepare, service, raw)
            job.generation.start()
            state.live.add(job.generation)
        except APIError as exc:
            state.metrics.count_request(endpoint, exc.status)
            if exc.status >= 500:
                log.warning("%s: %s", endpoint, exc.message)
            return exc.response()
        state.metrics.count_request(endpoint, 200)
        if job.stream:
            return StreamingResponse(stream_job(state, job), media_type="text/event-stream", headers=SSE_HEADERS)
        return await collect_job(state, job, request)

    return handler


# -- the other endpoints ---------------------------------------------------------------------------------------
def model_entry(service: Service) -> dict:
    info = service.info
    entry = {"id": info.served_name, "object": "model", "created": 0, "owned_by": "infini-qwen3",
             "root": info.served_name, "max_model_len": service.context_length,  # no filesystem paths
             "weight_format": service.model.weight_format}
    if info.demo:
        entry["description"] = ("embedded demo checkpoint: a tiny Qwen3 with random weights and the real "
                                "Qwen3 tokenizer; its output is meaningless text")
    return entry


def models_route(state: ServerState):
    async def handler(request: Request) -> Response:
        try:
            service = accept_get(state, request)
        except APIError as exc:
            return exc.response()
        return JSONResponse({"object": "list", "data": [model_entry(service)]})

    return handler


def model_route(state: ServerState):
    """GET /v1/models/{id}: openai's models.retrieve."""
    async def handler(request: Request) -> Response:
        try:
            service = accept_get(state, request)
            service.check_model(request.path_params["model"])
        except APIError as exc:
            return exc.response()
        return JSONResponse(model_entry(service))

    return handler


async def version(request: Request) -> Response:
    return JSONResponse({"version": __version__})


def health_route(state: ServerState):
    async def handler(request: Request) -> Response:
        if state.service is not None:
            return JSONResponse({"status": "ok"})
        status = "failed" if state.load_error else "loading"
        return JSONResponse({"status": status, "error": state.load_error}, status_code=503)

    return handler


def metrics_route(state: ServerState):
    async def handler(request: Request) -> Response:
        service = state.service
        stats = service.engine.stats if service is not None else None
        block_size = service.model.block_size if service is not None else 0
        return PlainTextResponse(state.metrics.render(stats, block_size), media_type="text/plain; version=0.0.4")

    return handler


async def http_error(request: Request, exc: HTTPException) -> Response:
    message = {404: f"No route {request.url.path}.", 405: f"{request.method} is not allowed on {request.url.path}."}
    return APIError(exc.status_code, message.get(exc.status_code, str(exc.detail)),
                    code="not_found" if exc.status_code == 404 else None).response()


def unexpected_error(state: ServerState):
    async def handler(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error on %s", request.url.path)
        state.metrics.count_request(request.url.path, 500)  # every response is counted, 500s too
        return errors.internal(f"internal error: {type(exc).__name__}").response()

    return handler


# -- the application -------------------------------------------------------------------------------------------
def load_in_background(state: ServerState) -> threading.Thread | None:
    if state.loader is None:
        return None

    def run():
        try:
            state.service = state.loader()
            log.info("model ready: %s", state.service.info.served_name)
        except BaseException as exc:  # reported on /health and to whoever started the server
            state.load_error = f"{type(exc).__name__}: {exc}"
            log.error("loading the model failed: %s", state.load_error)
            if state.on_load_failure is not None:
                state.on_load_failure(exc)

    thread = threading.Thread(target=run, name="infini-qwen3-loader", daemon=True)
    thread.start()
    return thread


def create_app(state: ServerState) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app):
        asyncio.get_running_loop().set_exception_handler(QuietRepeats())
        loader = load_in_background(state)
        yield
        if loader is not None:
            loader.join(timeout=0)
        state.prompt_workers.shutdown(wait=False, cancel_futures=True)
        if state.service is not None:
            state.service.engine.shutdown()
            state.service.model.close()

    routes = [Route(prefix + endpoint.path, generation_route(state, endpoint), methods=["POST"])
              for endpoint in ENDPOINTS for prefix in endpoint.aliases]
    for prefix in ("/v1", ""):  # jiuge's clients call /models without /v1 too
        routes += [
            Route(f"{prefix}/models", models_route(state), methods=["GET"]),
            Route(f"{prefix}/models/{{model:path}}", model_route(state), methods=["GET"]),
        ]
    routes += [Route("/health", health_route(state), methods=["GET"]),
               Route("/metrics", metrics_route(state), methods=["GET"]),
               Route("/version", version, methods=["GET"]),
               Route("/tokenize", tokenize_route(state), methods=["POST"]),
               Route("/detokenize", detokenize_route(state), methods=["POST"]),
               Route("/tokenizer_info", tokenizer_info_route(state), methods=["GET"])]
    middleware = [Middleware(RequestIdMiddleware)]
    if state.config.allowed_origins:
        middleware.append(Middleware(CORSMiddleware, allow_origins=list(state.config.allowed_origins),
                                     allow_methods=["GET", "POST", "OPTIONS"], allow_headers=["*"],
                                     expose_headers=["x-request-id"]))
    app = Starlette(routes=routes, lifespan=lifespan, middleware=middleware,
                    exception_handlers={HTTPException: http_error, Exception: unexpected_error(state)})
    app.router.redirect_slashes = False  # a redirect would be built from the client's Host header
    return app
