"""The paper's whole experiment in one run folder: plan, then every stage in order.

Stages, each cached by its outputs (rerunning skips what is done, an interrupted
stage resumes):

1. natural source (only for ``11k`` sets): photos -> two-hand masks, ``RUN/natural_source``
2. per fold: the diffusion model (``fold_K/diffusion``), then the augmentation sets
   the methods need, each grown to the largest size any method takes
3. classifiers: every method x main size x seed, then the Fig. 6 curve sizes with
   the first seed only (the paper: "intermediate data points are run only once")
4. results: metrics.csv, table1.md, table2.md, figures and report.html

A changed setting reruns what depends on it: a diffusion model records the settings it
was trained with, an augmentation set refuses to grow with other settings, and a
classifier checkpoint carries a fingerprint of its settings.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from jointaug.experiments.classification import plan_jobs, run_classification
from jointaug.experiments.methods import Method, mixture_name, parse_methods, required_sets
from jointaug.experiments.rundir import RunDir
from jointaug.runtime import apply_runtime, resolve_device

Echo = Callable[[str], None]
SET_SOURCES = {"mp": ("mp", False), "mp-perlin": ("mp", True), "11k": ("natural", False),
               "11k-perlin": ("natural", True)}  # fmt: skip
# sets made by another generator than the diffusion model: name -> generator kind
OTHER_SETS = {"oracle": "oracle", "forward": "forward", "forward-perlin": "forward"}


@dataclass
class Plan:
    folds: list[int]
    methods: list[Method]
    sizes: list[int]
    curve_sizes: list[int]
    seeds: list[int]
    sets: dict[str, int] = field(default_factory=dict)  # per fold: set name -> images

    @property
    def needs_diffusion(self) -> bool:
        return any(s in SET_SOURCES for s in self.sets)

    @property
    def needs_natural(self) -> bool:
        return any(SET_SOURCES[s][0] == "natural" for s in self.sets if s in SET_SOURCES)

    def jobs(self) -> tuple[list, list]:
        main = plan_jobs(self.methods, self.folds, self.sizes, self.seeds)
        augmented = [m for m in self.methods if m.augmented and m.trains]
        curve = plan_jobs(augmented, self.folds, self.curve_sizes, self.seeds[:1]) if self.curve_sizes else []
        return main, curve


def default_methods(run: RunDir) -> list[str]:
    """experiment.methods + Table 2's mixtures + the imbalance baselines."""
    exp = run.config.experiment
    names = list(exp.methods)
    if "mp-perlin" in names or "11k-perlin" in names:
        names += [mixture_name(x) for x in exp.mixtures]
    return names + list(exp.imbalance_baselines)


def make_plan(run: RunDir, methods: Sequence[str] | str | None = None, sizes: Sequence[int] | None = None,
              folds: Sequence[int] | None = None, curve_sizes: Sequence[int] | None = None) -> Plan:  # fmt: skip
    cfg = run.config
    ms = parse_methods(default_methods(run) if methods is None else methods)
    for s in required_sets(ms, [1]):
        if s not in SET_SOURCES and s not in OTHER_SETS:
            known = ", ".join([*SET_SOURCES, *OTHER_SETS])
            raise ValueError(f"augmentation set {s!r} cannot be generated (known: {known})")
    folds = list(range(len(run.splits.folds))) if folds is None else [int(f) for f in folds]
    for f in folds:
        run.splits.fold(f)
    sizes = [int(s) for s in (cfg.experiment.sizes if sizes is None else sizes)]
    curve = [int(s) for s in (cfg.experiment.curve_sizes if curve_sizes is None else curve_sizes)]
    curve = [s for s in curve if s not in sizes]
    plan = Plan(folds, ms, sizes, curve, list(cfg.classify.seeds))
    plan.sets = required_sets([m for m in ms if m.trains], sizes + curve)
    return plan


def _timed(fn: Callable, repeat: int = 2) -> float:
    fn()  # warm-up
    t0 = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - t0) / repeat


