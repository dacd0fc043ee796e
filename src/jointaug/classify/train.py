"""The training loop: Adam, the paper's augmentation, early stopping on validation GMS.

One call of :func:`fit` trains one network (one fold, method and seed) in ``out_dir``:

- an epoch is one pass over the training images in a random order (last batch partial);
- every ``eval_every_epochs`` epochs (or, with ``eval_every_samples``, every ~that many
  samples in whole epochs: :func:`epochs_per_eval`) and when ``max_samples`` is reached,
  the model is evaluated on the validation part: pooled GMS at ``cfg.threshold``; a strictly higher
  GMS makes it the best model;
- training stops when the best GMS is ``patience_samples`` training samples old, or at
  ``max_samples`` (samples = images seen, not epochs; ``max_epochs`` / ``patience_epochs``
  grow both with the training set: :func:`effective_budget`); ``real_share`` keeps at
  least that share of real train images in every batch (:func:`epoch_order`);
- after every evaluation a row is appended to ``log.csv`` (and to TensorBoard event files
  in ``events/`` and ``progress.png``: :mod:`jointaug.curves`); ``checkpoint.safetensors``
  is written atomically at an evaluation when ``cfg.checkpoint_minutes`` have passed
  since the last one, and when training ends (:mod:`jointaug.training`); calling
  :func:`fit` again on the same folder resumes from the checkpoint and ends exactly
  where an uninterrupted run ends (CPU; same seed and config);
- speed (no effect on CPU results): losses stay on the device until an evaluation, the
  best weights are copied on the device, fused Adam on CUDA, bf16 autocast and
  channels-last when ``cfg.amp`` / ``cfg.channels_last``, ``torch.compile`` when
  ``cfg.compile``; the state is a :class:`FitState`;
- at the end ``model.safetensors`` holds the best weights.

Randomness: ``seed`` is split (``numpy.random.SeedSequence``) into the weight
initialisation, the data generator (order and augmentation) and the global torch RNG
(dropout only), which is set inside ``torch.random.fork_rng`` so the caller's state
is untouched.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch

from jointaug.classify.checkpoint import (
    CheckpointError,
    load_checkpoint,
    save_checkpoint,
    save_tensors,
)
from jointaug.classify.data import ImageSet
from jointaug.classify.epoch import effective_budget, epochs_per_eval, plan_epoch, to_device
from jointaug.classify.losses import make_loss, masked_bce
from jointaug.classify.metrics import binarize, pooled_metrics
from jointaug.classify.model import build_model, model_metadata
from jointaug.classify.transforms import AugmentParams, InputLayout, PaperAugment, crop_pad_px
from jointaug.config import ClassifyConfig
from jointaug.curves import CurveSpec, Panel
from jointaug.keys import classify_settings, settings_key, split_seed
from jointaug.runtime import autocast_for, maybe_compile, resolve_device
from jointaug.training import CheckpointClock, GracefulInterrupt, LogFile

LOG_COLUMNS = (
    "eval",
    "epoch",
    "samples",
    "train_loss",
    "val_loss",
    "val_accuracy",
    "val_tpr",
    "val_tnr",
    "val_f1",
    "val_gms",
    "best_val_gms",
    "best_samples",
    "lr",
    "wall_s",
)
CURVES = CurveSpec(  # events/ and progress.png (jointaug.curves), step = training images seen
    x="samples",
    xlabel="training images seen",
    tags=(
        ("train_loss", "loss/train"),
        ("val_loss", "loss/val"),
        ("val_gms", "val/gms"),
        ("val_tpr", "val/tpr"),
        ("val_tnr", "val/tnr"),
        ("val_accuracy", "val/accuracy"),
        ("val_f1", "val/f1"),
        ("best_val_gms", "val/best_gms"),
        ("lr", "lr"),
        ("epoch", "epoch"),
    ),
    panels=(
        Panel(
            "loss (train: mean of the batches since the last evaluation)",
            ("train_loss", "val_loss"),
        ),
        Panel("validation (pooled, at the threshold)", ("val_gms", "val_tpr", "val_tnr")),
        Panel("learning rate", ("lr",)),
    ),
    best="best_samples",
)
CHECKPOINT = "checkpoint.safetensors"
MODEL = "model.safetensors"


@dataclass
class FitResult:
    best_state: dict[str, torch.Tensor]  # CPU state dict of the best model
    best_val_gms: float
    best_samples: int  # samples seen when the best model was evaluated
    samples: int
    epochs: int
    wall_s: float
    stop_reason: str  # "patience" | "max_samples"
    log: list[dict]


def fingerprint(
    cfg: ClassifyConfig, loss: str, seed: int, n_train: int, device_type: str = "cpu"
) -> str:
    """What a checkpoint must agree with to be resumed (a CPU checkpoint is not resumed
    on a GPU: :func:`jointaug.keys.runtime_settings`)."""
    return settings_key([classify_settings(cfg, device_type), loss, seed, n_train])


@torch.no_grad()
def predict_logits(
    model: torch.nn.Module,
    images: torch.Tensor,
    batch_size: int,
    device: torch.device,
    amp: bool = False,
    channels_last: bool = False,
) -> torch.Tensor:
    """Logits (N, L) float32 on the CPU for images (N, 1, S, S) (any float dtype/device)."""
    model.eval()
    out = []
    for i in range(0, images.shape[0], batch_size):
        x = images[i : i + batch_size].to(device).float()
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast_for(device, amp):
            out.append(model(x).float().cpu())
    return torch.cat(out) if out else torch.zeros(0, 0)


def _state_copy(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A copy of the weights on the training device (moved to the CPU only when saved)."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@dataclass
class FitState:
    """Where one training stands; saved as JSON in the checkpoint (same keys as before)."""

    fingerprint: str
    samples: int = 0  # images seen
    epoch: int = 0
    evals: int = 0
    best_gms: float = -math.inf
    best_samples: int = 0  # samples seen when the best model was evaluated
    wall_s: float = 0.0
    finished: bool = False
    stop_reason: str = ""  # "patience" | "max_samples"
    log: list[dict] = field(default_factory=list)

    @classmethod
    def from_json(cls, raw: dict) -> FitState:
        return cls(**{f.name: raw[f.name] for f in fields(cls) if f.name in raw})

    def horizon(self, cfg: ClassifyConfig) -> int:
        """The sample count at which training stops unless a better model is found."""
        return min(cfg.max_samples, self.best_samples + cfg.patience_samples)

    def evaluated(
        self, cfg: ClassifyConfig, train_loss: float, m: dict[str, float], wall_s: float
    ) -> bool:
        """Record an evaluation (log row, best, stop); True when the model is the new best."""
        gms = -1.0 if math.isnan(m["val_gms"]) else m["val_gms"]
        better = gms > self.best_gms
        if better:
            self.best_gms, self.best_samples = gms, self.samples
        self.evals += 1
        self.wall_s = wall_s
        self.log.append(
            {
                "eval": self.evals,
                "epoch": self.epoch,
                "samples": self.samples,
                "train_loss": train_loss,
                **m,
                "best_val_gms": self.best_gms,
                "best_samples": self.best_samples,
                "wall_s": wall_s,
            }
        )
        if self.samples >= cfg.max_samples:
            self.finished, self.stop_reason = True, "max_samples"
        elif self.samples - self.best_samples >= cfg.patience_samples:
            self.finished, self.stop_reason = True, "patience"
        return better


@dataclass
class _Step:
    """What one optimiser step needs (built once per fit)."""

    model: torch.nn.Module
    opt: torch.optim.Optimizer
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    augment: PaperAugment
    gen: torch.Generator
    x: torch.Tensor  # (N, 1, S, S) float16 on the device
    y: torch.Tensor  # (N, L) float32 on the device
    cfg: ClassifyConfig
    dev: torch.device
    forward: torch.nn.Module | None = None  # the compiled model (config compile), else model
    real: torch.Tensor | None = None  # indices of the real train images (real_share)
    layout: InputLayout | None = None  # lr_aware / per_hand (classify/transforms.py)

    def __call__(self, idx: torch.Tensor, params: AugmentParams | None = None) -> torch.Tensor:
        """One step on the images ``idx`` augmented with ``params`` (both on the device:
        :func:`plan_epoch`; default: drawn now from ``gen``); returns the (detached,
        on-device) batch loss."""
        # augmentation: lr_aware flips permute labels, per_hand augments each hand crop
        x, y = self.augment.batch(
            self.x[idx].float(), self.y[idx], self.gen, self.layout, params=params
        )
        if self.cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast_for(self.dev, self.cfg.amp):
            logits = (self.forward or self.model)(x)
        loss = self.loss_fn(logits.float(), y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return loss.detach()


def _train_period(step: _Step, st: FitState, bar, on_step: Callable[[int], None] | None) -> float:
    """``epochs_per_eval`` epochs (fewer at max_samples); returns the mean batch loss.
    Losses stay on the device until the period ends (one synchronisation per period)."""
    cfg, n = step.cfg, step.x.shape[0]
    step.model.train()
    losses = []
    for _ in range(epochs_per_eval(cfg, n)):
        for idx, params in plan_epoch(step):
            if cfg.lr_schedule == "cosine":
                lr = cfg.lr * 0.5 * (1 + math.cos(math.pi * min(st.samples / cfg.max_samples, 1.0)))
                for g in step.opt.param_groups:
                    g["lr"] = lr
            losses.append(step(idx, params))
            st.samples += len(idx)
            bar.update(len(idx))
            if on_step is not None:
                on_step(st.samples)
            if st.samples >= cfg.max_samples:
                break
        st.epoch += 1
        if st.samples >= cfg.max_samples:
            break
    return float(np.mean(torch.stack(losses).double().cpu().numpy())) if losses else math.nan


def _validate(step: _Step, val: ImageSet, val_x: torch.Tensor) -> dict[str, float]:
    """Validation loss (BCE) and pooled metrics at ``cfg.threshold``; ``val_x``: the
    validation images (on the device: copied once per fit)."""
    cfg = step.cfg
    logits = predict_logits(
        step.model,
        val_x,
        2 * cfg.batch_size,
        step.dev,
        cfg.amp,
        cfg.channels_last,
    )
    m = pooled_metrics(val.labels, binarize(torch.sigmoid(logits).numpy(), cfg.threshold))
    out = {f"val_{k}": float(m[k]) for k in ("accuracy", "tpr", "tnr", "f1", "gms")}
    out["val_loss"] = float(masked_bce(logits, torch.from_numpy(val.labels)))
    out["lr"] = float(step.opt.param_groups[0]["lr"])
    return out


def _make_step(
    train: ImageSet,
    cfg: ClassifyConfig,
    labels: list[str],
    loss_kind: str,
    init_seed: int,
    data_seed: int,
    dev: torch.device,
) -> _Step:
    model = build_model(cfg, len(labels), seed=init_seed, layout=train.layout).to(dev)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return _Step(
        model=model,
        forward=maybe_compile(model, cfg.compile),
        opt=torch.optim.Adam(model.parameters(), lr=cfg.lr, fused=dev.type == "cuda"),
        loss_fn=make_loss(loss_kind, train.labels, cfg.focal_gamma, dev),
        augment=PaperAugment(
            cfg.rotate_deg, cfg.flip_prob, cfg.crop_prob, crop_pad_px(cfg.crop_pad, cfg.image_size)
        ),
        gen=torch.Generator().manual_seed(data_seed),
        x=to_device(torch.from_numpy(train.images), dev),  # once per fit
        y=to_device(torch.from_numpy(train.labels), dev),
        cfg=cfg,
        dev=dev,
        real=torch.tensor(
            [i for i, s in enumerate(train.sources) if s == "train"], dtype=torch.long
        ),
        layout=train.layout,
    )


@dataclass(frozen=True)
class FitOptions:
    """How one :func:`fit` call runs (the model depends on ``loss`` only)."""

    loss: str | None = None  # overrides ``cfg.loss``
    device: torch.device | str = "cpu"
    progress: bool = True
    desc: str = ""  # progress bar and interrupt message
    on_step: Callable[[int], None] | None = None  # on_step(samples) after every optimiser step
    # (tests use it to simulate a kill)


def fit(
    out_dir: str | Path,
    train: ImageSet,
    val: ImageSet,
    cfg: ClassifyConfig,
    seed: int,
    labels: list[str],
    options: FitOptions | None = None,
) -> FitResult:
    """Train one classifier in ``out_dir`` (module docstring); resumes a checkpoint there.

    train / val: prepared ImageSets (images (N, 1, S, S), labels (N, L) NaN = unknown).
    options: loss override, device, progress bar, ``on_step`` (:class:`FitOptions`).
    """
    o = options or FitOptions()
    out_dir, desc, on_step = Path(out_dir), o.desc, o.on_step
    out_dir.mkdir(parents=True, exist_ok=True)
    dev = resolve_device(o.device)
    loss_kind = o.loss or cfg.loss
    if len(train) == 0 or len(val) == 0:
        raise ValueError(
            f"{out_dir}: need training and validation images ({len(train)}, {len(val)})"
        )
    cfg = effective_budget(cfg, len(train))
    init_seed, data_seed, torch_seed = split_seed(seed)
    step = _make_step(train, cfg, labels, loss_kind, init_seed, data_seed, dev)
    model = step.model
    val_x = to_device(torch.from_numpy(val.images), dev)
    fp = fingerprint(cfg, loss_kind, seed, len(train), dev.type)
    ckpt = out_dir / CHECKPOINT
    with torch.random.fork_rng(devices=[dev.index or 0] if dev.type == "cuda" else []):
        torch.manual_seed(torch_seed)  # dropout only; restored on exit
        st, best = FitState(fp), _state_copy(model)
        if ckpt.is_file():
            best, raw = load_checkpoint(ckpt, model, step.opt, step.gen)
            st = FitState.from_json(raw)
            if st.fingerprint != fp:
                raise CheckpointError(
                    f"{ckpt}: made with another config, loss, seed or training set; "
                    "rerun with --force to start over"
                )
        log = LogFile(out_dir / "log.csv", LOG_COLUMNS, st.log, CURVES)
        clock = CheckpointClock(cfg.checkpoint_minutes, 0, cfg.max_samples)
        t0 = time.perf_counter() - st.wall_s
        bar = _progress(o.progress, st.horizon(cfg), st.samples, desc)
        # Ctrl-C: train on to the next evaluation, checkpoint, then KeyboardInterrupt
        with GracefulInterrupt(desc or f"training in {out_dir}") as stop:
            try:
                while not st.finished:
                    train_loss = _train_period(step, st, bar, on_step)
                    m = _validate(step, val, val_x)
                    if st.evaluated(cfg, train_loss, m, time.perf_counter() - t0):
                        best = _state_copy(model)
                    log.append(st.log[-1])
                    if st.finished or clock.due(st.samples) or stop.requested:
                        save_checkpoint(ckpt, model, step.opt, best, step.gen, asdict(st))
                        clock.reset()
                    if stop.requested:
                        raise KeyboardInterrupt
                    bar.total = max(st.horizon(cfg), st.samples)
                    bar.set_postfix(loss=f"{train_loss:.3f}", best_gms=f"{st.best_gms:.3f}")
            finally:
                bar.close()
                log.close()
    best = {k: v.cpu() for k, v in best.items()}
    save_tensors(out_dir / MODEL, best, model_metadata(cfg, labels, train.layout))
    return FitResult(
        best,
        float(st.best_gms),
        int(st.best_samples),
        int(st.samples),
        int(st.epoch),
        float(st.wall_s),
        st.stop_reason,
        st.log,
    )


def _progress(enabled: bool, total: int, initial: int, desc: str):
    from jointaug.progress import progress_bar

    # one line per evaluation when the output is not a terminal
    return progress_bar(
        total, initial, desc, "img", enabled=enabled, line_per_postfix=True, leave=False
    )
