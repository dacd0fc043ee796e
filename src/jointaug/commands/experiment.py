"""CLI verbs of the experiment room: ``run`` (the paper's grid), ``report``, ``predict``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import typer

from jointaug.commands.common import (
    ProfileOpt,
    SetOpt,
    console,
    fail,
    handle_errors,
    open_run,
    options_command,
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


@dataclass
class RunArgs:
    """The options of ``jointaug run`` (the flags, exactly as typer shows them)."""

    dataset: Path = typer.Option(..., "--dataset", help="Dataset folder (the contract format).")
    out: Path = typer.Option(..., "--out", help="Run folder (created, or reopened to resume).")
    methods: str = typer.Option(
        None,
        "--methods",
        help="Comma-separated methods, e.g. baseline,mp-perlin,11k-perlin,mp80-11kp20,tuned_threshold "
        "[profile: experiment.methods + mixtures + experiment.imbalance_baselines].",
    )
    sizes: str = typer.Option(
        None, "--sizes", help="Augmentation sizes, e.g. 8192 [experiment.sizes]."
    )
    curve_sizes: str = typer.Option(
        None,
        "--curve-sizes",
        help="Extra sizes for the Fig. 6 curves, one seed [experiment.curve_sizes].",
    )
    folds: str = typer.Option(None, "--folds", help="Only these folds, e.g. 0,1 [all].")
    splits: Path = typer.Option(
        None, "--splits", help="Use this splits.json instead of making one."
    )
    photos: Path = typer.Option(
        None, "--photos", help="An 11k Hands folder [built-in stand-in photos]."
    )
    no_progress: bool = typer.Option(False, "--no-progress", help="No progress bars.")
    plan_only: bool = typer.Option(
        False, "--plan", help="Print the plan, its task graph and the time estimate, then stop."
    )
    retrain: bool = typer.Option(
        False,
        "--retrain",
        help="Replace outputs finished with other settings "
        "(they are moved to RUN/stale/<time>/, not deleted).",
    )
    executor: str = typer.Option(
        "local", "--executor", help="local (this process) or ray (a Ray cluster)."
    )
    address: str = typer.Option(
        None, "--address", help="Ray cluster: auto, HOST:PORT [a local Ray instance]."
    )
    gpus_per_classifier: float = typer.Option(
        0.25, "--gpus-per-classifier", help="Ray: GPU share of one classifier training."
    )
    shards: int = typer.Option(
        1, "--shards", help="Split each augmentation set into this many parallel tasks."
    )
    gpus: int = typer.Option(
        0, "--gpus", help="With --plan: schedule the task graph on this many cards."
    )
    card: str = typer.Option(
        None,
        "--card",
        help="With --gpus: per-task costs for this card (h100, h200, a100; FLOP model).",
    )
    calibration: Path = typer.Option(
        None, "--calibration", help="With --gpus: per-task costs measured by gpu_check.py --json."
    )
    packing_gain: float = typer.Option(
        None,
        "--packing-gain",
        help="With --gpus: throughput of a card shared by classifiers vs one [calibration, else 1.8].",
    )
    profile: str = ProfileOpt
    overrides: list[str] = SetOpt

    def options(self):
        from jointaug.experiments.pipeline import RunOptions

        return RunOptions(
            photos=self.photos,
            progress=not self.no_progress,
            executor=self.executor,
            retrain=self.retrain,
            shards=self.shards,
            gpus_per_classifier=self.gpus_per_classifier,
            ray_address=self.address,
        )

    def plan(self, rd):
        from jointaug.experiments.plan import make_plan

        return make_plan(
            rd,
            self.methods,
            parse_int_list(self.sizes, "sizes"),
            parse_int_list(self.folds, "folds"),
            parse_int_list(self.curve_sizes, "curve-sizes"),
        )


def _run_config(args: RunArgs):
    from jointaug.experiments.classification import config_with_methods

    if args.executor == "ray":  # the driver neither resolves nor sets up a device: the tasks do
        from jointaug.config import load_config

        cfg = load_config(args.profile, args.overrides)
    else:
        cfg = resolve_config(args.profile, args.overrides)
    return config_with_methods(cfg, args.methods) if args.methods is not None else cfg


def _show_plan(args: RunArgs, cfg) -> None:
    """``--plan``: the plan, its task graph, the estimate and what a run would replace."""
    from jointaug.experiments.graph import describe_graph, task_done
    from jointaug.experiments.lock import run_lock
    from jointaug.experiments.outputs import stale_outputs
    from jointaug.experiments.pipeline import build_tasks
    from jointaug.experiments.plan import describe
    from jointaug.experiments.rundir import RunDir

    if (Path(args.out) / "config.yaml").is_file():
        # a reader of an existing run: no lock, nothing written; the config of this
        # command (not saved), so the plan shows what a run would replace
        rd = RunDir(args.out)
        rd.__dict__["config"] = cfg.model_copy(update={"dataset": rd.config.dataset})
    else:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        with run_lock(args.out):
            rd = RunDir.create(args.out, args.dataset, cfg, splits_file=args.splits)
    plan = args.plan(rd)
    rates, where = _plan_rates(args, rd, plan)
    tasks = build_tasks(rd, plan, args.options(), rates=rates)
    _echo(describe(rd, plan, rates))
    _echo(describe_graph(rd, tasks, {t.id for t in tasks if task_done(rd, t)}))
    if args.gpus > 0:
        _echo(_schedule(args, rd, tasks, rates, where))
    main, curve = plan.jobs()
    stale = stale_outputs(rd, plan.folds, plan.sets, [*main, *curve])
    if stale:
        _echo(f"{len(stale)} finished output(s) would be replaced (run with --retrain to confirm):")
        _echo("\n".join(s.describe() for s in stale))


def _plan_rates(args: RunArgs, rd, plan) -> tuple:
    """(rates, where they come from) for ``--plan``: a calibration file of the card, the
    FLOP model of a named card, or a few real steps timed on this machine."""
    from jointaug.experiments.cards import card as card_info
    from jointaug.experiments.cards import flop_rates, read_calibration
    from jointaug.experiments.plan import calibrate

    if args.calibration is not None:
        rates, extra = read_calibration(args.calibration)
        return rates, (str(extra.get("card", rates.device)), f"measured, {args.calibration}", extra)
    if args.card is not None:
        rates = flop_rates(rd.config, len(rd.dataset.labels), args.card)
        where = "FLOPs / stated throughput, experiments/cards.py"
        return rates, (card_info(args.card).name, where, {})
    rates = calibrate(rd, plan)
    return rates, (rates.device, "measured on this machine", {})


def _schedule(args: RunArgs, rd, tasks, rates, where: tuple) -> str:
    """``--plan --gpus N``: the makespan of the grid on N cards (``experiments/makespan.py``)."""
    from jointaug.experiments.makespan import plan_makespan

    card, source, extra = where
    gain = args.packing_gain or float(extra.get("packing_gain", 1.8))
    return plan_makespan(
        rd, tasks, rates, args.gpus, card=card, source=source, packing_gain=gain
    ).describe()


def run(args: RunArgs) -> None:
    """The paper's grid on a dataset: diffusion, augmentation sets, classifiers, tables, report.

    Rerun the same command to resume: finished stages are skipped. A changed setting
    stops the run before any work and lists what it would replace; --retrain confirms.
    """
    from jointaug.experiments.lock import run_lock
    from jointaug.experiments.pipeline import run_experiment
    from jointaug.experiments.rundir import RunDir

    cfg = _run_config(args)
    if args.plan_only:
        _show_plan(args, cfg)
        return
    Path(args.out).mkdir(parents=True, exist_ok=True)
    with run_lock(args.out):
        rd = RunDir.create(args.out, args.dataset, cfg, splits_file=args.splits)
        plan = args.plan(rd)
        try:
            result = run_experiment(rd, plan, args.options(), echo=_echo)
        except RuntimeError as exc:
            from jointaug.experiments.ray_executor import GraphFailed

            if isinstance(exc, GraphFailed):
                fail(str(exc), code=1)
            raise
    _echo("\n" + result["tables"])
    _echo(_verdicts(rd))
    _echo(f"done in {result['wall_s']:.0f} s; report: {result['report']}")


def _verdicts(rd) -> str:
    """The verdict block of ``RUN/results/stats.csv`` (single models)."""
    from jointaug.experiments.stats import read_stats
    from jointaug.experiments.verdicts import verdict_block

    return verdict_block(read_stats(rd.results_dir / "stats.csv"))


def register(app: typer.Typer) -> None:
    """Add this room's commands to the app."""

    app.command("run")(handle_errors(options_command(RunArgs)(run)))

    @app.command("report")
    @handle_errors
    def report(
        run_dir: Path = typer.Argument(..., help="A run folder made by `jointaug run`."),
    ) -> None:
        """Rebuild results/ (metrics.csv, tables, figures, report.html) from a run folder."""
        from jointaug.experiments.lock import run_lock
        from jointaug.experiments.report import write_report
        from jointaug.experiments.tables import write_results

        rd, _ = open_run(run_dir)
        with run_lock(rd.path):
            paths = write_results(rd)
            _echo(paths["table1"].read_text(encoding="utf-8"))
            _echo(_verdicts(rd))
            _echo(f"report: {write_report(rd)}")

    @app.command("predict")
    @handle_errors
    def predict(
        run_dir: Path = typer.Argument(..., help="A run folder with trained classifiers."),
        images: list[Path] = typer.Argument(..., help="Images to classify (png, tif, npy, dcm)."),
        out: Path = typer.Option(
            Path("predictions"), "--out", help="Folder for predictions.csv and overlays."
        ),
        method: str = typer.Option(
            None,
            "--method",
            help="Method folder, e.g. mp-perlin_8192 or baseline [best ensemble GMS].",
        ),
        explain: str = typer.Option(
            "gradcam",
            "--explain",
            help="Where each joint's evidence lies, drawn on the scan and saved as "
            "<stem>_cam.npy/.json: gradcam, occlusion (slower) or none.",
        ),
        cam_layer: str = typer.Option(
            None,
            "--cam-layer",
            help="Grad-CAM target layer, e.g. features.transition2.relu [class_layers.relu].",
        ),
    ) -> None:
        """Per-joint probabilities and decisions from a run's seed ensemble, drawn on each scan
        at the joint's class-activation-map peak (overlay PNG, maps as .npy, peaks as .json)."""
        from rich.markup import escape

        from jointaug.commands.common import err_console
        from jointaug.experiments.predict import predict_images
        from jointaug.runtime import resolve_device

        rd, cfg = open_run(run_dir)
        csv_path = predict_images(
            rd,
            [str(p) for p in images],
            out,
            method,
            device=resolve_device(cfg.device),
            warn=lambda m: err_console.print(f"[yellow]warning[/] {escape(m)}", highlight=False),
            explain=explain,
            cam_layer=cam_layer,
        )
        maps = "" if explain == "none" else " and maps (_cam.npy, _cam.json)"
        _echo(f"wrote {csv_path} and {len(images)} overlay pictures{maps} in {out}")
