"""Continuous batching as a service: a thread that runs the scheduler's steps (scheduler.py) one after another
while requests come and go.

Requests and cancellations arrive from any thread into an inbox; the engine thread applies them between steps,
so the scheduler itself is single-threaded and a step never waits on a caller. Results are delivered through a
callback per request (the server wraps it into an asyncio queue)."""

from __future__ import annotations

import logging
import threading
from dataclasses import replace

from .model import Qwen3Model
from .scheduler import Event, Request, Scheduler, SchedulerStats

__all__ = ["ContextTooLong", "Engine", "Event", "QueueFull", "Request"]

log = logging.getLogger(__name__)


class QueueFull(RuntimeError):
    """Too many requests are waiting; the server answers 429."""


class ContextTooLong(ValueError):
    """The prompt (plus at least one new token) does not fit the context window."""


DEFAULT_MAX_BATCH = 8
SHUTDOWN_JOIN_S = 30  # the step in flight finishes first; longer than any one step of a model this serves


class Engine:
    def __init__(self, model: Qwen3Model, *, max_batch: int = DEFAULT_MAX_BATCH, max_queue: int = 256,
                 enable_prefix_caching: bool = True):
        self.model = model
        self.max_queue = max_queue
        self.scheduler = Scheduler(model, max_batch=max_batch, enable_prefix_caching=enable_prefix_caching)
        self._inbox: list[Request | str] = []  # requests to add, and ids (str) to cancel, in arrival order
        self._waiting = 0  # requests submitted and not yet admitted (inbox and scheduler together)
        self._stats = self.scheduler.stats
        self._cond = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._loop, name="infini-qwen3-engine", daemon=True)

    @property
    def max_batch(self) -> int:
        return self.scheduler.max_batch

    # -- called from any thread --------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def shutdown(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._thread.join(timeout=SHUTDOWN_JOIN_S)

    def submit(self, request: Request) -> None:
        if len(request.prompt) == 0:
            raise ValueError("the prompt is empty")
        if len(request.prompt) + 1 > self.model.max_model_len:
            raise ContextTooLong(f"the prompt has {len(request.prompt)} tokens; the context window holds "
                                 f"{self.model.max_model_len} (including at least one generated token)")
        with self._cond:
            if self._waiting >= self.max_queue:
                raise QueueFull(f"{self._waiting} requests are already waiting")
            self._inbox.append(request)
            self._waiting += 1
            self._cond.notify_all()

    def cancel(self, request_id: str) -> None:
        """Stops a request (client gone): it frees its KV blocks before the next step."""
        with self._cond:
            self._inbox.append(request_id)
            self._cond.notify_all()

    @property
    def stats(self) -> SchedulerStats:
        """As of the last step's start or end; requests still in the inbox count as waiting."""
        with self._cond:
            arrived = sum(1 for item in self._inbox if not isinstance(item, str))
            return replace(self._stats, waiting=self._stats.waiting + arrived)

    # -- the engine thread -------------------------------------------------------------------------------------
    def _loop(self) -> None:
        scheduler = self.scheduler
        while True:
            with self._cond:
                while not self._stop and not self._inbox and not scheduler.has_work():
                    self._cond.wait()
                if self._stop:
                    return
                inbox, self._inbox = self._inbox, []
            for item in inbox:
                if isinstance(item, str):
                    scheduler.cancel(item)
                else:
                    scheduler.add(item)
            try:
                scheduler.admit()  # first, so that while the step runs its requests count as running
                self._publish()
                scheduler.step()
            except Exception:  # a bug in the scheduler itself: fail what runs rather than die silently
                log.exception("scheduler step failed")
                for seq in [*scheduler.running, *scheduler.preempted, *scheduler.waiting]:
                    scheduler.cancel(seq.request.id)
                    Scheduler._deliver(seq, Event("error", message="the scheduler failed"))
            self._publish()

    def _publish(self) -> None:
        stats = self.scheduler.stats
        with self._cond:
            self._stats = stats
            self._waiting = len(self.scheduler.waiting) + sum(1 for item in self._inbox if not isinstance(item, str))
