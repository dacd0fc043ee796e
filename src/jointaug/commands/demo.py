"""``jointaug demo``: the main job on the built-in phantom."""

from __future__ import annotations

from pathlib import Path

import typer

from jointaug.commands.common import SetOpt, console, handle_errors, resolve_config


def register(app: typer.Typer) -> None:
    @app.command("demo")
    @handle_errors
    def demo(
        out: Path = typer.Option(
            Path("runs/demo"), "--out", help="Folder for everything the demo makes."
        ),
        overrides: list[str] = SetOpt,
        stop_after: str = typer.Option(
            None, "--stop-after", help="Last stage to run: phantom, montage, splits, run."
        ),
    ) -> None:
        """Run the whole method on the built-in phantom (demo profile, CPU, minutes)."""
        from jointaug.experiments.demo import run_demo

        config = resolve_config("demo", overrides)
        result = run_demo(out, config, console, stop_after=stop_after)
        console.rule("done")
        if result.tables:
            console.print(result.tables, markup=False, highlight=False)
        if result.verdicts:
            from jointaug.experiments.verdicts import BLOCK_HEADER

            console.print(BLOCK_HEADER["single"], markup=False, highlight=False)
            for line in result.verdicts:
                console.print(f"  {line}", markup=False, highlight=False)
        console.print(
            f"dataset:  {result.dataset}\nrun:      {result.run}\nmontage:  {result.montage}"
        )
        if result.report:
            console.print(f"report:   {result.report}")
        console.print(
            f"next: jointaug predict {result.run} {result.dataset}/images/p001_palmar.png --out predictions"
        )
