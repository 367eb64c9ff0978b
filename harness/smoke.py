"""Does the model run on this device at all? One prefill, one decode step and one sampled token on a tiny
random checkpoint, with the logits checked against transformers (f32, CPU). Prints one line per step; the
platform harness runs it before the parity suite so that a crash is localized to a step, not a test.
    python -m harness.smoke --device nvidia [--dtype f32]"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from harness.fixtures.blocks import slot_blocks
from harness.fixtures.checkpoints import checkpoint
from infini_qwen3.model import Qwen3Model, SamplingParams, StepRequest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="f32")
    args = parser.parse_args(argv)
    from transformers import Qwen3ForCausalLM

    with tempfile.TemporaryDirectory() as root:
        path = checkpoint(Path(root), num_hidden_layers=2, seed=1)
        prompt = [11, 22, 33, 44, 55]
        reference = Qwen3ForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
        with torch.no_grad():
            expected = reference(torch.tensor([prompt + [66]])).logits[0].numpy()
        with Qwen3Model(path, device=args.device, dtype=args.dtype, max_model_len=32, kv_cache_tokens=64) as model:
            print(f"[smoke] loaded on {args.device} ({args.dtype})", flush=True)
            prefill = model.forward([StepRequest(prompt, 0, slot_blocks(model, 0))])
            report("prefill", prefill[0], expected[len(prompt) - 1])
            decode = model.forward([StepRequest([66], len(prompt), slot_blocks(model, 0))])
            report("decode", decode[0], expected[len(prompt)])
            greedy = SamplingParams(temperature=0.0)
            token = model.infer([StepRequest([66], len(prompt), slot_blocks(model, 0), greedy)])
            print(f"[smoke] greedy token {token[0]} (argmax of reference {int(expected[len(prompt)].argmax())})")
    return 0


def report(step: str, ours: np.ndarray, expected: np.ndarray) -> None:
    error = float(np.linalg.norm(ours - expected) / np.linalg.norm(expected))
    print(f"[smoke] {step}: logits rel. L2 error vs transformers f32 {error:.3g}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
