"""CLI verbs of the fidelity records: ``fidelity`` (per augmentation set) and ``forward``."""

from __future__ import annotations

from pathlib import Path

import typer

from jointaug.commands.common import console, handle_errors


def register(app: typer.Typer) -> None:
    """Add this room's commands to the app."""

    @app.command("fidelity")
    @handle_errors
    def fidelity_cmd(
        run: Path = typer.Argument(..., help="Run folder."),
        fold: list[int] = typer.Option(None, "--fold", help="Folds (default: all)."),
        name: list[str] = typer.Option(
            None, "--set", help="Set names (default: every complete set)."
        ),
        strong: bool = typer.Option(
            True,
            "--strong/--no-strong",
            help="Also the strong judge (built-in phantom; trained on first use).",
        ),
        force: bool = typer.Option(False, "--force", help="Recompute records that are current."),
    ) -> None:
        """Write fidelity.json beside every augmentation set of a run (label fidelity, intensity,
        memorisation, realism) and print one line per set."""
        from jointaug.experiments.rundir import RunDir
        from jointaug.fidelity.measure import run_fidelity
        from jointaug.runtime import apply_runtime

        rd = RunDir(run)
        apply_runtime(rd.config)
        written = run_fidelity(
            rd, fold or None, name or None, strong=strong, force=force, echo=console.print
        )
        console.print(
            f"{len(written)} fidelity record(s) written; `jointaug report {run}` shows them"
        )

    @app.command("forward")
    @handle_errors
    def forward_cmd(
        run: Path = typer.Option(..., "--run", help="Run folder."),
        fold: int = typer.Option(..., "--fold", help="Fold index."),
        n: int = typer.Option(512, "--n", help="Images."),
        perlin: bool = typer.Option(
            False, "--perlin/--no-perlin", help="forward-perlin (Perlin-varied regions)."
        ),
    ) -> None:
        """Write the forward control set (a fitted imaging model renders the mp conditions)."""
        from jointaug.experiments.rundir import RunDir
        from jointaug.sets.forward import NAMES, make_forward_set

        rd = RunDir(run)
        out = make_forward_set(
            rd.augment_dir(fold, NAMES[perlin]),
            n,
            dataset=rd.dataset,
            train_patients=rd.splits.fold(fold).train,
            fold=fold,
            config=rd.config,
            perlin=perlin,
        )
        console.print(f"forward set: {out}")
