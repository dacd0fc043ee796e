"""The ``jointaug`` command line: parse, load config, call one library function.

Each room's verbs live in ``jointaug.commands.<room>``; this module only gathers them.
"""

from __future__ import annotations

import typer

from jointaug.commands import (
    classify,
    contract,
    data,
    demo,
    experiment,
    export,
    fidelity,
    generate,
    headroom,
    masks,
    natural,
    stats,
)

app = typer.Typer(
    name="jointaug",
    help="Diffusion and natural-image augmentation for tiny, imbalanced multi-label joint imaging.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for _room in (
    demo,
    data,
    contract,
    masks,
    generate,
    natural,
    classify,
    experiment,
    export,
    fidelity,
    stats,
    headroom,
):
    _room.register(app)


def main() -> None:  # pragma: no cover - console entry point
    app()
