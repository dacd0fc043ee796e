"""CLI verbs of the data room: ``phantom`` (write the built-in dataset), ``show`` (montage)."""

from __future__ import annotations

from pathlib import Path

import typer

from jointaug.commands.common import ProfileOpt, SetOpt, console, handle_errors, resolve_config


def register(app: typer.Typer) -> None:
    """Add this room's commands to the app."""
    _register_phantom(app)
    _register_show(app)


def _register_phantom(app: typer.Typer) -> None:
    @app.command("phantom")
    @handle_errors
    def phantom(
        out: Path = typer.Argument(
            ..., help="Folder to write the dataset to (resumed if half-written)."
        ),
        patients: int = typer.Option(
            None, "--patients", help="Number of patients [profile: phantom.patients, 48]."
        ),
        size: int = typer.Option(
            None, "--size", help="Image size in pixels [profile: phantom.size, 256]."
        ),
        seed: int = typer.Option(None, "--seed", help="Random seed [profile: phantom.seed, 0]."),
        overwrite: bool = typer.Option(
            False, "--overwrite", help="Replace a complete dataset in OUT."
        ),
        profile: str = ProfileOpt,
        overrides: list[str] = SetOpt,
    ) -> None:
        """Write the built-in synthetic [99mTc]maraciclalide-like hand scintigraphy dataset."""
        import numpy as np

        from jointaug.dataset.phantom import write_phantom

        ph = resolve_config(profile, overrides).phantom
        ds = write_phantom(
            out,
            patients=ph.patients if patients is None else patients,
            size=ph.size if size is None else size,
            seed=ph.seed if seed is None else seed,
            overwrite=overwrite,
        )
        cls = ds.classification_cases()
        rate = float(np.nanmean(ds.label_matrix(cls))) if cls else float("nan")
        console.print(
            f"{len(ds.cases)} cases, {len(ds.patients())} patients, {len(cls)} classification "
            f"images, overall positive rate {rate:.1%}\nwrote {ds.root}"
        )


def _register_show(app: typer.Typer) -> None:
    @app.command("show")
    @handle_errors
    def show(
        dataset: Path = typer.Argument(..., help="Dataset folder."),
        out: Path = typer.Option(None, "--out", help="PNG to write [DATASET/montage.png]."),
        n: int = typer.Option(8, "--n", help="Number of cases to show."),
        seed: int = typer.Option(0, "--seed", help="Random seed for picking cases."),
    ) -> None:
        """Draw a montage of cases with tissue and region overlays and per-label prevalence."""
        from jointaug.dataset.format import read_dataset
        from jointaug.dataset.show import montage

        path = montage(read_dataset(dataset), out or dataset / "montage.png", n=n, seed=seed)
        console.print(f"wrote {path}")
