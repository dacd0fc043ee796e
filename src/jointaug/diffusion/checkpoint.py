"""Training checkpoints and weights as safetensors files, written atomically.

A checkpoint is ONE safetensors file, so it is replaced in one rename and can never be
half old, half new. Tensors: ``net.*`` (model state), ``ema.*`` (EMA shadow state),
``optim.<param>.<key>`` (Adam moments and step counts), ``rng.*`` (generator states as
uint8 tensors). The safetensors metadata holds one JSON string under ``"state"``: step
counters, optimiser param groups, wall time and anything else the trainer keeps.
No pickle anywhere.
"""

from __future__ import annotations

import json
import os

import torch

from jointaug import weights


def save_tensors(
    path: str | os.PathLike, tensors: dict[str, torch.Tensor], meta: dict | None = None
) -> None:
    """Write ``tensors`` (+ JSON ``meta`` under the ``state`` key) to a safetensors file atomically."""
    weights.save_tensors(path, tensors, {"state": json.dumps(meta or {})})


def load_tensors(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    """Read a safetensors file -> (tensors on CPU, JSON meta or {})."""
    tensors, metadata = weights.load_tensors(path)
    try:
        return tensors, json.loads(metadata.get("state", "{}"))
    except ValueError as exc:
        raise ValueError(f"{path}: cannot read safetensors weights ({exc})") from exc


prefixed = weights.prefixed
unprefixed = weights.unprefixed


def optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list[dict]]:
    """An optimiser's state dict flattened: tensors ``optim.<param>.<key>`` and param groups."""
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    for pid, st in sd["state"].items():
        for key, value in st.items():
            tensors[f"optim.{pid}.{key}"] = value if torch.is_tensor(value) else torch.tensor(value)
    return tensors, sd["param_groups"]


def load_optimizer(
    opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], groups: list[dict]
) -> None:
    """Inverse of :func:`optimizer_tensors` (tensors moved to the parameters' device by torch)."""
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in unprefixed("optim", tensors).items():
        pid, key = name.split(".", 1)
        state.setdefault(int(pid), {})[key] = value
    opt.load_state_dict({"state": state, "param_groups": groups})


def set_generator_state(gen: torch.Generator, state: torch.Tensor) -> None:
    gen.set_state(state.to(torch.uint8))
