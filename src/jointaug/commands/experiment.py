"""CLI verbs of the experiment room: ``run`` (the paper's grid), ``report``, ``predict``."""

from __future__ import annotations

from pathlib import Path

import typer

from jointaug.commands.common import (
    ProfileOpt,
    SetOpt,
    console,
    handle_errors,
    open_run,
    resolve_config,
)


def parse_int_list(text: str | None, what: str) -> list[int] | None:
    """``"0,1"`` -> [0, 1]; None -> None."""
    if text is None:
        return None
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"--{what} {text!r}: give comma-separated integers, e.g. 0,1") from None


def _echo(msg: str) -> None:
    console.print(msg, markup=False, highlight=False)


def register(app: typer.Typer) -> None:
    """Add this room's commands to the app."""

    @app.command("run")
    @handle_errors
    def run(
        dataset: Path = typer.Option(..., "--dataset", help="Dataset folder (the contract format)."),
        out: Path = typer.Option(..., "--out", help="Run folder (created, or reopened to resume)."),
        methods: str = typer.Option(
            None, "--methods",
            help="Comma-separated methods, e.g. baseline,mp-perlin,11k-perlin,mp80-11kp20,tuned_threshold "
            "[profile: experiment.methods + mixtures + experiment.imbalance_baselines].",
        ),
        sizes: str = typer.Option(None, "--sizes", help="Augmentation sizes, e.g. 8192 [experiment.sizes]."),
        curve_sizes: str = typer.Option(None, "--curve-sizes",
                                        help="Extra sizes for the Fig. 6 curves, one seed [experiment.curve_sizes]."),
        folds: str = typer.Option(None, "--folds", help="Only these folds, e.g. 0,1 [all]."),
        splits: Path = typer.Option(None, "--splits", help="Use this splits.json instead of making one."),
        photos: Path = typer.Option(None, "--photos", help="An 11k Hands folder [built-in stand-in photos]."),
        no_progress: bool = typer.Option(False, "--no-progress", help="No progress bars."),
        plan_only: bool = typer.Option(False, "--plan", help="Print the plan and the time estimate, then stop."),
        profile: str = ProfileOpt,
        overrides: list[str] = SetOpt,
    ) -> None:
        """The paper's grid on a dataset: diffusion, augmentation sets, classifiers, tables, report.

        Rerun the same command to resume: finished stages are skipped.
        """
        from jointaug.experiments.classification import config_with_methods
        from jointaug.experiments.pipeline import calibrate, describe, make_plan, run_experiment
        from jointaug.experiments.rundir import RunDir

        cfg = resolve_config(profile, overrides)
        if methods is not None:
            cfg = config_with_methods(cfg, methods)
        rd = RunDir.create(out, dataset, cfg, splits_file=splits)
        plan = make_plan(rd, methods, parse_int_list(sizes, "sizes"), parse_int_list(folds, "folds"),
                         parse_int_list(curve_sizes, "curve-sizes"))  # fmt: skip
        if plan_only:
            _echo(describe(rd, plan, calibrate(rd, plan)))
            return
        result = run_experiment(rd, plan, photos=photos, progress=not no_progress, echo=_echo)
        _echo("\n" + result["tables"])
        _echo(f"done in {result['wall_s']:.0f} s; report: {result['report']}")

    @app.command("report")
    @handle_errors
    def report(run_dir: Path = typer.Argument(..., help="A run folder made by `jointaug run`.")) -> None:
        """Rebuild results/ (metrics.csv, tables, figures, report.html) from a run folder."""
        from jointaug.experiments.report import write_report
        from jointaug.experiments.tables import write_results

        rd, _ = open_run(run_dir)
        paths = write_results(rd)
        _echo(paths["table1"].read_text(encoding="utf-8"))
        _echo(f"report: {write_report(rd)}")

    @app.command("predict")
    @handle_errors
    def predict(
        run_dir: Path = typer.Argument(..., help="A run folder with trained classifiers."),
        images: list[Path] = typer.Argument(..., help="Images to classify (png, tif, npy, dcm)."),
        out: Path = typer.Option(Path("predictions"), "--out", help="Folder for predictions.csv and overlays."),
        method: str = typer.Option(None, "--method",
                                   help="Method folder, e.g. mp-perlin_8192 or baseline [best ensemble GMS]."),
    ) -> None:
        """Per-joint probabilities and decisions from a run's seed ensemble, with overlay pictures."""
        from jointaug.experiments.predict import predict_images
        from jointaug.runtime import resolve_device

        rd, cfg = open_run(run_dir)
        csv_path = predict_images(rd, [str(p) for p in images], out, method,
                                  device=resolve_device(cfg.device))  # fmt: skip
        _echo(f"wrote {csv_path} and {len(images)} overlay pictures in {out}")
