"""The plan of a run: which methods, sets, sizes, folds and trainings a call of
``jointaug run`` asks for (:func:`make_plan`, leaving out what the dataset cannot run),
the work it amounts to (:func:`plan_counts`), and its description with a time estimate
(:func:`describe`). Nothing here runs a stage; ``experiments/pipeline.py`` does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from jointaug.experiments import estimate as estimate_mod
from jointaug.experiments.estimate import Counts, Rates
from jointaug.experiments.jobs import plan_jobs
from jointaug.experiments.methods import Method, mixture_name, parse_methods, required_sets
from jointaug.experiments.rundir import RunDir
from jointaug.runtime import resolve_device
from jointaug.sets.registry import MIX_OPTIONS, set_kind


@dataclass
class Plan:
    folds: list[int]
    methods: list[Method]
    sizes: list[int]
    curve_sizes: list[int]
    seeds: list[int]
    sets: dict[str, int] = field(default_factory=dict)  # per fold: set name -> images
    curve_methods: list[str] | None = None  # None: every augmented method
    left_out: str = ""  # the profile methods this dataset cannot run, and why (one line)

    def _kinds(self):
        return [k for s in self.sets if (k := set_kind(s)) is not None]

    @property
    def needs_diffusion(self) -> bool:
        return any(k.needs_diffusion for k in self._kinds())

    @property
    def needs_natural(self) -> bool:
        return any(k.needs_natural for k in self._kinds())

    def diffusion_images(self) -> int:
        """Images per fold that the diffusion model samples (not oracle/forward/user sets)."""
        return sum(
            n for s, n in self.sets.items() if (k := set_kind(s)) is not None and k.needs_diffusion
        )

    @property
    def user_sets(self) -> list[str]:
        return [s for s in self.sets if set_kind(s) is None]

    def curve(self) -> list[Method]:
        """The methods trained at the Fig. 6 curve sizes."""
        ms = [m for m in self.methods if m.sized and m.trains]
        return ms if self.curve_methods is None else [m for m in ms if m.name in self.curve_methods]

    def jobs(self) -> tuple[list, list]:
        main = plan_jobs(self.methods, self.folds, self.sizes, self.seeds)
        curve = (
            plan_jobs(self.curve(), self.folds, self.curve_sizes, self.seeds[:1])
            if self.curve_sizes
            else []
        )
        return main, curve


def default_methods(run: RunDir) -> list[str]:
    """experiment.methods + Table 2's mixtures + the imbalance baselines."""
    exp = run.config.experiment
    names = list(exp.methods)
    if "mp-perlin" in names or "11k-perlin" in names:
        names += [mixture_name(x) for x in exp.mixtures]
    return names + list(exp.imbalance_baselines)


def make_plan(
    run: RunDir,
    methods: Sequence[str] | str | None = None,
    sizes: Sequence[int] | None = None,
    folds: Sequence[int] | None = None,
    curve_sizes: Sequence[int] | None = None,
) -> Plan:
    cfg = run.config
    ms = parse_methods(default_methods(run) if methods is None else methods)
    ms, left_out = runnable_methods(run, ms, named=methods is not None)
    folds = list(range(len(run.splits.folds))) if folds is None else [int(f) for f in folds]
    for f in folds:
        run.splits.fold(f)
    sizes = [int(s) for s in (cfg.experiment.sizes if sizes is None else sizes)]
    curve = [int(s) for s in (cfg.experiment.curve_sizes if curve_sizes is None else curve_sizes)]
    curve = [s for s in curve if s not in sizes]
    plan = Plan(
        folds,
        ms,
        sizes,
        curve,
        list(cfg.classify.seeds),
        curve_methods=list(cfg.experiment.curve_methods),
        left_out=left_out,
    )
    main, curve_jobs = plan.jobs()
    need: dict[str, int] = {}
    for job in [*main, *curve_jobs]:
        for name, n in required_sets([job.method], [job.size]).items():
            if name not in MIX_OPTIONS:
                need[name] = max(need.get(name, 0), n)
    plan.sets = with_dependencies(need)
    return plan


def with_dependencies(need: dict[str, int]) -> dict[str, int]:
    """Set sizes with the sets they read (registry ``depends_on``) added, each at least as
    large as its readers, and listed before them (the order sets are made in)."""
    sizes = dict(need)
    order: list[str] = []

    def visit(name: str, seen: tuple[str, ...]) -> None:
        if name in seen:
            raise ValueError(f"augmentation sets depend on each other: {' -> '.join(seen)}")
        kind = set_kind(name)
        for dep in kind.depends_on if kind else ():
            sizes[dep] = max(sizes.get(dep, 0), sizes[name])
            visit(dep, (*seen, name))
        if name not in order:
            order.append(name)

    for name in need:
        visit(name, ())
    return {name: sizes[name] for name in order}


