"""The model behind the HTTP layer: prompts from requests, limits, sampling defaults, and starting generations."""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass

from ..chat_output import ChatOutput, reasoning_state_after
from ..constraints import Answer, grammar_for, tool_calls_answer
from ..engine import Engine
from ..grammar import GrammarError, Grammars, Matcher
from ..model import Qwen3Model, SamplingParams
from ..output import ChoiceOutput
from ..tokenizer import TemplateError
from .errors import bad_request, context_length_exceeded, model_not_found
from .generation import ChoiceSpec, Generation
from .protocol import ChatRequest, CompletionRequest, GenerationParams


@dataclass
class ServiceInfo:
    served_name: str
    demo: bool = False  # the embedded demo checkpoint (random weights) is being served
    reasoning_parser: str | None = "qwen3"  # None: <think> blocks stay in content
    enable_thinking: bool = True  # the default of chat_template_kwargs.enable_thinking
    chat_special_tokens: str = "text"  # "text": a request's strings never become control tokens; "parse": they do


@dataclass
class ChatPrompt:
    ids: list[int]
    reasoning_state: str | None  # where the reasoning split starts (None: no split)
    parse_tools: bool = False  # tool calls in the output become tool_calls
    answer: Answer | None = None  # what the answer must be (structured outputs, constrained tool calls)

    def parser(self) -> ChatOutput:
        return ChatOutput(self.reasoning_state, self.parse_tools)


