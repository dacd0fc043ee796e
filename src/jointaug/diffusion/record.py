"""What a trained diffusion model records and when it counts as trained.

:func:`diffusion_record` is the key and settings a model's ``done`` marker records;
:func:`is_trained` reads that marker. No torch here: the task graph asks these questions
without loading a network.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from jointaug.config import DiffusionConfig
from jointaug.keys import diffusion_settings, settings_key
from jointaug.outputs import read_done

STOP_FIDELITY = "fidelity"  # done marker's stop_reason of a model stopped by its criterion


def diffusion_record(
    cfg: DiffusionConfig,
    case_ids: Sequence[str],
    device_type: str = "cpu",
    val_case_ids: Sequence[str] = (),
) -> tuple[str, dict]:
    """(key, settings) a trained model depends on: its training settings, the device type
    and precision on a GPU (nothing on the CPU: :func:`jointaug.keys.runtime_settings`)
    and its train cases; with ``stop_on_fidelity`` also the validation cases it stops on."""
    settings = diffusion_settings(cfg, device_type)
    if not cfg.stop_on_fidelity:
        key = settings_key([settings, list(case_ids)])  # the key of earlier versions, unchanged
        return key, {"diffusion": settings, "train_cases": list(case_ids)}
    key = settings_key([settings, list(case_ids), list(val_case_ids)])
    return key, {
        "diffusion": settings,
        "train_cases": list(case_ids),
        "fidelity_cases": list(val_case_ids),
    }


def is_trained(folder: Path, train_steps: int | None = None, key: str | None = None) -> bool:
    """A finished model folder (with at least ``train_steps`` steps and, given ``key``,
    trained with the same settings on the same cases)."""
    done = read_done(folder)
    if done is None:
        return False
    try:
        steps_ok = (
            train_steps is None
            or int(done["step"]) >= train_steps
            or done.get("stop_reason") == STOP_FIDELITY  # trained to its criterion
        )
    except (ValueError, KeyError, TypeError):
        return False
    return steps_ok and (key is None or done.get("key") == key)
