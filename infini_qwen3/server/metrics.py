"""Prometheus text exposition of the service's counters, gauges and latency histograms."""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections import defaultdict

from ..scheduler import SchedulerStats

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
PREFIX = "infini_qwen3_"


class Histogram:
    def __init__(self, buckets: tuple[float, ...] = LATENCY_BUCKETS):
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)  # the last one is +Inf
        self.total = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.buckets, value)] += 1
        self.total += value
        self.count += 1

    def lines(self, name: str) -> list[str]:
        out, cumulative = [], 0
        for bound, count in zip([*map(repr, self.buckets), "+Inf"], self.counts):
            cumulative += count
            out.append(f'{name}_bucket{{le="{bound}"}} {cumulative}')
        out += [f"{name}_sum {self.total}", f"{name}_count {self.count}"]
        return out


class Metrics:
    def __init__(self):
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, int], int] = defaultdict(int)  # (endpoint, status) -> count
        self.prompt_tokens = 0
        self.generation_tokens = 0
        self.time_to_first_token = Histogram()
        self.time_per_output_token = Histogram()
        self.request_latency = Histogram()

    def count_request(self, endpoint: str, status: int) -> None:
        with self._lock:
            self.requests[(endpoint, status)] += 1

    def record_completion(self, prompt_tokens: int, completion_tokens: int, ttft: float | None,
                          per_token: float | None, latency: float) -> None:
        with self._lock:
            self.prompt_tokens += prompt_tokens
            self.generation_tokens += completion_tokens
            if ttft is not None:
                self.time_to_first_token.observe(ttft)
            if per_token is not None:
                self.time_per_output_token.observe(per_token)
            self.request_latency.observe(latency)

    def render(self, engine_stats: SchedulerStats | None, block_size: int = 0) -> str:
        p = PREFIX
        with self._lock:
            lines = [f"# HELP {p}requests_total HTTP requests by endpoint and status.",
                     f"# TYPE {p}requests_total counter"]
            lines += [f'{p}requests_total{{endpoint="{e}",status="{s}"}} {n}'
                      for (e, s), n in sorted(self.requests.items())]
            lines += [f"# TYPE {p}prompt_tokens_total counter", f"{p}prompt_tokens_total {self.prompt_tokens}",
                      f"# TYPE {p}generation_tokens_total counter",
                      f"{p}generation_tokens_total {self.generation_tokens}"]
            for name, histogram, help_text in (
                    ("time_to_first_token_seconds", self.time_to_first_token, "Request arrival to first token."),
                    ("time_per_output_token_seconds", self.time_per_output_token,
                     "Mean time between output tokens, per request."),
                    ("request_latency_seconds", self.request_latency, "Request arrival to its last token.")):
                lines += [f"# HELP {p}{name} {help_text}", f"# TYPE {p}{name} histogram"]
                lines += histogram.lines(p + name)
        return "\n".join(lines + self._engine_lines(engine_stats, block_size)) + "\n"

    @staticmethod
    def _engine_lines(stats: SchedulerStats | None, block_size: int) -> list[str]:
        """The scheduler's gauges and prefix-cache counters under this project's names, and under the vLLM
        names that routers in front of several replicas scrape (nothing while the model is loading)."""
        if stats is None:
            return []
        p = PREFIX
        series = [
            ("gauge", f"{p}requests_running", "Requests being run (holding KV blocks).", stats.running),
            ("gauge", f"{p}requests_waiting", "Requests queued, preempted ones included.", stats.waiting),
            ("gauge", f"{p}kv_blocks_total", "Blocks in the paged KV cache.", stats.kv_blocks_total),
            ("gauge", f"{p}kv_blocks_used", "KV cache blocks referenced by requests.", stats.kv_blocks_used),
            ("gauge", f"{p}kv_blocks_cached", "KV cache blocks in the prefix cache (referenced or free).",
             stats.kv_blocks_cached),
            ("gauge", f"{p}kv_tokens_used", "Tokens held in the KV cache by running requests.", stats.kv_tokens),
            ("gauge", f"{p}kv_cache_usage_ratio", "Fraction of KV cache blocks referenced by requests.",
             stats.kv_usage),
            ("gauge", f"{p}kv_preemptions", "Requests that gave their KV blocks back to be recomputed (since start).",
             stats.preemptions),
            ("counter", f"{p}prefix_cache_queries", "Prompt tokens looked up in the prefix cache.",
             stats.prefix_cache_queries),
            ("counter", f"{p}prefix_cache_hits", "Prompt tokens found in the prefix cache.", stats.prefix_cache_hits),
            ("gauge", "vllm:num_requests_running", "Requests being run (vLLM's name).", stats.running),
            ("gauge", "vllm:num_requests_waiting", "Requests waiting (vLLM's name).", stats.waiting),
            ("gauge", "vllm:kv_cache_usage_perc", "KV cache usage, 1 = full (vLLM's name).", stats.kv_usage),
            ("gauge", "vllm:gpu_cache_usage_perc", "KV cache usage, 1 = full (vLLM's name before 0.10).",
             stats.kv_usage),
            ("counter", "vllm:prefix_cache_queries", "Prompt tokens looked up in the prefix cache (vLLM's name).",
             stats.prefix_cache_queries),
            ("counter", "vllm:prefix_cache_hits", "Prompt tokens found in the prefix cache (vLLM's name).",
             stats.prefix_cache_hits),
        ]
        lines = []
        for kind, name, help_text, value in series:
            sample = f"{name}_total" if kind == "counter" else name  # a counter's sample carries _total
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", f"{sample} {value}"]
        lines += ["# HELP vllm:cache_config_info Information of the KV cache (vLLM's name).",
                  "# TYPE vllm:cache_config_info gauge",
                  f'vllm:cache_config_info{{block_size="{block_size}",num_gpu_blocks="{stats.kv_blocks_total}",'
                  f'enable_prefix_caching="{stats.prefix_caching}"}} 1']
        return lines
