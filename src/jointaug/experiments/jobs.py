"""One classifier training of the grid: a :class:`Job` (fold, method, size, seed), the
settings its output records (:func:`job_record`) and its declared output
(:func:`classifier_output`), and the jobs of a plan (:func:`plan_jobs`). Below both
``experiments/classification.py`` (which trains them) and ``experiments/outputs.py``
(which decides whether they are current)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from jointaug.config import ClassifyConfig
from jointaug.dataset.splits import Fold
from jointaug.experiments.methods import Method, resolve_method
from jointaug.experiments.rundir import RunDir
from jointaug.keys import classify_settings, settings_key
from jointaug.outputs import Output


@dataclass(frozen=True)
class Job:
    """One training: a fold, a method at a size (0 = no augmentation), a seed."""

    fold: int
    method: Method
    size: int
    seed: int

    def dir(self, run: RunDir) -> Path:
        return run.classify_dir(self.fold, self.method.dir_name(self.size), self.seed)

    def label(self) -> str:
        size = f" N={self.size}" if self.method.sized else ""
        return f"fold {self.fold} · {self.method.name}{size} · seed {self.seed}"


def job_record(
    classify: ClassifyConfig,
    job: Job,
    split: Fold,
    sets: dict[str, dict | None],
    device_type: str = "cpu",
) -> tuple[str, dict]:
    """(key, settings) a finished training depends on: classifier settings (not the seeds
    list or speed flags), the device type and precision on a GPU (nothing on the CPU:
    :func:`jointaug.keys.runtime_settings`), loss, seed, the fold's patients, the mix,
    its size, and the settings of the augmentation sets it reads (``sets``: name ->
    augmentation.json)."""
    cfg = classify_settings(classify, device_type)
    loss = job.method.loss or cfg["loss"]
    parts = [list(split.train), list(split.val), list(split.test)]
    key = settings_key([cfg, loss, job.seed, parts, job.method.mix, job.size, sets])  # as before
    record = {
        "classify": cfg,
        "loss": loss,
        "seed": job.seed,
        "fold": {"train": parts[0], "val": parts[1], "test": parts[2]},
        "mix": [list(x) for x in job.method.mix],
        "size": job.size,
        "sets": sets,
    }
    return key, record


def classifier_output(
    out: Path,
    classify: ClassifyConfig,
    job: Job,
    split: Fold,
    sets: dict[str, dict | None],
    device_type: str = "cpu",
) -> Output:
    """The training folder ``out`` of ``job``: its ``done`` marker records the key of
    :func:`job_record` (``sets``: name -> the augmentation.json of each set it reads;
    ``device_type``: where it is trained)."""
    key, record = job_record(classify, job, split, sets, device_type)
    return Output("classifier", Path(out), key, record)


def plan_jobs(
    methods: Sequence[Method], folds: Sequence[int], sizes: Sequence[int], seeds: Sequence[int]
) -> list[Job]:
    """Trainings for ``methods`` (a non-training method adds its base), fold-major order."""
    trained: list[Method] = []
    for m in methods:
        m = m if m.trains else resolve_method(m.base)
        if m.name not in {t.name for t in trained}:
            trained.append(m)
    return [
        Job(f, m, size, s) for f in folds for m in trained for size in m.sizes(sizes) for s in seeds
    ]
