"""CLI verbs of the natural-photo room: ``natural-source`` and ``hands11k-check``."""

from __future__ import annotations

from pathlib import Path

import typer

from jointaug.commands.common import ProfileOpt, SetOpt, console, handle_errors, resolve_config
from jointaug.runtime import resolve_device


def register(app: typer.Typer) -> None:
    """Add this room's commands to the app."""

    @app.command("natural-source")
    @handle_errors
    def natural_source(
        out: Path = typer.Argument(..., help="Dataset folder to write (kept as is when complete)."),
        photos: Path = typer.Option(
            None, "--photos",
            help="11k Hands folder (HandInfo.csv, Hands/, labelstudio.json or regions/). "
            "Default: natural.source, else the built-in stand-in photos.",
        ),  # fmt: skip
        size: int = typer.Option(256, "--size", help="Scene size in pixels (the scintigraphy size)."),
        work_dir: Path = typer.Option(
            None, "--work-dir", help="Scratch folder (stand-in photos, segmenter cache). Default: OUT.work"
        ),
        seed: int = typer.Option(0, "--seed", help="Random seed."),
        profile: str = ProfileOpt,
        overrides: list[str] = SetOpt,
    ) -> None:
        """Two-hand scenes (tissue + 30 joint regions) from natural hand photos (paper: 11k Hands)."""
        from jointaug.natural.source import build_natural_source

        cfg = resolve_config(profile, overrides)
        if photos is None and cfg.natural.source:
            photos = Path(cfg.natural.source)
        ds = build_natural_source(
            out, photos, size, cfg.natural, seed, progress=True, work_dir=work_dir,
            device=resolve_device(cfg.device),
        )  # fmt: skip
        console.print(f"{len(ds.cases)} natural cases in {ds.root}")

    @app.command("hands11k-check")
    @handle_errors
    def hands11k_check_cmd(
        photos: Path = typer.Argument(..., help="11k Hands folder (HandInfo.csv and Hands/)."),
        out: Path = typer.Option(Path("hands11k_masks.png"), "--out", help="First montage page (PNG)."),
        tile: int = typer.Option(120, "--tile", help="Side of one photo tile in pixels."),
    ) -> None:
        """Montage of every photo beside its background-heuristic mask, plus a CSV."""
        from jointaug.natural.check import hands11k_check

        pages, rows = hands11k_check(photos, out, tile_px=tile)
        console.print(f"{len(rows)} photos on {len(pages)} page(s): {', '.join(map(str, pages))}")
        console.print(f"per-photo table: {out.with_suffix('.csv')}")
