"""Train one fold's conditional diffusion model (``jointaug train-diffusion``).

Writes ``RUN/fold_K/diffusion/``::

    checkpoint.safetensors  everything needed to resume (net, EMA, Adam, RNG, step)
    log.csv                 step, loss, ema_loss, lr, wall_s
    progress.png, events/   the log as curves; TensorBoard event files (jointaug.curves)
    samples.png             fixed conditions: condition | real | generated (EMA weights)
    model.safetensors       final raw weights;  ema.safetensors  final EMA weights (sampling)
    model.json              network config, intensity map, schedule, train cases
    done                    JSON marker written last: the folder is complete

Rerunning is idempotent: a complete folder is returned at once; an interrupted one
resumes from its checkpoint (same result as an uninterrupted run on the same device);
a complete one whose ``train_steps`` was raised trains on. The loop: Adam, L2 loss on
epsilon (whatever the head predicts, see ``model.EpsilonView``), t ~ U{0..T-1}, left-right
flips of image and condition together; one step is :func:`jointaug.diffusion.loop.train_step`.

Shaped like the classifier's loop (``classify/train.py``): how a call runs is a
:class:`TrainOptions`, where the training stands a :class:`TrainState` (what the
checkpoint records), and the loop itself is :func:`_train`.
"""

from __future__ import annotations

import csv
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from jointaug.config import DiffusionConfig
from jointaug.curves import CurveSpec, Panel
from jointaug.dataset.format import Dataset
from jointaug.diffusion import checkpoint as ck
from jointaug.diffusion.criterion import FidelityProbe, Plateau
from jointaug.diffusion.intensity import IntensityMap, fit_intensity
from jointaug.diffusion.loop import DiffusionStep, LossMeter, train_step
from jointaug.diffusion.model import (
    EMA,
    NETWORK_FIELDS,
    EpsilonView,
    build_unet,
    network_config,
)
from jointaug.diffusion.record import STOP_FIDELITY, diffusion_record, is_trained
from jointaug.diffusion.sample import NoiseSchedule
from jointaug.diffusion.samples import grid_indices, write_samples
from jointaug.diffusion.trainset import TrainArrays, fold_train_cases, load_train_arrays
from jointaug.files import write_text_atomic
from jointaug.keys import derived_seed
from jointaug.outputs import DONE, StaleOutputError, stale_vs, write_done
from jointaug.progress import progress_bar
from jointaug.runtime import maybe_compile, resolve_device, runtime_record
from jointaug.training import CheckpointClock, GracefulInterrupt, LogFile

LOG_COLUMNS = ("step", "loss", "ema_loss", "lr", "wall_s")
CURVES = CurveSpec(  # events/ and progress.png (jointaug.curves)
    x="step",
    xlabel="step",
    tags=(("loss", "loss/train"), ("ema_loss", "loss/train_ema"), ("lr", "lr")),
    panels=(
        Panel(
            "loss (L2 on the noise; mean of the log interval, and its EMA)",
            ("loss", "ema_loss"),
            log_y=True,
        ),
        Panel("learning rate", ("lr",)),
    ),
)


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


@dataclass(frozen=True)
class TrainOptions:
    """How one training call runs (none of these changes the model)."""

    device: str = "auto"  # auto, cpu, cuda
    progress: bool = True  # a progress bar (plain lines when the output is not a terminal)
    stop_after: int | None = None  # train at most this many steps in this call, then
    # checkpoint and return without the ``done`` marker (time-sliced jobs; tests)


@dataclass
class TrainState:
    """Where one training stands. A checkpoint records ``step``, ``wall_s`` and ``ema_loss``
    in its metadata and the RNG states as tensors (``rng.global``, ``rng.cuda``)."""

    step: int = 0
    wall_s: float = 0.0
    ema_loss: float = math.nan
    global_rng: torch.Tensor | None = None  # torch's global generator (dropout) at ``step``
    cuda_rng: torch.Tensor | None = None
    first: int = 1  # the first step of the current log interval
    plateau: Plateau | None = None  # the stopping criterion's checks (stop_on_fidelity)
    stopped: bool = False  # stopped by the criterion at ``step``