def calibrate(run: RunDir, plan: Plan) -> dict[str, float]:
    """Seconds per unit of work on this machine, from a few real steps of each network."""
    import torch

    from jointaug.classify.model import build_model
    from jointaug.generate.model import build_unet

    cfg = run.config
    device = resolve_device(cfg.device)
    out: dict[str, float] = {}
    c = cfg.classify
    net = build_model(c, len(run.dataset.labels)).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=c.lr)
    b = min(c.batch_size, 8)
    x = torch.zeros(b, 1, c.image_size, c.image_size, device=device)
    y = torch.zeros(b, len(run.dataset.labels), device=device)

    def cls_step():
        opt.zero_grad()
        torch.nn.functional.binary_cross_entropy_with_logits(net(x), y).backward()
        opt.step()

    out["classifier_s_per_image"] = _timed(cls_step) / b
    if plan.needs_diffusion:
        d = cfg.diffusion
        unet = build_unet(d).to(device)
        dopt = torch.optim.Adam(unet.parameters(), lr=d.lr)
        db = min(d.batch_size, 8)
        xi = torch.zeros(db, 4, d.image_size, d.image_size, device=device)
        t = torch.zeros(db, dtype=torch.long, device=device)

        def diff_step():
            dopt.zero_grad()
            unet(xi, timesteps=t).pow(2).mean().backward()
            dopt.step()

        out["diffusion_step_s"] = _timed(diff_step) * d.batch_size / db
        with torch.no_grad():
            out["denoise_s_per_image"] = _timed(lambda: unet(xi, timesteps=t)) / db
    return out


def _fmt_s(s: float) -> str:
    return f"{s / 3600:.1f} h" if s > 5400 else f"{s / 60:.1f} min" if s > 90 else f"{s:.0f} s"


def describe(run: RunDir, plan: Plan, rates: dict[str, float] | None = None) -> str:
    """The plan in a few lines, with a time estimate when ``rates`` is given."""
    from jointaug.generate.sample import sampler_steps

    cfg = run.config
    main, curve = plan.jobs()
    nf = len(plan.folds)
    lines = [f"plan for {run.path} ({cfg.profile} profile, {nf} folds)"]
    est = 0.0
    if plan.needs_natural:
        lines.append(f"  natural source: up to {cfg.natural.max_images} hand photos -> two-hand masks "
                     f"({'built-in stand-in' if not cfg.natural.source else cfg.natural.source})")  # fmt: skip
    if plan.needs_diffusion:
        d = cfg.diffusion
        steps = sampler_steps(d)
        total = sum(v for k, v in plan.sets.items() if k in SET_SOURCES) * nf
        lines.append(f"  diffusion: {nf} models x {d.train_steps:,} steps (batch {d.batch_size}, "
                     f"{d.image_size}px, T={d.timesteps})")  # fmt: skip
        lines.append("  augmentation sets per fold: " + ", ".join(f"{k} {v:,}" for k, v in plan.sets.items())
                     + f" = {total:,} images, {d.sampler} sampler with {steps} steps")  # fmt: skip
        if rates:
            t_d = nf * d.train_steps * rates["diffusion_step_s"]
            t_s = total * steps * rates["denoise_s_per_image"]
            est += t_d + t_s
            lines[-2] += f"  ~{_fmt_s(t_d)}"
            lines[-1] += f"  ~{_fmt_s(t_s)}"
    seeds = plan.seeds
    lines.append(f"  classifiers: {len(main)} trainings ({len(plan.methods)} methods x sizes "
                 f"{plan.sizes} x seeds {seeds})" + (f" + {len(curve)} for the Fig. 6 curve sizes "
                 f"{plan.curve_sizes} (seed {seeds[0]})" if curve else ""))  # fmt: skip
    if rates:
        from jointaug.classify.train import effective_budget

        n_real = {f: len(run.dataset.classification_cases(run.splits.fold(f).train)) for f in plan.folds}
        budget = sum(effective_budget(cfg.classify, n_real[j.fold] + j.size).max_samples
                     for j in main + curve)  # fmt: skip
        t_c = budget * rates["classifier_s_per_image"]
        est += t_c
        lines[-1] += f"  at most ~{_fmt_s(t_c)} (early stopping usually ends sooner)"
        lines.append(f"  estimate on this machine: at most ~{_fmt_s(est)}")
    return "\n".join(lines)


