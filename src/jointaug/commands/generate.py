"""CLI verbs of the generative room: ``train-diffusion`` and ``augment``."""

from __future__ import annotations

from pathlib import Path

import typer

from jointaug.commands.common import SetOpt, console, handle_errors, run_config

RunOpt = typer.Option(..., "--run", help="Run folder (made by `jointaug run` / `jointaug demo`).")
FoldOpt = typer.Option(..., "--fold", help="Fold index (0-based).")
RetrainOpt = typer.Option(
    False,
    "--retrain",
    help="Replace an output finished with other settings (it is moved to RUN/stale/, not deleted).",
)


def register(app: typer.Typer) -> None:
    """Add this room's commands to the app."""
    app.command("train-diffusion")(handle_errors(train_diffusion_cmd))
    app.command("augment")(handle_errors(augment_cmd))


def train_diffusion_cmd(
    run: Path = RunOpt,
    fold: int = FoldOpt,
    retrain: bool = RetrainOpt,
    overrides: list[str] = SetOpt,
) -> None:
    """Train fold K's conditional diffusion model on its train part (resumes if interrupted)."""
    from jointaug.experiments.lock import run_lock
    from jointaug.experiments.outputs import model_output
    from jointaug.experiments.rundir import RunDir
    from jointaug.experiments.stages import train_fold_diffusion
    from jointaug.outputs import check, handle_stale

    rd = RunDir(run)
    config = run_config(rd, overrides)
    with run_lock(rd.path):
        stale = check(model_output(rd, fold, config)).stale
        handle_stale([stale], rd.path, retrain=retrain, echo=console.print)
        folder = train_fold_diffusion(rd, fold, progress=True, config=config)
    console.print(f"diffusion model: {folder}  (samples: {folder / 'samples.png'})")
    console.print(f"next: jointaug augment --run {run} --fold {fold} --source mp --perlin --n 8192")


def augment_cmd(
    run: Path = RunOpt,
    fold: int = FoldOpt,
    source: str = typer.Option("mp", "--source", help="mp (the fold's train cases) or natural."),
    perlin: bool = typer.Option(
        True, "--perlin/--no-perlin", help="Vary joint regions with Perlin noise."
    ),
    n: int = typer.Option(8192, "--n", help="Images in the set (a smaller existing set grows)."),
    natural: Path | None = typer.Option(
        None, "--natural", help="Natural source folder (default RUN/natural_source)."
    ),
    retrain: bool = RetrainOpt,
    overrides: list[str] = SetOpt,
) -> None:
    """Write an augmentation set of N synthetic labelled images (resumable, grows by appending)."""
    from jointaug.experiments.lock import run_lock
    from jointaug.experiments.outputs import set_from_model_on_disk
    from jointaug.experiments.rundir import RunDir
    from jointaug.experiments.stages import make_fold_set
    from jointaug.outputs import check, handle_stale
    from jointaug.sets.registry import diffusion_set_name

    rd = RunDir(run)
    config = run_config(rd, overrides)
    name = diffusion_set_name(source, perlin)
    with run_lock(rd.path):
        stale = check(set_from_model_on_disk(rd, fold, name, config, natural)).stale
        handle_stale([stale], rd.path, retrain=retrain, echo=console.print)
        folder = make_fold_set(rd, fold, source, perlin, n, natural_dir=natural, config=config)
    console.print(f"augmentation set: {folder}")
    console.print(f"next: jointaug validate {folder}")