@dataclass
class _Fold:
    """One fold's training: the output folder, inputs, and what a step works on."""

    folder: Path
    fold: int
    cfg: DiffusionConfig
    device: torch.device
    arrays: TrainArrays
    intensity: IntensityMap
    parts: DiffusionStep
    eps_ema: torch.nn.Module
    info: dict  # what a checkpoint must agree with (train cases, intensity map, network)
    probe: FidelityProbe | None = None  # held-out conditions of the stopping criterion

    @property
    def checkpoint(self) -> Path:
        return self.folder / "checkpoint.safetensors"


def train_diffusion(
    folder: Path,
    dataset: Dataset,
    train_patients: Sequence[str],
    fold: int,
    diffusion: DiffusionConfig,
    options: TrainOptions | None = None,
    val_patients: Sequence[str] = (),
) -> Path:
    """Train (or resume, or skip) one fold's diffusion model in ``folder``; return it.

    Args:
        folder: the model folder (``RUN/fold_K/diffusion`` in a run).
        dataset: the dataset; trains on the cases of ``train_patients`` with a tissue map.
        fold: fold index (part of the seeds and the sample-grid title).
        diffusion: the diffusion settings; options: device, progress bar, ``stop_after``.
        val_patients: the fold's validation patients: their conditions are what
            ``stop_on_fidelity`` scores (:mod:`jointaug.diffusion.criterion`).

    Raises StaleOutputError (deleting nothing) when ``folder`` holds a finished model
    trained with other settings or cases; the caller moves it aside first to retrain.
    """
    opt = options or TrainOptions()
    cfg = network_config(diffusion)
    folder = Path(folder)
    cases = fold_train_cases(dataset, tuple(train_patients))
    device = resolve_device(opt.device)
    val_cases = fold_train_cases(dataset, tuple(val_patients)) if cfg.stop_on_fidelity else []
    key, record = diffusion_record(
        cfg, [c.case_id for c in cases], device.type, [c.case_id for c in val_cases]
    )
    if is_trained(folder, cfg.train_steps, key):
        return folder
    stale = stale_vs(folder, "diffusion model", key, record)
    if stale is not None:
        raise StaleOutputError([stale])
    folder.mkdir(parents=True, exist_ok=True)
    run = _prepare(
        folder,
        fold,
        cfg,
        device,
        load_train_arrays(dataset, cases, cfg.image_size),
    )
    st = _resume(run) if run.checkpoint.is_file() else TrainState()
    if cfg.stop_on_fidelity:
        run.probe, st.plateau = _criterion(run, dataset, val_cases, st)
    run.parts.meter = LossMeter(run.device, st.ema_loss)
    (folder / DONE).unlink(missing_ok=True)
    end = (
        cfg.train_steps
        if opt.stop_after is None
        else min(cfg.train_steps, st.step + opt.stop_after)
    )
    _train(run, st, end, opt.progress)
    if st.step < cfg.train_steps and not st.stopped:
        return folder
    _finish(run, st, key, record)
    return folder


def _prepare(
    folder: Path, fold: int, cfg: DiffusionConfig, device: torch.device, arrays: TrainArrays
) -> _Fold:
    """The network, EMA, Adam, the one training generator and the data on ``device``."""
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
    parts = DiffusionStep(
        net, eps_net, ema, opt, sched, gen, ys.to(device), cs.to(device), cfg, LossMeter(device)
    )
    info = {
        "train_cases": arrays.case_ids,
        "intensity": intensity.to_json(),
        "network": {k: getattr(cfg, k) for k in NETWORK_FIELDS},
    }
    return _Fold(folder, fold, cfg, device, arrays, intensity, parts, eps_ema, info)


