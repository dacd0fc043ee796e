"""Shared pieces of the CLI: error handling, config loading, console."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from jointaug.config import Config, ConfigError, apply_threads, load_config
from jointaug.dataset.format import DatasetError
from jointaug.dataset.io import DiskFullError, ImageReadError

console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)

F = TypeVar("F", bound=Callable)

# Errors a user can cause and fix: printed as one clear message, never a traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (
    DatasetError,
    ConfigError,
    DiskFullError,
    ImageReadError,
    FileNotFoundError,
    FileExistsError,
    ValueError,
)


def fail(message: str, code: int = 2) -> None:
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def handle_errors(func: F) -> F:
    """Turn user errors into a one-line message and exit code 2; Ctrl-C into exit 130."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except USER_ERRORS as exc:
            fail(str(exc))
        except KeyboardInterrupt:
            err_console.print("interrupted: rerun the same command to resume")
            sys.exit(130)

    return wrapper  # type: ignore[return-value]


def resolve_config(profile: str, overrides: list[str] | None, config_file: str | None = None) -> Config:
    config = load_config(profile, overrides, config_file)
    apply_threads(config)
    return config


ProfileOpt = typer.Option("demo", "--profile", help="Profile: demo (CPU, minutes) or paper (GPU).")
SetOpt = typer.Option(None, "--set", help="Override a config value, e.g. --set classify.lr=3e-4 (repeatable).")