def method_problem(run: RunDir, method: Method) -> str | None:
    """Why ``method`` cannot run on this run's dataset (None: it can): a set kind it
    needs (directly or through the sets that kind reads) says so (registry)."""
    names = [s for s, _ in method.mix]
    while names:
        kind = set_kind(names.pop())
        if kind is None:
            continue
        problem = kind.available(run.dataset)
        if problem:
            return problem
        names += list(kind.depends_on)
    return None


def runnable_methods(run: RunDir, methods: list[Method], named: bool) -> tuple[list[Method], str]:
    """The methods this dataset can run, and one line naming the rest (and why). Methods
    the user ``named`` explicitly are refused instead (ValueError), before any work."""
    problems = {m.name: p for m in methods if (p := method_problem(run, m))}
    if not problems:
        return methods, ""
    why: dict[str, list[str]] = {}
    for name, problem in problems.items():
        why.setdefault(problem, []).append(name)
    text = "; ".join(f"{', '.join(names)} ({problem})" for problem, names in why.items())
    if named:
        raise ValueError(f"{run.dataset.root}: cannot run {text}; drop them from --methods")
    return [m for m in methods if m.name not in problems], f"left out: {text}"


def calibrate(run: RunDir, plan: Plan) -> Rates:
    """Seconds per unit of work on this machine (``experiments/estimate.py``): synchronised,
    at the configured batch sizes, precision and memory format."""
    stages = ("classifier", "evaluation") + (
        ("diffusion", "sampling") if plan.needs_diffusion else ()
    )
    return estimate_mod.calibrate(
        run.config, len(run.dataset.labels), resolve_device(run.config.device), stages=stages
    )


def plan_counts(run: RunDir, plan: Plan) -> Counts:
    """The plan's work per stage, for :func:`jointaug.experiments.estimate.estimate`."""
    cfg = run.config
    main, curve = plan.jobs()
    jobs = main + curve
    nf = len(plan.folds)
    from jointaug.classify.epoch import effective_budget, epochs_per_eval

    evals, lo, hi = 0, 0, 0
    for job in jobs:
        fold = run.splits.fold(job.fold)
        n_real = len(run.dataset.classification_cases(fold.train))
        n_train = n_real + (job.size if job.method.augmented else 0)
        n_val = len(run.dataset.classification_cases(fold.val))
        n_test = len(run.dataset.classification_cases(fold.test))
        # the budget grows with the mix (cpu profile); baseline-budget: the mix's, real only
        c = effective_budget(cfg.classify, job.method.budget_images(n_real, job.size))
        per_eval = max(1, epochs_per_eval(c, n_train) * n_train)
        evals += -(-c.max_samples // per_eval) * n_val + n_val + n_test
        floor, most = estimate_mod.training_samples_range(
            c.max_samples, c.patience_samples, per_eval
        )
        lo, hi = lo + floor, hi + most
    return Counts(
        diffusion_steps=nf * cfg.diffusion.train_steps if plan.needs_diffusion else 0,
        images=plan.diffusion_images() * nf,  # what the diffusion sampler draws
        trainings=len(jobs),
        classifier_samples_min=lo,
        classifier_samples_max=hi,
        eval_images_max=evals,
    )


def describe(run: RunDir, plan: Plan, rates: Rates | None = None) -> str:
    """The plan in a few lines, with a per-stage time estimate when ``rates`` is given."""
    from jointaug.diffusion.sample import sampler_steps

    cfg = run.config
    main, curve = plan.jobs()
    nf = len(plan.folds)
    lines = [f"plan for {run.path} ({cfg.profile} profile, {nf} folds)"]
    if plan.left_out:
        lines.append(f"  {plan.left_out}")
    if plan.needs_natural:
        lines.append(
            f"  natural source: up to {cfg.natural.max_images} hand photos -> two-hand masks "
            f"({'built-in stand-in' if not cfg.natural.source else cfg.natural.source})"
        )
    if plan.needs_diffusion:
        d = cfg.diffusion
        steps = sampler_steps(d)
        total = plan.diffusion_images() * nf
        lines.append(
            f"  diffusion: {nf} models x {d.train_steps:,} steps (batch {d.batch_size}, "
            f"{d.image_size}px, T={d.timesteps})"
        )
        lines.append(
            "  augmentation sets per fold: "
            + ", ".join(f"{k} {v:,}" for k, v in plan.sets.items())
            + f" = {total:,} images, {d.sampler} sampler with {steps} steps"
        )
    seeds = plan.seeds
    lines.append(
        f"  classifiers: {len(main)} trainings ({len(plan.methods)} methods x sizes "
        f"{plan.sizes} x seeds {seeds})"
        + (
            f" + {len(curve)} for the Fig. 6 curve sizes {plan.curve_sizes} (seed {seeds[0]})"
            if curve
            else ""
        )
    )
    if rates:
        rows = estimate_mod.estimate(rates, plan_counts(run, plan))
        lines.append(estimate_mod.format_estimates(rows, rates))
        counts = plan_counts(run, plan)
        lines.append(
            "  (classifiers: a range, early stopping ends them between "
            f"{counts.classifier_samples_min:,} and {counts.classifier_samples_max:,} samples in all)"
        )
    return "\n".join(lines)
