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
