"""CLI verb ``export``: a run's classifier ensemble as a MONAI bundle."""

from __future__ import annotations

from pathlib import Path

import typer

from jointaug.commands.common import console, handle_errors, open_run


def register(app: typer.Typer) -> None:
    """Add ``export`` to the app."""

    @app.command("export")
    @handle_errors
    def export(
        run_dir: Path = typer.Argument(..., help="A run folder with trained classifiers."),
        bundle: Path = typer.Option(
            ...,
            "--bundle",
            help="Bundle folder to write (new, empty, or an earlier bundle, which is replaced).",
        ),
        method: str = typer.Option(
            None,
            "--method",
            help="Method folder, e.g. mp-perlin_8192 or baseline "
            "\\[predict's choice: best ensemble GMS].",
        ),
    ) -> None:
        """Write the seed/fold ensemble that `predict` uses as a MONAI bundle.

        Same members, threshold and image preparation as `jointaug predict`.
        Layout: configs/metadata.json (versions, the labels in order, the
        decision threshold, input and output spec), configs/inference.json
        (network_def, preprocessing, inferer, postprocessing, evaluator),
        models/model.safetensors (the members' weights, no pickle), LICENSE,
        docs/README.md. Run it with

        python -m monai.bundle run --config_file BUNDLE/configs/inference.json
        --bundle_root BUNDLE --dataset_dir IMAGES --output_dir OUT

        which writes OUT/predictions.csv (p_<label> and 0/1 <label> columns).
        The config uses jointaug classes, so jointaug must be installed where
        the bundle runs; MONAI's command line needs python-fire
        (pip install "jointaug\\[bundle]").
        """
        from jointaug.experiments.bundle import export_bundle

        rd, _ = open_run(run_dir)
        out = export_bundle(rd, bundle, method)
        console.print(f"wrote the MONAI bundle {out}", markup=False, highlight=False)