def run_experiment(run: RunDir, plan: Plan, *, photos: str | Path | None = None, progress: bool = True,
                   echo: Echo = print, estimate: bool = True) -> dict:  # fmt: skip
    """Run every stage of ``plan`` in ``run``; return a summary with the results paths."""
    from jointaug.experiments.report import write_report
    from jointaug.generate.augment import make_augmentation_set
    from jointaug.generate.train import train_diffusion

    cfg = run.config
    apply_runtime(cfg)
    t0 = time.perf_counter()
    echo(describe(run, plan, calibrate(run, plan) if estimate else None))
    natural_dir = run.path / "natural_source"
    stage_times: dict[str, float] = {}
    if plan.needs_natural:
        from jointaug.natural.source import build_natural_source

        photos = photos or cfg.natural.source or None
        size = int(run.dataset.image(run.dataset.cases[0]).shape[0])
        echo("stage: natural source")
        build_natural_source(natural_dir, Path(photos) if photos else None, size, cfg.natural,
                             seed=cfg.phantom.seed, progress=progress, device=resolve_device(cfg.device))  # fmt: skip
    for fold in plan.folds:
        if plan.needs_diffusion:
            echo(f"stage: diffusion model, fold {fold}")
            ts = time.perf_counter()
            train_diffusion(run, fold, progress=progress)
            stage_times[f"diffusion fold {fold}"] = time.perf_counter() - ts
        for name, n in plan.sets.items():
            echo(f"stage: augmentation set {name} ({n} images), fold {fold}")
            ts = time.perf_counter()
            if OTHER_SETS.get(name) == "oracle":
                from jointaug.generate.oracle import make_oracle_set

                make_oracle_set(run.augment_dir(fold, name), n, dataset=run.dataset,
                                train_patients=run.splits.fold(fold).train, fold=fold, config=cfg,
                                progress=progress)  # fmt: skip
            elif OTHER_SETS.get(name) == "forward":
                from jointaug.generate.forward import make_forward_set

                make_forward_set(run.augment_dir(fold, name), n, dataset=run.dataset,
                                 train_patients=run.splits.fold(fold).train, fold=fold, config=cfg,
                                 progress=progress, perlin=name.endswith("-perlin"))  # fmt: skip
            else:
                source, perlin = SET_SOURCES[name]
                make_augmentation_set(run, fold, source, perlin, n, natural_dir=natural_dir,
                                      progress=progress)  # fmt: skip
            stage_times[f"set {name} fold {fold}"] = time.perf_counter() - ts
    names = [m.name for m in plan.methods]
    echo("stage: classifiers")
    ts = time.perf_counter()
    summary = run_classification(run, names, folds=plan.folds, sizes=plan.sizes, seeds=plan.seeds,
                                 progress=progress, echo=echo)  # fmt: skip
    if plan.curve_sizes:
        curve_methods = [m.name for m in plan.methods if m.augmented and m.trains]
        if curve_methods:
            echo("stage: classifiers at the Fig. 6 curve sizes (one seed)")
            summary = run_classification(run, names, folds=plan.folds, sizes=plan.sizes + plan.curve_sizes,
                                         seeds=plan.seeds[:1], progress=progress, echo=echo)  # fmt: skip
    stage_times["classifiers"] = time.perf_counter() - ts
    echo("stage: report")
    report = write_report(run)
    stage_times["total"] = time.perf_counter() - t0
    _record_times(run, stage_times)
    return {"tables": summary.tables, "report": report, "results": run.results_dir,
            "wall_s": stage_times["total"], "stage_times": stage_times}


def _record_times(run: RunDir, times: dict[str, float]) -> None:
    """Append this call's stage wall times to ``RUN/results/stage_times.json`` (a list)."""
    import json

    from jointaug.dataset.io import write_text_atomic

    path = run.results_dir / "stage_times.json"
    old = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else []
    old.append({"finished": time.strftime("%Y-%m-%dT%H:%M:%S"), **{k: round(v, 1) for k, v in times.items()}})
    write_text_atomic(path, json.dumps(old, indent=1) + "\n")
