"""CLI verbs of the masks room: ``conditions`` (a picture of sampled conditions)."""

from __future__ import annotations

from pathlib import Path

import typer

from jointaug.commands.common import ProfileOpt, SetOpt, console, handle_errors, resolve_config


def register(app: typer.Typer) -> None:
    """Add this room's commands to the app."""

    @app.command("conditions")
    @handle_errors
    def conditions(
        dataset: Path = typer.Argument(
            ..., help="Dataset folder (cases need tissue and region maps)."
        ),
        n: int = typer.Option(16, "--n", help="Number of sampled conditions (rows)."),
        perlin: bool = typer.Option(
            True, "--perlin/--no-perlin", help="Also show Perlin-varied maps."
        ),
        out: Path = typer.Option(Path("conditions.png"), "--out", help="PNG to write."),
        seed: int = typer.Option(0, "--seed", help="Random seed."),
        profile: str = ProfileOpt,
        overrides: list[str] = SetOpt,
    ) -> None:
        """Sample inflammation vectors and draw their condition maps (paper Fig. 3)."""
        from jointaug.masks.grid import conditions_grid

        cfg = resolve_config(profile, overrides)
        path = conditions_grid(
            dataset,
            out,
            n=n,
            perlin=perlin,
            seed=seed,
            sampler_cfg=cfg.sampler,
            perlin_cfg=cfg.perlin,
        )
        console.print(f"wrote {path}")