def _criterion(run: _Fold, dataset: Dataset, val_cases: list, st: TrainState):
    """The stopping criterion's probe (None without validation conditions: the model then
    trains to ``train_steps``) and its checks so far (from the checkpoint)."""
    cfg = run.cfg
    plateau = Plateau.from_json(st.plateau, cfg.fidelity_patience, cfg.fidelity_min_delta)
    if not val_cases:
        print(f"diffusion fold {run.fold}: stop_on_fidelity without validation tissue maps: off")
        return None, plateau
    arrays = load_train_arrays(dataset, val_cases, cfg.image_size)
    probe = FidelityProbe(
        arrays.counts, arrays.channels, run.intensity.to_model, cfg, run.fold, run.device
    )
    return probe, plateau


def _check_fidelity(run: _Fold, st: TrainState) -> None:
    """Every ``fidelity_every`` steps: score the EMA model; stop on a plateau."""
    if run.probe is None or st.plateau is None or st.step % run.cfg.fidelity_every:
        return
    score = run.probe.score(run.eps_ema, run.intensity.model_range)
    st.stopped = st.plateau.update(st.step, score)


def _resume(run: _Fold) -> TrainState:
    """Load the checkpoint into ``run``'s parts; the state it was written at."""
    path, p = run.checkpoint, run.parts
    tensors, meta = ck.load_tensors(path)
    changed = [k for k in run.info if meta.get(k) != run.info[k]]
    if changed:
        raise ValueError(
            f"{path}: was written with other {', '.join(changed)} (train cases, intensity "
            f"map or network settings) than fold {run.fold} has now; restore them or delete {run.folder}"
        )
    try:
        p.net.load_state_dict(ck.unprefixed("net", tensors))
        p.ema.shadow.load_state_dict(ck.unprefixed("ema", tensors))
        ck.load_optimizer(p.opt, tensors, meta["optim_groups"])
        ck.set_generator_state(p.gen, tensors["rng.train"])
    except (RuntimeError, KeyError, ValueError) as exc:
        raise ValueError(
            f"{path}: does not fit the configured network or device ({exc}); the diffusion "
            f"settings changed since it was written: restore them or delete {run.folder}"
        ) from exc
    p.ema.updates = int(meta["ema_updates"])
    return TrainState(
        int(meta["step"]),
        float(meta["wall_s"]),
        float(meta["ema_loss"]),
        tensors["rng.global"],
        tensors.get("rng.cuda"),
        plateau=meta.get("fidelity"),  # a dict here; _criterion makes it a Plateau
        stopped=bool(meta.get("stopped", False)),
    )


def _save_checkpoint(run: _Fold, st: TrainState) -> None:
    p = run.parts
    opt_tensors, groups = ck.optimizer_tensors(p.opt)
    tensors = {
        **ck.prefixed("net", p.net.state_dict()),
        **ck.prefixed("ema", p.ema.shadow.state_dict()),
        **opt_tensors,
        "rng.train": p.gen.get_state(),
        "rng.global": torch.get_rng_state(),
    }
    if run.device.type == "cuda":
        tensors["rng.cuda"] = torch.cuda.get_rng_state(run.device)
    meta = {
        "step": st.step,
        "wall_s": st.wall_s,
        "ema_loss": p.meter.read()[1],
        "ema_updates": p.ema.updates,
        "optim_groups": groups,
        **run.info,
    }
    if st.plateau is not None:
        meta["fidelity"], meta["stopped"] = st.plateau.to_json(), st.stopped
    ck.save_tensors(run.checkpoint, tensors, meta)


