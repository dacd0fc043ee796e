"""The data-contract verbs: ``validate`` and ``split``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.progress import track
from rich.table import Table

from jointaug.commands.common import console, err_console, handle_errors
from jointaug.dataset.format import read_dataset
from jointaug.dataset.splits import make_splits, read_splits, split_summary, write_splits
from jointaug.dataset.validate import Report, validate_dataset


def print_report(report: Report, max_issues: int = 200) -> None:
    s = report.summary
    if s:
        console.print(
            f"[bold]{report.root}[/]: {s['cases']} cases, {s['patients']} patients, "
            f"{s['classification_cases']} labelled classification images"
        )
        console.print("views: " + ", ".join(f"{v} {n}" for v, n in s["views"].items()))
        table = Table("label", "positive", "known", "rate", title="per-label positives")
        for lab, pos, known in zip(s["labels"], s["positives"], s["known"], strict=True):
            table.add_row(lab, str(pos), str(known), f"{pos / known:.2f}" if known else "-")
        console.print(table)
        total_known = sum(s["known"])
        if total_known:
            console.print(f"overall positive rate {sum(s['positives']) / total_known:.3f}")
    for issue in report.warnings[:max_issues]:
        err_console.print(
            f"[yellow]warning[/] {escape(str(issue))}", highlight=False, soft_wrap=True
        )
    for issue in report.errors[:max_issues]:
        err_console.print(f"[red]error[/] {escape(str(issue))}", highlight=False, soft_wrap=True)
    hidden = len(report.errors) - max_issues
    if hidden > 0:
        err_console.print(f"... and {hidden} more errors")


def register(app: typer.Typer) -> None:
    @app.command("validate")
    @handle_errors
    def validate(
        dataset: Path = typer.Argument(..., help="Dataset folder (dataset.json + cases.csv)."),
        quick: bool = typer.Option(False, help="Check the index files only, not the images."),
    ) -> None:
        """Check a dataset folder against the contract; list every violation."""
        report = validate_dataset(
            dataset,
            check_files=not quick,
            progress=lambda rows: track(rows, "reading files", console=err_console),
        )
        print_report(report)
        if not report.ok:
            err_console.print(
                f"[bold red]{len(report.errors)} errors[/]: {dataset} is not a valid dataset"
            )
            raise typer.Exit(1)
        console.print(f"[bold green]valid[/] ({len(report.warnings)} warnings)")

    @app.command("split")
    @handle_errors
    def split(
        dataset: Path = typer.Argument(..., help="Dataset folder."),
        out: Path = typer.Option(
            ..., "--out", help="splits.json to write (or to check with --check)."
        ),
        folds: int = typer.Option(5, help="Number of parts/folds (5 gives 60/20/20)."),
        seed: int = typer.Option(0, help="Seed of the assignment."),
        check: bool = typer.Option(False, help="Only check an existing splits file for leakage."),
    ) -> None:
        """Patient-level k-fold splits (test = part k, validation = part k+1, train = rest)."""
        ds = read_dataset(dataset)
        if check:
            splits = read_splits(out, ds)
        else:
            splits = make_splits(ds, folds, seed)
            write_splits(splits, out)
        table = Table("fold", "part", "patients", "images", "positives", "rate")
        for r in split_summary(splits, ds):
            table.add_row(
                str(r["fold"]),
                r["part"],
                str(r["patients"]),
                str(r["images"]),
                str(r["positives"]),
                f"{r['positive_rate']:.3f}",
            )
        console.print(table)
        console.print(f"{'checked' if check else 'wrote'} {out}")
