"""Weights and resumable training state in safetensors (no pickle anywhere).

``model.safetensors``: the network's state dict; its metadata holds the architecture
and label names as JSON (see :func:`jointaug.classify.model.model_metadata`).

``checkpoint.safetensors`` (written atomically at an evaluation, at most every
``classify.checkpoint_minutes``, and at the end): one file holding
the model (``model.*``), the best model so far (``best.*``), the Adam state
(``optim.<param index>.<key>``), the data generator's state (``rng.data``) and the global
torch RNG states (``rng.torch``, ``rng.cuda``, used by dropout), plus a JSON ``state``
string in the metadata (samples seen, epoch, best validation GMS, early-stop counters,
the log rows, wall time, optimizer param groups, a config fingerprint). Being one file,
it is never half-updated: a killed run resumes from the last evaluation exactly.
"""

from __future__ import annotations

import json
import os

import torch

from jointaug import weights
from jointaug.weights import WeightsError


class CheckpointError(WeightsError):
    """A weights or checkpoint file that cannot be used."""


def load_tensors(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read a safetensors file -> (tensors on the CPU, metadata); CheckpointError if unreadable."""
    try:
        return weights.load_tensors(path)
    except WeightsError as exc:
        raise CheckpointError(str(exc)) from exc


save_tensors = weights.save_tensors
_prefixed = weights.prefixed
_unprefixed = weights.unprefixed


def save_checkpoint(
    path: str | os.PathLike,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    best: dict[str, torch.Tensor],
    data_generator: torch.Generator,
    state: dict,
) -> None:
    """Write the whole training state (module docstring) atomically."""
    tensors = _prefixed("model", model.state_dict())
    tensors.update(_prefixed("best", best))
    opt = optimizer.state_dict()
    plain: dict[str, object] = {}
    for idx, st in opt["state"].items():
        for key, val in st.items():
            if torch.is_tensor(val):
                tensors[f"optim.{idx}.{key}"] = val
            else:
                plain[f"{idx}.{key}"] = val
    tensors["rng.data"] = data_generator.get_state()
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        tensors["rng.cuda"] = torch.cuda.get_rng_state()
    full_state = dict(state, optim_groups=opt["param_groups"], optim_plain=plain)
    save_tensors(path, tensors, {"state": json.dumps(full_state)})


def load_checkpoint(
    path: str | os.PathLike,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    data_generator: torch.Generator,
) -> tuple[dict[str, torch.Tensor], dict]:
    """Restore model, optimizer and RNG states in place; return (best state dict, state)."""
    tensors, meta = load_tensors(path)
    try:
        state = json.loads(meta["state"])
        model.load_state_dict(_unprefixed("model", tensors))
        opt_state: dict[int, dict] = {}
        for key, val in tensors.items():
            if key.startswith("optim."):
                _, idx, name = key.split(".", 2)
                opt_state.setdefault(int(idx), {})[name] = val
        for key, val in state.pop("optim_plain").items():
            idx, name = key.split(".", 1)
            opt_state.setdefault(int(idx), {})[name] = val
        optimizer.load_state_dict({"state": opt_state, "param_groups": state.pop("optim_groups")})
        data_generator.set_state(tensors["rng.data"])
        torch.set_rng_state(tensors["rng.torch"])
        if "rng.cuda" in tensors and torch.cuda.is_available():
            torch.cuda.set_rng_state(tensors["rng.cuda"])
    except (KeyError, RuntimeError, ValueError) as exc:
        raise CheckpointError(
            f"{path}: checkpoint does not fit this model or config ({exc}); "
            "delete it or rerun with --force"
        ) from exc
    return _unprefixed("best", tensors), state
