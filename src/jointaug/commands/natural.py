"""CLI verbs of the natural-photo room: ``natural-source``, ``hands11k-check`` and the
Label Studio pair ``labelstudio-config`` / ``labelstudio-export``."""

from __future__ import annotations

from pathlib import Path

import typer

from jointaug.commands.common import ProfileOpt, SetOpt, console, handle_errors, resolve_config
from jointaug.runtime import resolve_device


def register(app: typer.Typer) -> None:
    """Add this room's commands to the app."""
    app.command("natural-source")(handle_errors(natural_source_cmd))
    app.command("hands11k-check")(handle_errors(hands11k_check_cmd))
    app.command("labelstudio-config")(handle_errors(labelstudio_config_cmd))
    app.command("labelstudio-export")(handle_errors(labelstudio_export_cmd))


def natural_source_cmd(
    out: Path = typer.Argument(..., help="Dataset folder to write (kept as is when complete)."),
    photos: Path = typer.Option(
        None,
        "--photos",
        help="11k Hands folder (HandInfo.csv, Hands/, labelstudio.json or regions/). "
        "Default: natural.source, else the built-in stand-in photos.",
    ),
    size: int = typer.Option(256, "--size", help="Scene size in pixels (the scintigraphy size)."),
    work_dir: Path = typer.Option(
        None,
        "--work-dir",
        help="Scratch folder (stand-in photos, segmenter cache). Default: OUT.work",
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
        out,
        photos,
        size,
        cfg.natural,
        seed,
        progress=True,
        work_dir=work_dir,
        device=resolve_device(cfg.device),
    )
    console.print(f"{len(ds.cases)} natural cases in {ds.root}")


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


def segmenter_file(path: Path) -> Path:
    """The weight file behind ``--segmenter``: the file, ``DIR/segmenter.safetensors``, or
    ``OUT.work/segmenter.safetensors`` for a natural-source OUT folder."""
    name = "segmenter.safetensors"
    if path.is_dir():
        for cand in (path / name, path.parent / f"{path.name}.work" / name):
            if cand.is_file():
                return cand
        raise FileNotFoundError(f"{path}: no {name} in it nor in {path.name}.work beside it")
    return path


def labelstudio_config_cmd(
    out: Path = typer.Option(None, "--out", help="Write the XML here (default: print it)."),
) -> None:
    """Label Studio labelling config: an Image and BrushLabels with the 15 joint names."""
    from jointaug.files import write_text_atomic
    from jointaug.natural.labelstudio_export import labelling_config

    xml = labelling_config()
    if out is None:
        typer.echo(xml, nl=False)
    else:
        write_text_atomic(out, xml)
        console.print(f"labelling config: {out}")


def labelstudio_export_cmd(
    photos: list[Path] = typer.Argument(
        ..., help="Photos or folders of photos (a folder's Hands/ if it has one)."
    ),
    segmenter: Path = typer.Option(
        ...,
        "--segmenter",
        help="Saved joint segmenter: OUT.work/segmenter.safetensors of a natural-source "
        "build, or that work folder, or the build's OUT folder.",
    ),
    out: Path = typer.Option(..., "--out", help="Label Studio import file to write (JSON)."),
    url_prefix: str = typer.Option(
        "/data/local-files/?d=",
        "--url-prefix",
        help="data.image = this prefix + the photo's path under --root.",
    ),
    root: Path = typer.Option(
        Path("."), "--root", help="Photo paths in data.image are relative to this folder."
    ),
    skip_labelled: Path = typer.Option(
        None,
        "--skip-labelled",
        help="Label Studio export (.json) or regions/ folder: photos it labels are left out.",
    ),
    profile: str = ProfileOpt,
    overrides: list[str] = SetOpt,
) -> None:
    """Pre-annotations for Label Studio: the joint segmenter's masks as brush predictions."""
    from jointaug.natural.joints import load_trained_segmenter
    from jointaug.natural.labelstudio_export import ExportOptions, export_tasks

    cfg = resolve_config(profile, overrides)
    seg = load_trained_segmenter(segmenter_file(segmenter), cfg.natural)
    opts = ExportOptions(
        url_prefix=url_prefix,
        root=root,
        skip_labelled=skip_labelled,
        device=str(resolve_device(cfg.device)),
        progress=True,
    )
    summary = export_tasks(photos, seg, out, opts)
    skipped = f", {summary.n_skipped} already labelled left out" if skip_labelled else ""
    console.print(
        f"{summary.n_tasks} tasks, {summary.n_results} joint masks in {out}{skipped}; "
        "import it into a project with `jointaug labelstudio-config`'s config"
    )
