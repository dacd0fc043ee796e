"""``jointaug stats RUN_OR_CSV``: every table, statistic and verdict, recomputed."""

from __future__ import annotations

from pathlib import Path

import typer

from jointaug.commands.common import console, handle_errors


def register(app: typer.Typer) -> None:
    @app.command("stats")
    @handle_errors
    def stats(
        source: Path = typer.Argument(
            ..., help="A run folder, or an oof.csv (e.g. docs/results/NAME/oof.csv)."
        ),
        out: Path = typer.Option(
            None, "--out", help="Folder for the CSVs and tables [RUN/results, or next to the CSV]."
        ),
        seed: int = typer.Option(0, "--seed", help="Bootstrap seed (one rng per table)."),
        n_boot: int = typer.Option(2000, "--n-boot", help="Resamples for GMS comparisons."),
        n_boot_auprc: int = typer.Option(
            1000, "--n-boot-auprc", help="Resamples for AUPRC comparisons."
        ),
        margin: float = typer.Option(
            0.03, "--margin", help="Equivalence margin (TOST), GMS and AUPRC."
        ),
    ) -> None:
        """Recompute the tables, stats.csv and the verdicts from a run or its oof.csv
        (deterministic: the same input and seed give the same numbers)."""
        from jointaug.experiments.stats import StatsOptions, read_stats
        from jointaug.experiments.tables import recompute
        from jointaug.experiments.verdicts import verdict_block

        opt = StatsOptions(n_boot, n_boot_auprc, margin, margin, seed)
        paths = recompute(source, out, opt)
        block = verdict_block(read_stats(paths["stats"]), ("single", "ensemble"))
        console.print(block, markup=False, highlight=False)
        console.print(
            "wrote " + ", ".join(str(p) for p in paths.values()), markup=False, highlight=False
        )

    @app.command("choose")
    @handle_errors
    def choose_cmd(
        runs: list[Path] = typer.Argument(..., help="Run folders, one per candidate setting."),
        method: list[str] = typer.Option(
            None, "--method", help="Only these methods (repeatable; all by default)."
        ),
        metric: str = typer.Option(
            "val_auprc", "--metric", help="val_auprc (default), val_gms or val_gms_tuned."
        ),
    ) -> None:
        """Choose among candidate runs on their validation predictions only (never test):
        a table per (run, method, size) and the best by --metric."""
        from jointaug.experiments.rundir import RunDir
        from jointaug.experiments.selection import choose, format_rows, validation_rows

        rows = [r for p in runs for r in validation_rows(RunDir(p), method or None)]
        best = choose(rows, metric)
        console.print(format_rows(rows, best), markup=False, highlight=False)
        name = f"{best['run']} / {best['method']}" + (f" ({best['size']})" if best["size"] else "")
        console.print(f"chosen on validation ({metric}): {name}", markup=False, highlight=False)
