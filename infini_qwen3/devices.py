"""Which devices a model runs on: one device, or ndev ranks of tensor parallelism (heads and MLP columns split
across them, InfiniCCL all-reduces between). On the CPU the ranks are threads of one process on the host, so
every rank's device id is 0; on an accelerator each rank needs a device of its own."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

DEVICE_CHOICES = ("cpu", "nvidia")


def rank_devices(device: str, device_id: int = 0, ndev: int = 1, device_ids: Sequence[int] | None = None) -> list[int]:
    """The device id of each rank. device_ids, when given, names them (ndev must then be 1 or their count);
    else ndev devices from device_id on (on the CPU: the host, ndev times)."""
    if ndev < 1:
        raise ValueError(f"ndev must be >= 1, got {ndev}")
    if device_ids is not None:
        ids = [int(i) for i in device_ids]
        if not ids:
            raise ValueError("device_ids must name at least one device")
        if ndev not in (1, len(ids)):
            raise ValueError(f"ndev {ndev} does not match the {len(ids)} device ids {ids}")
        return ids
    if device == "cpu":
        return [device_id] * ndev
    return list(range(device_id, device_id + ndev))


def device_ids_arg(text: str) -> list[int]:
    try:
        ids = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated device ids such as 0,1, got {text!r}") from None
    if not ids:
        raise argparse.ArgumentTypeError("expected at least one device id")
    return ids


def add_device_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="cpu", choices=DEVICE_CHOICES)
    p.add_argument("--device-id", type=int, default=0, help="the (first) device")
    p.add_argument("--ndev", type=int, default=1,
                   help="tensor parallelism over this many ranks (on the CPU: threads sharing the cores)")
    p.add_argument("--device-ids", type=device_ids_arg,
                   help="comma-separated device of each rank, e.g. 0,1 (instead of --device-id/--ndev)")


def model_device_kwargs(args: argparse.Namespace) -> dict:
    """The Qwen3Model keyword arguments of add_device_arguments' options."""
    return {"device": args.device, "device_ids": rank_devices(args.device, args.device_id, args.ndev, args.device_ids)}
