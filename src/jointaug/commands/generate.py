"""CLI verbs of the generative room: ``train-diffusion`` and ``augment``."""

from __future__ import annotations

from pathlib import Path

import typer

from jointaug.commands.common import SetOpt, console, handle_errors, run_config

RunOpt = typer.Option(..., "--run", help="Run folder (made by `jointaug run` / `jointaug demo`).")
FoldOpt = typer.Option(..., "--fold", help="Fold index (0-based).")


def register(app: typer.Typer) -> None:
    """Add this room's commands to the app."""

    @app.command("train-diffusion")
    @handle_errors
    def train_diffusion_cmd(
        run: Path = RunOpt,
        fold: int = FoldOpt,
        overrides: list[str] = SetOpt,
    ) -> None:
        """Train fold K's conditional diffusion model on its train part (resumes if interrupted)."""
        from jointaug.experiments.rundir import RunDir
        from jointaug.generate.train import train_diffusion

        rd = RunDir(run)
        folder = train_diffusion(rd, fold, progress=True, config=run_config(rd, overrides))
        console.print(f"diffusion model: {folder}  (samples: {folder / 'samples.png'})")
        console.print(f"next: jointaug augment --run {run} --fold {fold} --source mp --perlin --n 8192")

    @app.command("augment")
    @handle_errors
    def augment_cmd(
        run: Path = RunOpt,
        fold: int = FoldOpt,
        source: str = typer.Option("mp", "--source", help="mp (the fold's train cases) or natural."),
        perlin: bool = typer.Option(True, "--perlin/--no-perlin", help="Vary joint regions with Perlin noise."),
        n: int = typer.Option(8192, "--n", help="Images in the set (a smaller existing set grows)."),
        natural: Path | None = typer.Option(None, "--natural", help="Natural source folder (default RUN/natural_source)."),
        overrides: list[str] = SetOpt,
    ) -> None:
        """Write an augmentation set of N synthetic labelled images (resumable, grows by appending)."""
        from jointaug.experiments.rundir import RunDir
        from jointaug.generate.augment import make_augmentation_set

        rd = RunDir(run)
        folder = make_augmentation_set(rd, fold, source, perlin, n, natural_dir=natural,
                                       config=run_config(rd, overrides))  # fmt: skip
        console.print(f"augmentation set: {folder}")
        console.print(f"next: jointaug validate {folder}")

