"""CLI verb ``headroom``: will more data help me? The baseline's learning curve."""

from __future__ import annotations

from pathlib import Path

import typer

from jointaug.commands.common import ProfileOpt, SetOpt, console, handle_errors, resolve_config


def register(app: typer.Typer) -> None:
    """Add this room's command to the app."""

    @app.command("headroom")
    @handle_errors
    def headroom(
        dataset: Path = typer.Argument(..., help="Dataset folder (the contract format)."),
        out: Path = typer.Option(..., "--out", help="Run folder (made, or reopened to resume)."),
        fractions: str = typer.Option(
            "0.25,0.5,0.75,1.0",
            "--fractions",
            help="Nested shares of each fold's training patients to train the baseline on.",
        ),
        folds: str = typer.Option(
            None, "--folds", help="Only these folds, e.g. 0,1 (all by default)."
        ),
        retrain: bool = typer.Option(
            False,
            "--retrain",
            help="Replace trainings finished with other settings (moved to RUN/stale/).",
        ),
        no_progress: bool = typer.Option(False, "--no-progress", help="No progress bars."),
        profile: str = ProfileOpt,
        overrides: list[str] = SetOpt,
    ) -> None:
        """Will more data help? Train the baseline on nested 25-100 % subsets of each fold's
        training patients, fit a learning curve and print the gain perfect extra data would
        give at the profile's augmentation sizes (an upper bound for any generator)."""
        from jointaug.commands.experiment import parse_int_list
        from jointaug.experiments.headroom import describe, parse_fractions, run_headroom
        from jointaug.experiments.lock import run_lock
        from jointaug.experiments.rundir import RunDir

        fr = parse_fractions(fractions)  # a bad list stops before anything is written
        fold_list = parse_int_list(folds, "folds")
        cfg = resolve_config(profile, overrides)
        Path(out).mkdir(parents=True, exist_ok=True)
        with run_lock(out):
            rd = RunDir.create(out, dataset, cfg)
            res = run_headroom(
                rd,
                fr,
                fold_list,
                retrain=retrain,
                progress=not no_progress,
                echo=lambda m: console.print(m, markup=False, highlight=False),
            )
        console.print(describe(res), markup=False, highlight=False)