class Service:
    def __init__(self, model: Qwen3Model, engine: Engine, info: ServiceInfo):
        self.model, self.engine, self.info = model, engine, info
        self.tokenizer = model.tokenizer
        _ = self.tokenizer.max_token_bytes  # computed once here (at load), not in the first request
        self.context_length = model.max_model_len
        self.eos_token_ids = frozenset(model.defaults.eos_token_ids)
        self._grammars: Grammars | None = None
        self._grammars_lock = threading.Lock()

    def check_model(self, name: str | None) -> None:
        if name is not None and name != self.info.served_name:
            raise model_not_found(name, self.info.served_name)

    # -- prompts ---------------------------------------------------------------------------------------------
    def chat_prompt(self, request: ChatRequest) -> ChatPrompt:
        """The templated prompt, and what the answer must be: the request's structured-output constraint, or
        tool calls under tool_choice "required", a named function or `strict` tools (after any reasoning)."""
        kwargs = {"enable_thinking": self.info.enable_thinking, **request.template_kwargs}
        tools = request.tools if request.tool_choice != "none" else None
        try:
            if self.info.chat_special_tokens == "parse":
                markup = text = self.tokenizer.render_chat(request.messages, tools=tools, **kwargs)
            else:  # the template's markup with the data's control-token strings as placeholders (chat_tokens.py)
                rendered = self.tokenizer.chat_tokens.render(request.messages, tools=tools, **kwargs)
                markup, text = rendered.marked, rendered.text
        except TemplateError as exc:
            raise bad_request(str(exc), "messages") from None
        answer = request.params.answer
        if tools:
            answer = tool_calls_answer(tools, request.tool_choice, answer)
        state = reasoning_state_after(markup) if self.info.reasoning_parser else None
        self._check_size(text, "messages")
        ids = self.tokenizer.encode(text) if markup is text else self.tokenizer.chat_tokens.encode(rendered)
        return ChatPrompt(self._nonempty(ids, "messages"), state, tools is not None, answer)

    def completion_prompts(self, request: CompletionRequest) -> list[list[int]]:
        prompts = []
        for prompt in request.prompts:
            if isinstance(prompt, str):
                prompts.append(self._nonempty(self._encode(prompt, "prompt"), "prompt"))
                continue
            self.check_vocabulary(prompt, "prompt")
            prompts.append(self._nonempty(list(prompt), "prompt"))
        return prompts

    def _encode(self, text: str, param: str) -> list[int]:
        self._check_size(text, param)
        return self.tokenizer.encode(text)

    def _check_size(self, text: str, param: str) -> None:
        """Refuses a text so long that it cannot fit the context whatever its tokens (no token is longer than the
        tokenizer's longest) before tokenizing it: a huge body is refused without seconds of tokenizing."""
        size = len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))
        fewest = -(-size // self.tokenizer.max_token_bytes)
        if fewest >= self.context_length:
            raise context_length_exceeded(
                f"This model's maximum context length is {self.context_length} tokens; the prompt has {size} bytes, "
                f"at least {fewest} tokens.", param)

    def grammars(self) -> Grammars:
        """llguidance's view of the tokenizer, built on the first constrained request (about 2 s), then kept."""
        with self._grammars_lock:
            if self._grammars is None:
                self._grammars = Grammars(self.tokenizer.fast.to_str(), self.model.vocab_size,
                                          tuple(sorted(self.eos_token_ids)))
            return self._grammars

    def _matchers(self, answer: Answer | None, reasoning_state: str | None, count: int) -> list[Matcher | None]:
        """One matcher per choice for a constrained answer (None each without one). A constraint llguidance
        refuses (an unsupported schema feature, an invalid regex or grammar) is a 400 naming why, before anything
        runs."""
        if answer is None:
            return [None] * count
        try:
            first = self.grammars().matcher(grammar_for(answer, reasoning_state))
        except (GrammarError, ValueError) as exc:
            raise bad_request(f"`{answer.param}` cannot be used: {exc}", answer.param) from None
        return [first] + [first.copy() for _ in range(count - 1)]

    def check_vocabulary(self, ids: list[int], param: str) -> None:
        bad = [t for t in ids if t >= self.model.vocab_size]
        if bad:
            raise bad_request(f"Token id {bad[0]} in `{param}` is outside the vocabulary ({self.model.vocab_size}).",
                              param)

    @staticmethod
    def _nonempty(ids: list[int], param: str) -> list[int]:
        if not ids:
            raise bad_request("The prompt is empty.", param)
        return ids

    # -- limits and sampling ---------------------------------------------------------------------------------
    def max_tokens_for(self, prompt: list[int], params: GenerationParams, param: str) -> int:
        """The request's budget, or the rest of the context window; refuses what cannot fit (as vLLM does)."""
        room = self.context_length - len(prompt)
        if room < 1:
            raise context_length_exceeded(
                f"This model's maximum context length is {self.context_length} tokens; the prompt has "
                f"{len(prompt)} tokens, which leaves no room for a completion.", param)
        if params.max_tokens is None:
            return room
        if params.max_tokens > room:
            raise context_length_exceeded(
                f"This model's maximum context length is {self.context_length} tokens. However, you requested "
                f"{len(prompt) + params.max_tokens} tokens ({len(prompt)} in the prompt, {params.max_tokens} for "
                f"the completion). Please reduce the prompt or the completion length.", param)
        return params.max_tokens

    def sampling_for(self, params: GenerationParams) -> SamplingParams:
        """Request values where given, else the checkpoint's generation_config.json."""
        defaults = self.model.defaults.sampling
        return SamplingParams(
            temperature=defaults.temperature if params.temperature is None else params.temperature,
            top_k=defaults.top_k if params.top_k is None else params.top_k,
            top_p=defaults.top_p if params.top_p is None else params.top_p,
        )

    def generation(self, kind: str, prompts: list[list[int]], params: GenerationParams, param: str,
                   chat: ChatPrompt | None = None) -> Generation:
        """The checked, not yet started generation (its start() belongs on the event loop). kind "chatcmpl",
        "cmpl" or "resp": the id prefix. Choice i * n + j is choice j of prompt i (OpenAI's order)."""
        choices = len(prompts) * params.n
        if choices > self.engine.max_queue:  # 429 would tell the client to retry something that never fits
            raise bad_request(f"This request asks for {choices} choices (prompts x n); this server queues at most "
                              f"{self.engine.max_queue} at once.", "n")
        if params.top_k is not None and params.top_k > self.model.vocab_size:
            raise bad_request(f"`top_k` must be at most the vocabulary size {self.model.vocab_size}; got "
                              f"{params.top_k}.", "top_k")
        budgets = [self.max_tokens_for(p, params, param) for p in prompts]
        self.check_vocabulary(params.stop_token_ids, "stop_token_ids")
        self.check_vocabulary([t for t, _ in params.logits.logit_bias], "logit_bias")
        answer = chat.answer if chat is not None else params.answer
        matchers = iter(self._matchers(answer, chat.reasoning_state if chat else None, choices))
        stop_token_ids = self.eos_token_ids | frozenset(params.stop_token_ids)

        def output() -> ChoiceOutput:
            return ChoiceOutput(self.tokenizer, stop_token_ids=stop_token_ids, stop=params.stop,
                                grammar=next(matchers), parser=chat.parser() if chat is not None else None)

        specs = [ChoiceSpec(prompt, budget, output(), j) for prompt, budget in zip(prompts, budgets)
                 for j in range(params.n)]
        return Generation(self.engine, f"{kind}-{uuid.uuid4().hex}", specs, self.sampling_for(params),
                          prompt_tokens=sum(len(p) for p in prompts), seed=params.seed, logits=params.logits,
                          cache_salt=params.cache_salt, think_end=self.tokenizer.token_id("</think>"))
