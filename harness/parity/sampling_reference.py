"""Reference for what InfiniCore's random_sample computes, written from its documented semantics:
sort by logit (descending), weights exp((l - max) / T), keep the top-k and the smallest prefix whose mass
reaches top_p of the total (the token that crosses the top_p boundary keeps only the part of its mass that
lies below it), then take the first token whose cumulative weight reaches random * kept_mass.
Greedy (argmax) when random == 0, top_p == 0, top_k == 1 or temperature == 0."""

from __future__ import annotations

import torch


def reference_sample(logits: torch.Tensor, random_val: float, top_p: float, top_k: int, temperature: float) -> int:
    logits = logits.float()
    if random_val == 0 or top_p == 0 or top_k == 1 or temperature == 0:
        return int(torch.argmax(logits).item())
    values, order = torch.sort(logits, descending=True, stable=True)
    weights = torch.exp((values - values[0]) / temperature)
    cumulative = torch.cumsum(weights, 0)
    k = min(top_k, logits.numel())
    limit = random_val * min(cumulative[k - 1].item(), cumulative[-1].item() * top_p)
    index = int(torch.searchsorted(cumulative, torch.tensor([limit]), right=False).item())
    return int(order[min(index, logits.numel() - 1)].item())


def reference_distribution(logits: torch.Tensor, top_p: float, top_k: int, temperature: float) -> torch.Tensor:
    """Probability of each token under reference_sample with random ~ U[0, 1)."""
    logits = logits.float().double()
    values, order = torch.sort(logits, descending=True, stable=True)
    weights = torch.exp((values - values[0]) / temperature)
    cumulative = torch.cumsum(weights, 0)
    k = min(top_k, logits.numel())
    kept = min(cumulative[k - 1].item(), cumulative[-1].item() * top_p)
    lower = torch.cat([torch.zeros(1, dtype=torch.float64), cumulative[:-1]])
    mass = (torch.clamp(cumulative, max=kept) - torch.clamp(lower, max=kept)) / kept
    probs = torch.zeros_like(mass)
    probs[order] = mass
    return probs
