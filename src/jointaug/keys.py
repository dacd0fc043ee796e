"""The one home of settings keys and seed derivation (numbers stable across versions).

Settings keys: a finished output (diffusion model, augmentation set, classifier)
records *what it depends on* as a JSON-able ``record`` and a short ``key`` of it; a
later run recomputes the record from the current config and compares. The fields
below do not change what is trained, so they are left out of the records.

Seeds: every random stream is derived from the profile's seed(s) and the stage's
coordinates (fold, purpose, case index) by ``numpy.random.SeedSequence``, so a stage
run alone, resumed, or on another machine draws the same numbers.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from collections.abc import Mapping
from typing import Any

import numpy as np

# classify.*: how fast a training runs, not what it learns; ``seeds`` is the list of
# runs (each training records its own seed)
CLASSIFY_NOT_TRAINING = frozenset(
    {"seeds", "num_workers", "amp", "channels_last", "checkpoint_minutes", "compile"}
)
# diffusion.*: how samples are drawn or logged; train_steps can be raised to train on
DIFFUSION_NOT_TRAINING = frozenset(
    {
        "sampler",
        "fast_steps",
        "sample_batch_size",
        "sample_every",
        "checkpoint_every",
        "train_steps",
        "checkpoint_minutes",
        "amp",
        "compile",
        "guidance_scale",
        "upsample",
    }
)


# diffusion.*: the stopping criterion's settings, recorded only when it is on (models
# trained before it existed, and every model trained without it, keep their keys)
FIDELITY_FIELDS = frozenset(
    {
        "stop_on_fidelity",
        "fidelity_every",
        "fidelity_patience",
        "fidelity_min_delta",
        "fidelity_cases",
    }
)


def settings_key(record: Any) -> str:
    """16 hex digits of sha256 over the canonical JSON of ``record``."""
    blob = json.dumps(record, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def runtime_settings(device_type: str, amp: bool) -> dict:
    """What a trained output records of how it was computed: ``{}`` on the CPU and
    ``{"device": "cuda", "amp": amp}`` on a GPU.

    A model trained on the CPU is not the one a GPU run would train (other random
    streams: the diffusion generator lives on the device; other kernels; bf16 under
    ``amp``), so a GPU run must not silently reuse it: the device type and precision are
    part of the settings key. The CPU (float32: autocast is off there) is the default
    every output was made with before this field existed, so it adds NOTHING to the
    record and every existing CPU key is unchanged; a CPU-made output seen by a GPU run
    (or the reverse) is reported stale (``runtime.device: <unset> -> "cuda"``), never
    reused or deleted. ``amp`` counts only on CUDA (on the CPU it changes nothing)."""
    if device_type == "cpu":
        return {}
    return {"device": device_type, "amp": bool(amp)}


def _with_runtime(record: dict, device_type: str, amp: bool) -> dict:
    rt = runtime_settings(device_type, amp)
    return {**record, "runtime": rt} if rt else record


# classify.* keys added after classifiers were first recorded, with their defaults: left out
# of the record while at the default, so outputs made before them keep their keys
CLASSIFY_LATER_KEYS = {"lr_aware": False, "per_hand": False}


def classify_settings(cfg, device_type: str = "cpu") -> dict:
    """A ClassifyConfig as recorded by a classifier (speed flags and seeds list left out;
    later keys only when set away from their defaults), trained on ``device_type``
    (:func:`runtime_settings`: nothing added on the CPU)."""
    out = cfg.model_dump(exclude=set(CLASSIFY_NOT_TRAINING))
    for k, default in CLASSIFY_LATER_KEYS.items():
        if k in out and out[k] == default:
            del out[k]
    return _with_runtime(out, device_type, cfg.amp)


# perlin.*: keys added later, recorded only when set away from their defaults (sets made
# before them keep their keys)
PERLIN_LATER_KEYS = {"min_fraction": 0.0}


def perlin_settings(cfg) -> dict | None:
    """A PerlinConfig as recorded by a set's conditions (None: no variation)."""
    if cfg is None:
        return None
    out = cfg.model_dump()
    for k, default in PERLIN_LATER_KEYS.items():
        if k in out and out[k] == default:
            del out[k]
    return out


def diffusion_settings(cfg, device_type: str = "cpu") -> dict:
    """A DiffusionConfig as recorded by a trained model (sampling/logging left out),
    trained on ``device_type`` (:func:`runtime_settings`: nothing added on the CPU)."""
    skip = set(DIFFUSION_NOT_TRAINING)
    if not getattr(cfg, "stop_on_fidelity", False):
        skip |= FIDELITY_FIELDS
    return _with_runtime(cfg.model_dump(exclude=skip), device_type, cfg.amp)


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, Mapping):
        out: dict[str, Any] = {}
        for k, v in tree.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: tree}


def _short(value: Any, width: int = 60) -> str:
    text = json.dumps(value, default=str)
    if isinstance(value, list) and len(text) > width:
        return f"[{len(value)} items]"
    return text if len(text) <= width else text[: width - 3] + "..."


def changed_settings(old: Any, new: Any) -> list[str]:
    """Dotted keys whose values differ, as ``key: old -> new`` lines (sorted)."""
    a, b = _flatten(old), _flatten(new)
    lines = []
    for k in sorted(set(a) | set(b)):
        if a.get(k, "<unset>") != b.get(k, "<unset>"):
            lines.append(f"{k}: {_short(a.get(k, '<unset>'))} -> {_short(b.get(k, '<unset>'))}")
    return lines


# ---- seeds ------------------------------------------------------------------------------


def derived_seed(*parts: int | str) -> int:
    """A 63-bit seed from integers and strings (stable across processes and platforms)."""
    ints = [
        p
        if isinstance(p, int)
        else int.from_bytes(hashlib.sha256(p.encode()).digest()[:8], "little")
        for p in parts
    ]
    return int(np.random.SeedSequence(ints).generate_state(1, np.uint64)[0] >> np.uint64(1))


def job_seed(seed: int, fold: int) -> int:
    """A classifier's training seed for (seed, fold): other initialisations per fold."""
    return int(np.random.SeedSequence([int(seed), int(fold)]).generate_state(1)[0])


def split_seed(seed: int) -> tuple[int, int, int]:
    """A classifier's (init, data, torch-global) seeds from its training seed."""
    a, b, c = np.random.SeedSequence(int(seed)).generate_state(3)
    return int(a), int(b), int(c)


def case_seed(seed: int, fold: int, name: str, index: int) -> np.random.SeedSequence:
    """Synthetic case ``index`` of augmentation set ``name`` of ``fold``."""
    return np.random.SeedSequence([int(seed), int(fold), zlib.crc32(name.encode()), int(index)])
