"""Train the generator to a criterion: stop when its label fidelity plateaus.

With ``diffusion.stop_on_fidelity`` the training loop scores the EMA model every
``fidelity_every`` steps on held-out conditions and stops once the score has not improved
by ``fidelity_min_delta`` for ``fidelity_patience`` checks (:class:`Plateau`); the model
kept is the one at the stop (EMA weights: they move slowly, and the plateau means the
last checks are as good as the best one).

The judge (:class:`FidelityProbe`) is the region-mean contrast that ``fidelity/quality.py``
checks sets with, at the model's own size and in its intensity space: on the fold's
VALIDATION cases (conditions never trained on), the pooled mean of the generated images
in high and in low pixels, each divided by the pooled mean in normal-tissue pixels, is
compared with the same ratios of the real validation images:

    score = 1 - mean over classes c in {high, low} of |log(R_c(generated) / R_c(real))|

(1 = the labelled joints are exactly as much hotter than normal tissue as in real
images; the log makes over- and undershoot count alike). Why this judge and not a
classifier: it is what "label fidelity" means for this generator (an inflamed joint
is a hot region), it needs no trained model (a frozen classifier judge would first have
to be trained on the fold, ``fidelity/judge.py``, and would score a 128-px model
through a 256-px network), and it costs one fast-sampler call on ``fidelity_cases``
conditions (fixed seeds, so successive checks differ only by the weights).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from jointaug.config import DiffusionConfig
from jointaug.diffusion.sample import NoiseSchedule, sample_fast
from jointaug.keys import derived_seed


@dataclass
class Plateau:
    """Stop when the best score is ``patience`` checks old (improvement: > best + min_delta).

    ``history``: (step, score) of every check; JSON-able (checkpoint and model.json)."""

    patience: int
    min_delta: float = 0.0
    best: float = -math.inf
    best_step: int = 0
    history: list[list[float]] = field(default_factory=list)

    def update(self, step: int, score: float) -> bool:
        """Record a check; True when training should stop."""
        self.history.append([int(step), float(score)])
        if math.isfinite(score) and score > self.best + self.min_delta:
            self.best, self.best_step = float(score), int(step)
        stale = sum(1 for s, _ in self.history if s > self.best_step)
        return stale >= self.patience

    def to_json(self) -> dict:
        return {"best": self.best, "best_step": self.best_step, "history": self.history}

    @classmethod
    def from_json(cls, raw: dict | None, patience: int, min_delta: float) -> Plateau:
        p = cls(patience, min_delta)
        if raw:
            p.best, p.best_step = float(raw["best"]), int(raw["best_step"])
            p.history = [list(h) for h in raw["history"]]
        return p


def first_stop(history: list[list[float]], patience: int, min_delta: float = 0.0) -> int | None:
    """The step at which :class:`Plateau` stops on a recorded ``history`` (None: never)."""
    p = Plateau(patience, min_delta)
    for step, score in history:
        if p.update(int(step), score):
            return int(step)
    return None


def contrast_ratios(images: np.ndarray, channels: np.ndarray) -> dict[str, float]:
    """Pooled mean of ``images`` (N, S, S) in high / low pixels over the mean in normal
    pixels; ``channels`` (N, 3, S, S) coverage of (normal, low, high). NaN: no pixel."""
    x = images.astype(np.float64)
    low, high = channels[:, 1] > 0.5, channels[:, 2] > 0.5
    normal = (channels[:, 0] > 0.5) & ~low & ~high
    base = x[normal].mean() if normal.any() else math.nan
    out = {}
    for name, m in (("high", high), ("low", low)):
        out[name] = float(x[m].mean() / base) if m.any() and base > 0 else math.nan
    return out


def fidelity_score(generated: dict[str, float], real: dict[str, float]) -> float:
    """1 - mean |log(R_gen / R_real)| over the classes both have (NaN: none)."""
    terms = [
        abs(math.log(generated[k] / real[k]))
        for k in ("high", "low")
        if generated[k] > 0 and real[k] > 0 and math.isfinite(generated[k] * real[k])
    ]
    return 1.0 - float(np.mean(terms)) if terms else math.nan


class FidelityProbe:
    """Scores a model on fixed held-out conditions (module docstring).

    Args:
        counts: (N, S, S) real mean counts of the validation cases at the model size.
        channels: (N, 3, S, S) their conditions.
        to_model: counts -> the model's intensity space (``IntensityMap.to_model``).
        cfg: the diffusion config (fast sampler steps, T, betas, ``fidelity_cases``).
    """

    def __init__(self, counts, channels, to_model, cfg: DiffusionConfig, fold: int, device):
        order = np.argsort(-(channels[:, 2] > 0.5).reshape(len(channels), -1).sum(1), kind="stable")
        keep = np.sort(order[: cfg.fidelity_cases])  # the cases with the most high pixels
        self.channels = channels[keep]
        self.real = contrast_ratios(_positive(to_model(counts[keep])), self.channels)
        self.cond = torch.from_numpy(self.channels).to(device)
        self.seeds = [derived_seed(cfg.seed, fold, "fidelity", int(i)) for i in range(len(keep))]
        self.schedule = NoiseSchedule.from_config(cfg)
        self.cfg = cfg

    def __len__(self) -> int:
        return len(self.seeds)

    @torch.no_grad()
    def score(self, eps_model, clip: tuple[float, float]) -> float:
        c = self.cfg
        y = sample_fast(
            eps_model, self.cond, self.seeds, self.schedule, c.fast_steps, None, clip, c.amp
        )
        gen = _positive(y.float().cpu().numpy()[:, 0])
        return fidelity_score(contrast_ratios(gen, self.channels), self.real)


def _positive(x: np.ndarray) -> np.ndarray:
    """Model-space images ([-1, 1]) shifted to [0, 2]: ratios need a positive scale."""
    return np.asarray(x, dtype=np.float64) + 1.0
