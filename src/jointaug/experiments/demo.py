"""``jointaug demo``: the whole method on the built-in phantom, at the demo profile.

Stages (each skipped when its output is already there, so a rerun resumes):
phantom (validated) -> montage -> splits -> the paper's grid at demo scale (natural
source from the built-in stand-in photos, per fold a diffusion model and the MP,
MP-Perlin and 11k-Perlin augmentation sets, classifiers for the baseline, each set, an
MP/11kP mixture and the imbalance baselines) -> tables and report.html.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from jointaug.config import Config, load_config
from jointaug.dataset.format import DatasetError, is_complete, read_dataset
from jointaug.dataset.validate import validate_dataset
from jointaug.experiments.pipeline import RunOptions, run_experiment
from jointaug.experiments.plan import make_plan
from jointaug.experiments.rundir import RunDir


@dataclass
class DemoResult:
    out: Path
    dataset: Path
    run: Path
    montage: Path
    tables: str = ""
    report: Path | None = None
    verdicts: list[str] = field(default_factory=list)


STAGES = ("phantom", "montage", "splits", "run")


def run_demo(
    out: str | Path = "runs/demo",
    config: Config | None = None,
    console: Console | None = None,
    stop_after: str | None = None,
    progress: bool = True,
) -> DemoResult:
    """Run the demo into ``out``; ``stop_after`` names the last stage to run (see STAGES)."""
    from jointaug.dataset.phantom import write_phantom
    from jointaug.dataset.show import montage

    if stop_after is not None and stop_after not in STAGES:
        raise ValueError(f"--stop-after {stop_after!r}: choose one of {', '.join(STAGES)}")
    console = console or Console()
    config = config or load_config("demo")
    out = Path(out)
    data_dir = out / "phantom"
    ph = config.phantom
    if is_complete(data_dir):
        console.print(f"[dim]phantom: {data_dir} exists, skipped[/]")
    else:
        console.rule("1. built-in phantom")
        write_phantom(data_dir, patients=ph.patients, size=ph.size, seed=ph.seed)
    console.rule("2. validate")
    report = validate_dataset(data_dir)
    if not report.ok:
        raise DatasetError(f"{data_dir}: the phantom failed validation: {report.errors[0]}")
    s = report.summary
    console.print(
        f"{s['cases']} cases, {s['patients']} patients, {s['classification_cases']} classification "
        f"images, positive rate {sum(s['positives']) / max(sum(s['known']), 1):.3f}"
    )
    if stop_after == "phantom":
        return DemoResult(out=out, dataset=data_dir, run=out / "run", montage=out / "montage.png")
    console.rule("3. montage")
    montage_path = montage(read_dataset(data_dir), out / "montage.png", n=8, seed=0)
    console.print(f"montage: {montage_path}")
    result = DemoResult(out=out, dataset=data_dir, run=out / "run", montage=montage_path)
    if stop_after == "montage":
        return result
    console.rule("4. splits")
    run = RunDir.create(out / "run", data_dir, config)
    for f in run.splits.folds:
        console.print(
            f"fold {f.fold}: train {len(f.train)} / val {len(f.val)} / test {len(f.test)} patients"
        )
    if stop_after == "splits":
        return result
    console.rule("5. the paper's grid: diffusion, augmentation sets, classifiers, report")
    plan = make_plan(run)
    summary = run_experiment(
        run,
        plan,
        RunOptions(progress=progress),
        echo=lambda m: console.print(m, markup=False, highlight=False),
    )
    result.tables = summary["tables"]
    result.report = summary["report"]
    result.verdicts = demo_verdicts(run)
    return result


def demo_verdicts(run: RunDir) -> list[str]:
    """One line per method (single models; :func:`jointaug.experiments.verdicts.verdict_lines`)."""
    from jointaug.experiments.stats import read_stats, verdict_lines

    rows = [r for r in read_stats(run.results_dir / "stats.csv") if r["models"] == "single"]
    return verdict_lines(rows)