def _train(run: _Fold, st: TrainState, end: int, progress: bool) -> None:
    """Steps ``st.step`` .. ``end``: log rows, sample grids and checkpoints when due.

    Dropout draws from torch's global generator: it is forked, so training neither reads
    nor disturbs the caller's random state, and restored on resume. Ctrl-C finishes the
    step, checkpoints, then raises KeyboardInterrupt (resume stays exact)."""
    cfg, p, device = run.cfg, run.parts, run.device
    kept = _read_log(run.folder / "log.csv", st.step)
    log = LogFile(run.folder / "log.csv", LOG_COLUMNS, kept, CURVES)
    grid_idx = grid_indices(run.arrays)
    log_every = max(1, cfg.train_steps // 1000)
    clock = CheckpointClock(cfg.checkpoint_minutes, cfg.checkpoint_every, end)
    bar = progress_bar(
        cfg.train_steps, st.step, f"diffusion fold {run.fold}", "step", enabled=progress
    )
    cuda = device.type == "cuda"
    with (
        torch.random.fork_rng(devices=[device] if cuda else []),
        GracefulInterrupt(f"diffusion fold {run.fold}") as stop,
    ):
        torch.manual_seed(derived_seed(cfg.seed, run.fold, "dropout"))
        if st.global_rng is not None:
            torch.set_rng_state(st.global_rng)
            if cuda and st.cuda_rng is not None:
                torch.cuda.set_rng_state(st.cuda_rng, device)
        st.first = st.step + 1
        try:
            while st.step < end and not st.stopped:
                t0 = time.perf_counter()
                train_step(p, st.step)
                st.step += 1
                st.wall_s += time.perf_counter() - t0
                _check_fidelity(run, st)
                bar.update(1)
                row_due = st.step % log_every == 0 or st.step == cfg.train_steps
                ckpt_due = clock.due(st.step) or stop.requested
                if not (row_due or ckpt_due):
                    continue
                _interval_end(run, st, log if row_due else None, bar)
                if st.step % cfg.sample_every == 0 or st.step == cfg.train_steps:
                    write_samples(
                        run.folder / "samples.png",
                        run.eps_ema,
                        run.arrays,
                        grid_idx,
                        run.intensity,
                        cfg,
                        device,
                        f"fold {run.fold}, step {st.step}, EMA, {cfg.sampler}",
                    )
                if ckpt_due:
                    _save_checkpoint(run, st)
                    clock.reset()
                if stop.requested:
                    raise KeyboardInterrupt
        finally:
            bar.close()
            log.close()


def _interval_end(run: _Fold, st: TrainState, log: LogFile | None, bar) -> None:
    """Read the loss meter (the one synchronisation of a log interval); a log row if due."""
    p = run.parts
    mean, st.ema_loss = p.meter.read()
    if not math.isfinite(mean):
        raise FloatingPointError(
            f"diffusion fold {run.fold}: loss became {mean} in steps {st.first}-{st.step}; "
            f"lower diffusion.lr (now {run.cfg.lr})"
        )
    bar.set_postfix(loss=f"{st.ema_loss:.4f}")
    if log is not None:
        log.append(
            {
                "step": st.step,
                "loss": mean,
                "ema_loss": st.ema_loss,
                "lr": float(p.opt.param_groups[0]["lr"]),
                "wall_s": st.wall_s,
            }
        )
        p.meter.reset_interval()
        st.first = st.step + 1


def _finish(run: _Fold, st: TrainState, key: str, record: dict) -> None:
    """The final weights, model.json, and the done marker last."""
    p = run.parts
    ck.save_tensors(run.folder / "model.safetensors", p.net.state_dict(), {"step": st.step})
    ck.save_tensors(run.folder / "ema.safetensors", p.ema.shadow.state_dict(), {"step": st.step})
    model_info = {
        "fold": run.fold,
        "step": st.step,
        "wall_s": st.wall_s,
        **runtime_record(run.device),
        "diffusion": run.cfg.model_dump(),
        **run.info,
    }
    stop = {"stop_reason": STOP_FIDELITY} if st.stopped else {}
    if st.plateau is not None:
        model_info["fidelity"] = {**st.plateau.to_json(), "stopped": st.stopped}
    write_text_atomic(run.folder / "model.json", json.dumps(model_info, indent=2) + "\n")
    write_done(run.folder, key, record, step=st.step, **stop)
