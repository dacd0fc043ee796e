"""``jointaug demo``: the main job on the built-in phantom."""

from __future__ import annotations

from pathlib import Path

import typer

from jointaug.commands.common import SetOpt, console, handle_errors, resolve_config


def register(app: typer.Typer) -> None:
    @app.command("demo")
    @handle_errors
    def demo(
        out: Path = typer.Option(Path("runs/demo"), "--out", help="Folder for everything the demo makes."),
        overrides: list[str] = SetOpt,
        stop_after: str = typer.Option(None, "--stop-after", help="Last stage to run: phantom, montage, splits, run."),
    ) -> None:
        """Run the whole method on the built-in phantom (demo profile, CPU, minutes)."""
        from jointaug.experiments.demo import run_demo

        config = resolve_config("demo", overrides)
        result = run_demo(out, config, console, stop_after=stop_after)
        console.rule("done")
        console.print(f"dataset:  {result.dataset}\nrun:      {result.run}\nmontage:  {result.montage}")
        console.print(f"next: jointaug validate {result.dataset}   |   jointaug show {result.dataset} --out m.png")
