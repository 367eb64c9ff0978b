"""Command line: `infini-qwen3 serve`, `infini-qwen3 generate` and `infini-qwen3 make-demo`."""

from __future__ import annotations

import argparse
import logging
import sys

from .devices import add_device_arguments, model_device_kwargs
from .model import DTYPES, Qwen3Model, SamplingParams
from .server.serve import add_serve_parser


def add_generate_parser(subparsers) -> None:
    p = subparsers.add_parser("generate", help="generate text from a prompt and stream it to stdout")
    p.add_argument("--model", required=True, help="checkpoint directory (config.json, safetensors, tokenizer)")
    p.add_argument("--prompt", required=True)
    p.add_argument("--chat", action="store_true", help="wrap the prompt as a user message of the chat template")
    p.add_argument("--no-think", action="store_true", help="with --chat: enable_thinking=False")
    p.add_argument("--max-tokens", type=int, default=128)
    p.add_argument("--temperature", type=float, help="0 is greedy (default: generation_config.json)")
    p.add_argument("--top-k", type=int, help="0 is no limit (default: generation_config.json)")
    p.add_argument("--top-p", type=float, help="(default: generation_config.json)")
    p.add_argument("--seed", type=int)
    p.add_argument("--stop", action="append", default=[], help="a stop string (repeatable); it is not printed")
    p.add_argument("--presence-penalty", type=float, default=0.0)
    p.add_argument("--frequency-penalty", type=float, default=0.0)
    p.add_argument("--repetition-penalty", type=float, default=1.0)
    add_device_arguments(p)
    p.add_argument("--dtype", default="bf16", choices=sorted(DTYPES))
    p.set_defaults(run=run_generate)


def run_generate(args) -> int:
    """One request through the same scheduler and output processor as the server's (stop strings, penalties)."""
    from .generation import run
    from .logits import LogitsOptions
    from .output import ChoiceOutput
    from .scheduler import Request, Scheduler

    with Qwen3Model(args.model, **model_device_kwargs(args), dtype=args.dtype,
                    progress=sys.stderr.isatty()) as model:
        tokenizer = model.tokenizer
        if args.chat:
            prompt_ids = tokenizer.encode_chat([{"role": "user", "content": args.prompt}],
                                               enable_thinking=not args.no_think)
        else:
            prompt_ids = tokenizer.encode(args.prompt)
        if not prompt_ids:
            print("error: the prompt encodes to no tokens", file=sys.stderr)
            return 2
        defaults = model.defaults.sampling
        sampling = SamplingParams(
            temperature=defaults.temperature if args.temperature is None else args.temperature,
            top_k=defaults.top_k if args.top_k is None else args.top_k,
            top_p=defaults.top_p if args.top_p is None else args.top_p,
        )
        room = model.max_model_len - len(prompt_ids)
        if room <= 0:
            print(f"error: the prompt has {len(prompt_ids)} tokens; the context holds {model.max_model_len}",
                  file=sys.stderr)
            return 2
        output = ChoiceOutput(tokenizer, stop_token_ids=frozenset(model.defaults.eos_token_ids), stop=args.stop)
        logits = LogitsOptions(presence_penalty=args.presence_penalty, frequency_penalty=args.frequency_penalty,
                               repetition_penalty=args.repetition_penalty)
        request = Request(prompt_ids, min(args.max_tokens, room), sampling, on_event=None, output=output,
                          seed=args.seed, logits=logits)
        for _, event in run(Scheduler(model, max_batch=1), [request]):
            if event.kind == "error":
                print(f"\nerror: {event.message}", file=sys.stderr)
                return 1
            if event.kind == "token":
                sys.stdout.write(event.piece.content)
                sys.stdout.flush()
        sys.stdout.write("\n")
    return 0


def add_make_demo_parser(subparsers) -> None:
    p = subparsers.add_parser("make-demo", help="write a tiny random Qwen3 checkpoint with the real Qwen3 tokenizer")
    p.add_argument("directory")
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=run_make_demo)


def run_make_demo(args) -> int:
    from pathlib import Path

    from .demo_checkpoint import build_qwen3_tokenizer, build_random_checkpoint

    target = Path(args.directory)
    build_qwen3_tokenizer(target / ".tokenizer")
    build_random_checkpoint(target, target / ".tokenizer", seed=args.seed, num_hidden_layers=args.layers)
    print(f"demo checkpoint (random weights, real Qwen3 tokenizer) written to {target}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="infini-qwen3", description="Qwen3 inference on InfiniCore")
    parser.add_argument("--log-level", help="default: INFO for serve, WARNING otherwise")
    subparsers = parser.add_subparsers(dest="command", required=True)
    add_serve_parser(subparsers)
    add_generate_parser(subparsers)
    add_make_demo_parser(subparsers)
    args = parser.parse_args(argv)
    level = args.log_level or ("INFO" if args.command == "serve" else "WARNING")
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from ._native import NativeError, NativeLibraryMissing
    from .config import ConfigError

    try:
        return args.run(args)
    except (NativeLibraryMissing, NativeError, ConfigError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
