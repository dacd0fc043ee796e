"""CLI verbs of the experiment room: ``run`` (the paper's protocol on a dataset)."""

from __future__ import annotations

from pathlib import Path

import typer

from jointaug.commands.common import ProfileOpt, SetOpt, console, handle_errors, resolve_config


def parse_int_list(text: str | None, what: str) -> list[int] | None:
    """``"0,1"`` -> [0, 1]; None -> None."""
    if text is None:
        return None
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"--{what} {text!r}: give comma-separated integers, e.g. 0,1") from None


def register(app: typer.Typer) -> None:
    """Add this room's commands to the app."""

    @app.command("run")
    @handle_errors
    def run(
        dataset: Path = typer.Option(..., "--dataset", help="Dataset folder (the contract format)."),
        out: Path = typer.Option(..., "--out", help="Run folder (created, or reopened to resume)."),
        methods: str = typer.Option(
            None, "--methods",
            help="Comma-separated methods, e.g. baseline,bce_pos_weight,tuned_threshold "
            "[profile: experiment.methods + experiment.imbalance_baselines].",
        ),
        folds: str = typer.Option(None, "--folds", help="Only these folds, e.g. 0,1 [all]."),
        splits: Path = typer.Option(None, "--splits", help="Use this splits.json instead of making one."),
        force: bool = typer.Option(False, "--force", help="Retrain finished trainings."),
        no_progress: bool = typer.Option(False, "--no-progress", help="No progress bars."),
        profile: str = ProfileOpt,
        overrides: list[str] = SetOpt,
    ) -> None:
        """Run the paper's protocol: train and evaluate every method on every fold, print Table 1."""
        from jointaug.experiments.classification import (
            config_with_methods,
            configured_methods,
            run_classification,
        )
        from jointaug.experiments.rundir import RunDir

        cfg = resolve_config(profile, overrides)
        if methods is not None:
            cfg = config_with_methods(cfg, methods)
        rd = RunDir.create(out, dataset, cfg, splits_file=splits)
        summary = run_classification(
            rd, configured_methods(cfg), folds=parse_int_list(folds, "folds"), force=force,
            progress=not no_progress, echo=lambda m: console.print(m, markup=False, highlight=False),
        )  # fmt: skip
        console.print("\n" + summary.tables, markup=False, highlight=False)
        console.print(
            f"{summary.trained} trained, {summary.skipped} already done, "
            f"{summary.wall_s:.0f} s; results in {summary.results_dir}",
            markup=False, highlight=False,
        )  # fmt: skip
