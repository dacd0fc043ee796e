"""CLI verbs of the classify room: ``train-classifier`` (one training), ``evaluate`` (tables)."""

from __future__ import annotations

from pathlib import Path

import typer

from jointaug.commands.common import console, handle_errors, open_run


def register(app: typer.Typer) -> None:
    """Add this room's commands to the app."""

    @app.command("train-classifier")
    @handle_errors
    def train_classifier(
        run: Path = typer.Option(
            ..., "--run", help="Run folder (made by `jointaug run` or `split`)."
        ),
        fold: int = typer.Option(..., "--fold", help="Fold index."),
        method: str = typer.Option(
            "baseline", "--method", help="Method name (see experiments/methods.py)."
        ),
        seed: int = typer.Option(0, "--seed", help="Training seed."),
        size: int = typer.Option(None, "--size", help="Augmentation images [experiment.sizes[0]]."),
        force: bool = typer.Option(
            False, "--force", help="Retrain even if finished (the old one is moved to RUN/stale/)."
        ),
        retrain: bool = typer.Option(
            False,
            "--retrain",
            help="Replace a training finished with other "
            "settings (moved to RUN/stale/, not deleted).",
        ),
        no_progress: bool = typer.Option(False, "--no-progress", help="No progress bar."),
    ) -> None:
        """Train one classifier (resumes if interrupted; a finished one is only reported)."""
        from jointaug.experiments.classification import train_single
        from jointaug.experiments.lock import run_lock

        rd, _ = open_run(run)  # the run's threads and device, as `jointaug run` applies them
        with run_lock(rd.path):
            r = train_single(
                rd, fold, method, seed, size, force=force, retrain=retrain, progress=not no_progress
            )
        t, tt = r["test"], r["test_tuned"]
        console.print(
            f"fold {r['fold']} {r['method']} seed {r['seed']}: best val GMS {r['best_val_gms']:.3f} "
            f"at {r['best_samples']:,} samples ({r['samples']:,} seen, {r['stop_reason']}); "
            f"test GMS {t['gms']:.3f} (TPR {t['tpr']:.3f}, TNR {t['tnr']:.3f}) at "
            f"{r['threshold']:g}, {tt['gms']:.3f} at the tuned {r['threshold_tuned']:.2f}",
            markup=False,
            highlight=False,
        )

    @app.command("evaluate")
    @handle_errors
    def evaluate(run: Path = typer.Argument(..., help="Run folder.")) -> None:
        """Rebuild RUN/results (metrics.csv, per_label.csv, table1.md, table2.md) from the run."""
        from jointaug.experiments.lock import run_lock
        from jointaug.experiments.tables import write_results

        rd, _ = open_run(run)
        with run_lock(rd.path):
            paths = write_results(rd)
        for key in ("table1", "table2"):
            console.print(paths[key].read_text(encoding="utf-8"), markup=False, highlight=False)
        console.print(f"wrote {paths['metrics'].parent}", markup=False, highlight=False)
