"""Train one fold's conditional diffusion model (``jointaug train-diffusion``).

Writes ``RUN/fold_K/diffusion/``::

    checkpoint.safetensors  everything needed to resume (net, EMA, Adam, RNG, step)
    log.csv                 step, loss, ema_loss, lr, wall_s
    samples.png             fixed conditions: condition | real | generated (EMA weights)
    model.safetensors       final raw weights;  ema.safetensors  final EMA weights (sampling)
    model.json              network config, intensity map, schedule, train cases
    done                    JSON marker written last: the folder is complete

Rerunning is idempotent: a complete folder is returned at once; an interrupted one
resumes from its checkpoint (same result as an uninterrupted run on the same device);
a complete one whose ``train_steps`` was raised trains on. The loop: Adam, L2 loss on
epsilon (whatever the head predicts, see ``model.EpsilonView``), t ~ U{0..T-1}, left-right flips of image and condition together.
"""

from __future__ import annotations

import csv
import json
import math
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from jointaug.config import DiffusionConfig
from jointaug.dataset.format import Dataset
from jointaug.diffusion import checkpoint as ck
from jointaug.diffusion.grid import samples_grid, write_png_rgb
from jointaug.diffusion.intensity import IntensityMap, fit_intensity
from jointaug.diffusion.loop import LossMeter, train_step
from jointaug.diffusion.model import (
    EMA,
    NETWORK_FIELDS,
    EpsilonView,
    build_unet,
    network_config,
)
from jointaug.diffusion.sample import NoiseSchedule, sample
from jointaug.diffusion.trainset import TrainArrays, fold_train_cases, load_train_arrays
from jointaug.files import write_text_atomic
from jointaug.keys import derived_seed, diffusion_settings, settings_key
from jointaug.outputs import StaleOutput, StaleOutputError, read_done, stale_vs, write_done
from jointaug.progress import progress_bar
from jointaug.runtime import maybe_compile, resolve_device, runtime_record
from jointaug.training import CheckpointClock, GracefulInterrupt, LogFile

LOG_COLUMNS = ("step", "loss", "ema_loss", "lr", "wall_s")
GRID_CASES = 4


def diffusion_record(cfg: DiffusionConfig, case_ids: Sequence[str]) -> tuple[str, dict]:
    """(key, settings) a trained model depends on: its training settings and train cases."""
    settings = diffusion_settings(cfg)
    key = settings_key([settings, list(case_ids)])  # the key of earlier versions, unchanged
    return key, {"diffusion": settings, "train_cases": list(case_ids)}


def is_trained(folder: Path, train_steps: int | None = None, key: str | None = None) -> bool:
    """A finished model folder (with at least ``train_steps`` steps and, given ``key``,
    trained with the same settings on the same cases)."""
    done = read_done(folder)
    if done is None:
        return False
    try:
        steps_ok = train_steps is None or int(done["step"]) >= train_steps
    except (ValueError, KeyError, TypeError):
        return False
    return steps_ok and (key is None or done.get("key") == key)


def stale_model(folder: Path, cfg: DiffusionConfig, case_ids: Sequence[str]) -> StaleOutput | None:
    """The finished model in ``folder`` if it was trained with other settings or cases."""
    key, settings = diffusion_record(network_config(cfg), case_ids)
    return stale_vs(folder, "diffusion model", key, settings)

def _grid_indices(arrays: TrainArrays, k: int = GRID_CASES) -> list[int]:
    """Up to k fixed cases for the sample grid: one per patient, inflamed cases first."""
    inflamed = arrays.channels[:, 1:].reshape(len(arrays), -1).max(1) > 0
    order = sorted(range(len(arrays)), key=lambda i: (not inflamed[i], arrays.case_ids[i]))
    chosen: list[int] = []
    for only_new_patients in (True, False):
        for i in order:
            seen = {arrays.patient_ids[j] for j in chosen}
            if len(chosen) < k and i not in chosen and (arrays.patient_ids[i] not in seen or not only_new_patients):
                chosen.append(i)
    return chosen


