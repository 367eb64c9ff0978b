"""python -m harness.bench.grammar_engines [--tokenizer DIR] [--repeats N]

How fast each grammar engine on PyPI computes the allowed-token mask for Qwen3's 151,936-token vocabulary: the
numbers behind choosing llguidance. A fixed JSON answer to harness.bench.measure.BENCH_SCHEMA is replayed token by
token; at each token the engine computes its mask, then advances. Engines that are not installed are reported as
such (only llguidance is a dependency of infini-qwen3; xgrammar requires torch and triton, outlines-core builds a
full index of the schema's regex over the vocabulary before the first token)."""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from harness.bench.measure import BENCH_SCHEMA
from infini_qwen3.tokenizer import Tokenizer

VOCAB = 151936
ANSWER = '{"name":"Ada Lovelace","age":36,"tags":["mathematics","engine","notes"]}'


def timed(run) -> tuple[float, object]:
    start = time.perf_counter()
    value = run()
    return time.perf_counter() - start, value


def replay(mask, advance, tokens: list[int]) -> dict:
    """Median and slowest seconds of one mask computation over the answer's token positions."""
    times = []
    for token in tokens:
        start = time.perf_counter()
        mask()
        times.append(time.perf_counter() - start)
        advance(token)
    return {"mask_s": statistics.median(times), "mask_max_s": max(times)}


def llguidance_engine(tokenizer: Tokenizer, tokens: list[int], eos: int) -> dict:
    import llguidance.numpy

    from infini_qwen3.constraints import grammar_for, json_answer
    from infini_qwen3.grammar import Grammars

    setup, grammars = timed(lambda: Grammars(tokenizer.fast.to_str(), VOCAB, (eos,)))
    grammar = grammar_for(json_answer(BENCH_SCHEMA, "bench"), None)
    compile_s, matcher = timed(lambda: grammars.matcher(grammar))
    raw = grammars.matcher(grammar)  # the bitmask alone, as the other engines are measured
    fill = lambda: llguidance.numpy.fill_next_token_bitmask(raw._matcher, raw._bitmask, 0)  # noqa: E731
    # and what the engine does per step: the bitmask filled and expanded to a bool array over the vocabulary
    with_bools = replay(matcher.allowed, matcher.accept, tokens)["mask_s"]
    return {"setup_s": setup, "compile_s": compile_s, **replay(fill, raw.accept, tokens), "engine_path_s": with_bools}


def xgrammar_engine(tokenizer: Tokenizer, tokens: list[int], eos: int) -> dict:
    import xgrammar
    from transformers import PreTrainedTokenizerFast

    hf = PreTrainedTokenizerFast(tokenizer_object=tokenizer.fast)
    setup, info = timed(lambda: xgrammar.TokenizerInfo.from_huggingface(hf, vocab_size=VOCAB, stop_token_ids=[eos]))
    compiler = xgrammar.GrammarCompiler(info)
    compile_s, compiled = timed(lambda: compiler.compile_json_schema(json.dumps(BENCH_SCHEMA), any_whitespace=False))
    matcher = xgrammar.GrammarMatcher(compiled)
    bitmask = xgrammar.allocate_token_bitmask(1, VOCAB)
    return {"setup_s": setup, "compile_s": compile_s,
            **replay(lambda: matcher.fill_next_token_bitmask(bitmask), matcher.accept_token, tokens)}


def outlines_core_engine(tokenizer: Tokenizer, tokens: list[int], eos: int) -> dict:
    from outlines_core import Guide, Index, Vocabulary
    from outlines_core.json_schema import build_regex_from_schema

    def vocabulary():
        by_bytes: dict[bytes, list[int]] = {}
        for token in range(tokenizer.vocab_size):
            if token != eos and token not in tokenizer.special_ids:
                by_bytes.setdefault(tokenizer.token_bytes(token), []).append(token)
        return Vocabulary(eos, by_bytes)

    setup, vocab = timed(vocabulary)
    regex = build_regex_from_schema(json.dumps(BENCH_SCHEMA), whitespace_pattern="")
    compile_s, index = timed(lambda: Index(regex, vocab))
    guide = Guide(index)
    mask = np.zeros((VOCAB + 31) // 32, dtype=np.int32)
    write = lambda: guide.write_mask_into(mask.ctypes.data, mask.size, 4)  # noqa: E731
    return {"setup_s": setup, "compile_s": compile_s, **replay(write, guide.advance, tokens)}


ENGINES = {"llguidance": llguidance_engine, "xgrammar": xgrammar_engine, "outlines-core": outlines_core_engine}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.bench.grammar_engines",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--tokenizer", type=Path, help="a directory with Qwen3's tokenizer.json (default: the test "
                                                        "fixture's faithful Qwen3 tokenizer)")
    parser.add_argument("--out", type=Path, help="write the results as JSON")
    args = parser.parse_args(argv)
    if args.tokenizer is None:
        from harness.fixtures.checkpoints import qwen3_tokenizer_dir

        args.tokenizer = qwen3_tokenizer_dir()
    tokenizer = Tokenizer.from_dir(args.tokenizer)
    eos = tokenizer.token_id("<|im_end|>")
    tokens = tokenizer.encode(ANSWER)
    results = {}
    for name, engine in ENGINES.items():
        try:
            results[name] = engine(tokenizer, tokens, eos)
        except ImportError as exc:
            results[name] = {"error": f"not installed ({exc.name})"}
    print(f"| engine | tokenizer setup (s) | schema compile (ms) | bitmask per token over {len(tokens)} tokens, "
          f"median / slowest (ms) |\n|---|---|---|---|")
    for name, r in results.items():
        if "error" in r:
            print(f"| {name} | {r['error']} | | |")
        else:
            print(f"| {name} | {r['setup_s']:.2f} | {r['compile_s'] * 1e3:.1f} | {r['mask_s'] * 1e3:.3f} / "
                  f"{r['mask_max_s'] * 1e3:.3f} |")
    if "engine_path_s" in results.get("llguidance", {}):
        print(f"\nllguidance as the engine uses it (bitmask expanded to a bool array): "
              f"{results['llguidance']['engine_path_s'] * 1e3:.3f} ms median")
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
