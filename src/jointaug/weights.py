"""Tensors to and from safetensors files, atomically (no pickle anywhere).

The one place the toolkit reads and writes weight files; the classifier's and the
diffusion model's checkpoints (``classify/checkpoint.py``, ``diffusion/checkpoint.py``)
build on it. Metadata is a dict of strings, as safetensors stores it.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save

from jointaug.files import write_bytes_atomic


class WeightsError(ValueError):
    """A file that is not a readable safetensors file."""


def save_tensors(
    path: str | os.PathLike,
    tensors: dict[str, torch.Tensor],
    metadata: dict[str, str] | None = None,
) -> None:
    """Write tensors (contiguous CPU copies: safetensors refuses shared storage) atomically.

    The file is serialised in memory and written by :func:`write_bytes_atomic` (the same
    bytes ``safetensors.torch.save_file`` writes), so a full disk raises
    :class:`~jointaug.dataset.io.DiskFullError` and the previous file stays as it was;
    ``save_file`` itself reports a full disk as an opaque ``SafetensorError``.
    """
    flat = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    write_bytes_atomic(path, save(flat, metadata=metadata))


def load_tensors(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read a safetensors file -> (tensors on the CPU, metadata)."""
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    except FileNotFoundError:
        raise
    except Exception as exc:  # corrupt or foreign file
        raise WeightsError(f"{path}: not a readable safetensors file ({exc})") from exc
    return tensors, meta


def prefixed(prefix: str, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``{"w": t}`` -> ``{"prefix.w": t}`` (several state dicts in one file)."""
    return {f"{prefix}.{k}": v for k, v in state.items()}


def unprefixed(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Inverse of :func:`prefixed`: the tensors under ``prefix.``, without it."""
    p = prefix + "."
    return {k[len(p) :]: v for k, v in tensors.items() if k.startswith(p)}