def _read_log(path: Path, upto_step: int) -> list[dict]:
    if not path.is_file():
        return []
    rows = []
    with open(path, newline="", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            try:
                row = {"step": int(r["step"]), **{k: float(r[k]) for k in LOG_COLUMNS[1:]}}
            except (KeyError, ValueError):
                continue
            if row["step"] <= upto_step:
                rows.append(row)
    return rows


def write_samples(
    path: Path, net: torch.nn.Module, arrays: TrainArrays, idx: list[int], intensity: IntensityMap,
    cfg: DiffusionConfig, device: torch.device, title: str,
) -> None:  # fmt: skip
    """samples.png: for the fixed cases ``idx``, condition | real | generated (seeds 0..k-1)."""
    cond = torch.from_numpy(arrays.channels[idx]).to(device)
    y = sample(net, cond, list(range(len(idx))), cfg, clip=intensity.model_range).cpu().numpy()[:, 0]
    grid = samples_grid(
        arrays.channels[idx], arrays.counts[idx], intensity.to_counts(y), intensity.scale,
        title=title, names=[arrays.case_ids[i] for i in idx],
    )  # fmt: skip
    write_png_rgb(path, grid)


def train_diffusion(
    folder: Path,
    dataset: Dataset,
    train_patients: Sequence[str],
    fold: int,
    diffusion: DiffusionConfig,
    *,
    device: str = "auto",
    progress: bool = True,
    stop_after: int | None = None,
) -> Path:
    """Train (or resume, or skip) one fold's diffusion model in ``folder``; return it.

    Args:
        folder: the model folder (``RUN/fold_K/diffusion`` in a run).
        dataset: the dataset; trains on the cases of ``train_patients`` with a tissue map.
        fold: fold index (part of the seeds and the sample-grid title).
        diffusion: the diffusion settings; device: ``auto``, ``cpu``, ``cuda``.
        progress: show a progress bar (plain lines when the output is not a terminal).
        stop_after: train at most this many steps in this call, then checkpoint and
            return without the ``done`` marker (time-sliced jobs; tests).

    Raises StaleOutputError (deleting nothing) when ``folder`` holds a finished model
    trained with other settings or cases; the caller moves it aside first to retrain.
    """
    cfg = network_config(diffusion)
    folder = Path(folder)
    cases = fold_train_cases(dataset, tuple(train_patients))
    key, record = diffusion_record(cfg, [c.case_id for c in cases])
    if is_trained(folder, cfg.train_steps, key):
        return folder
    stale = stale_vs(folder, "diffusion model", key, record)
    if stale is not None:
        raise StaleOutputError([stale])
    folder.mkdir(parents=True, exist_ok=True)
    device = resolve_device(device)
    arrays = load_train_arrays(dataset, cases, cfg.image_size)
    intensity = fit_intensity(arrays.counts, mode=cfg.intensity)
    ys = torch.from_numpy(intensity.to_model(arrays.counts))[:, None]
    cs = torch.from_numpy(arrays.channels)

    net = build_unet(cfg, init_seed=derived_seed(cfg.seed, fold, "init")).to(device)
    ema = EMA(net, cfg.ema_decay)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, fused=device.type == "cuda")
    # one generator on the training device: indices, flips, timesteps, noise (no host trips)
    gen = torch.Generator(device=device).manual_seed(derived_seed(cfg.seed, fold, "train"))
    sched = NoiseSchedule.from_config(cfg).ddpm()
    eps_net = EpsilonView(maybe_compile(net, cfg.compile), sched.alphas_cumprod, cfg.network_output)
    eps_ema = EpsilonView(ema.shadow, sched.alphas_cumprod, cfg.network_output)
    step, wall, ema_loss = 0, 0.0, float("nan")
    ckpt_path = folder / "checkpoint.safetensors"
    info = {"train_cases": arrays.case_ids, "intensity": intensity.to_json(),
            "network": {k: getattr(cfg, k) for k in NETWORK_FIELDS}}  # fmt: skip
    global_rng = cuda_rng = None
    if ckpt_path.is_file():
        tensors, meta = ck.load_tensors(ckpt_path)
        changed = [k for k in info if meta.get(k) != info[k]]
        if changed:
            raise ValueError(
                f"{ckpt_path}: was written with other {', '.join(changed)} (train cases, intensity "
                f"map or network settings) than fold {fold} has now; restore them or delete {folder}"
            )
        try:
            net.load_state_dict(ck.unprefixed("net", tensors))
            ema.shadow.load_state_dict(ck.unprefixed("ema", tensors))
            ck.load_optimizer(opt, tensors, meta["optim_groups"])
            ck.set_generator_state(gen, tensors["rng.train"])
        except (RuntimeError, KeyError, ValueError) as exc:
            raise ValueError(
                f"{ckpt_path}: does not fit the configured network or device ({exc}); the diffusion "
                f"settings changed since it was written: restore them or delete {folder}"
            ) from exc
        global_rng = tensors["rng.global"]
        cuda_rng = tensors.get("rng.cuda")
        step, wall, ema_loss = int(meta["step"]), float(meta["wall_s"]), float(meta["ema_loss"])
        ema.updates = int(meta["ema_updates"])
    (folder / "done").unlink(missing_ok=True)
    log = LogFile(folder / "log.csv", LOG_COLUMNS, _read_log(folder / "log.csv", step))
    grid_idx = _grid_indices(arrays)
    log_every = max(1, cfg.train_steps // 1000)
    end = cfg.train_steps if stop_after is None else min(cfg.train_steps, step + stop_after)
    meter = LossMeter(device, ema_loss)
    clock = CheckpointClock(cfg.checkpoint_minutes, cfg.checkpoint_every, end)

    def save_checkpoint() -> None:
        opt_tensors, groups = ck.optimizer_tensors(opt)
        tensors = {
            **ck.prefixed("net", net.state_dict()), **ck.prefixed("ema", ema.shadow.state_dict()),
            **opt_tensors, "rng.train": gen.get_state(), "rng.global": torch.get_rng_state(),
        }  # fmt: skip
        if device.type == "cuda":
            tensors["rng.cuda"] = torch.cuda.get_rng_state(device)
        meta = {"step": step, "wall_s": wall, "ema_loss": meter.read()[1], "ema_updates": ema.updates,
                "optim_groups": groups, **info}  # fmt: skip
        ck.save_tensors(ckpt_path, tensors, meta)
        clock.reset()

    ys, cs = ys.to(device), cs.to(device)
    bar = progress_bar(cfg.train_steps, step, f"diffusion fold {fold}", "step", enabled=progress)
    # dropout draws from torch's global generator: fork it so training neither reads
    # nor disturbs the caller's random state, and restore it on resume
    cuda = device.type == "cuda"
    with torch.random.fork_rng(devices=[device] if cuda else []):
        torch.manual_seed(derived_seed(cfg.seed, fold, "dropout"))
        if global_rng is not None:
            torch.set_rng_state(global_rng)
            if cuda and cuda_rng is not None:
                torch.cuda.set_rng_state(cuda_rng, device)
        first = step + 1  # first step of the current log interval
        # Ctrl-C: finish the step, checkpoint, then KeyboardInterrupt (resume stays exact)
        with GracefulInterrupt(f"diffusion fold {fold}") as stop:
            try:
                while step < end:
                    t0 = time.perf_counter()
                    train_step(net, eps_net, ema, opt, sched, gen, ys, cs, cfg, step, meter)
                    step += 1
                    wall += time.perf_counter() - t0
                    bar.update(1)
                    row_due = step % log_every == 0 or step == cfg.train_steps
                    ckpt_due = clock.due(step) or stop.requested
                    if not (row_due or ckpt_due):
                        continue
                    mean, ema_loss = meter.read()  # the one synchronisation of the interval
                    if not math.isfinite(mean):
                        raise FloatingPointError(
                            f"diffusion fold {fold}: loss became {mean} in steps {first}-{step}; "
                            f"lower diffusion.lr (now {cfg.lr})"
                        )
                    bar.set_postfix(loss=f"{ema_loss:.4f}")
                    if row_due:
                        log.append({"step": step, "loss": mean, "ema_loss": ema_loss,
                                    "lr": float(opt.param_groups[0]["lr"]), "wall_s": wall})  # fmt: skip
                        meter.reset_interval()
                        first = step + 1
                    if step % cfg.sample_every == 0 or step == cfg.train_steps:
                        write_samples(folder / "samples.png", eps_ema, arrays, grid_idx, intensity, cfg,
                                      device, f"fold {fold}, step {step}, EMA, {cfg.sampler}")  # fmt: skip
                    if ckpt_due:
                        save_checkpoint()
                    if stop.requested:
                        raise KeyboardInterrupt
            finally:
                bar.close()
    if step < cfg.train_steps:
        return folder
    ck.save_tensors(folder / "model.safetensors", net.state_dict(), {"step": step})
    ck.save_tensors(folder / "ema.safetensors", ema.shadow.state_dict(), {"step": step})
    model_info = {
        "fold": fold, "step": step, "wall_s": wall, **runtime_record(device),
        "diffusion": cfg.model_dump(), **info,
    }  # fmt: skip
    write_text_atomic(folder / "model.json", json.dumps(model_info, indent=2) + "\n")
    write_done(folder, key, record, step=step)
    return folder
