"""Shared pieces of the CLI: error handling, config loading, console.

Every verb starts the same way (issue 13, "same inputs, same numbers"): a verb that
takes a profile calls :func:`resolve_config`; a verb that opens an existing run folder
calls :func:`open_run`, which applies THAT run's saved config. Both go through
:func:`jointaug.runtime.apply_runtime` (threads, CUDA settings) and resolve the device
once, so ``jointaug run`` and ``jointaug train-classifier`` train identically.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import sys
import typing
from collections.abc import Callable
from typing import TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from jointaug.config import Config, ConfigError, load_config, merge_trees, parse_overrides
from jointaug.dataset.format import DatasetError
from jointaug.dataset.io import ImageReadError
from jointaug.files import DiskFullError, is_disk_full
from jointaug.runtime import DeviceError, apply_runtime

console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)

F = TypeVar("F", bound=Callable)

# Errors a user can cause and fix: printed as one clear message, never a traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (
    DatasetError,
    ConfigError,
    DiskFullError,
    DeviceError,
    ImageReadError,
    FileNotFoundError,
    FileExistsError,
    ValueError,
)


def fail(message: str, code: int = 2) -> None:
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def options_command(options: type) -> Callable[[Callable], Callable]:
    """Decorate a command body that takes one dataclass of CLI options: typer sees the
    dataclass's fields (each default a ``typer.Option``) as the command's parameters, in
    order, so the flags stay where one reads them and the body takes one argument."""
    hints = typing.get_type_hints(options)
    fields = dataclasses.fields(options)
    params = [
        inspect.Parameter(
            f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=hints[f.name]
        )
        for f in fields
    ]

    def wrap(body: Callable) -> Callable:
        @functools.wraps(body)
        def command(**kwargs):
            return body(options(**kwargs))

        command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        command.__annotations__ = {f.name: hints[f.name] for f in fields}
        del command.__wrapped__  # typer reads the signature above, not the body's
        return command

    return wrap


def handle_errors(func: F) -> F:
    """Turn user errors into a one-line message and exit code 2; Ctrl-C into exit 130."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except USER_ERRORS as exc:
            fail(str(exc))
        except OSError as exc:  # a full disk in a writer that does not say so itself
            if not is_disk_full(exc):
                raise
            fail(str(DiskFullError(exc.filename or "a file", "this step stopped before finishing")))
        except KeyboardInterrupt:
            err_console.print("interrupted: rerun the same command to resume")
            sys.exit(130)

    return wrapper  # type: ignore[return-value]


def resolve_config(
    profile: str, overrides: list[str] | None, config_file: str | None = None
) -> Config:
    """The profile's config with a file and ``--set`` overrides, applied to this process
    (threads, CUDA settings; the device is checked to exist)."""
    config = load_config(profile, overrides, config_file)
    apply_runtime(config)
    return config


def run_config(run, overrides: list[str] | None = None) -> Config:
    """A run folder's saved config with ``--set`` overrides (not saved back), applied to
    this process exactly as :func:`resolve_config` applies a profile's."""
    config = run.config
    if overrides:
        try:
            config = Config.model_validate(
                merge_trees(config.model_dump(), parse_overrides(overrides))
            )
        except ValueError as exc:
            raise ConfigError(f"invalid override: {exc}") from exc
    apply_runtime(config)
    return config


def open_run(path, overrides: list[str] | None = None):
    """Open an existing run folder for a verb: ``(RunDir, config)`` with the run's config
    (plus overrides) applied to this process (threads, device)."""
    from jointaug.experiments.rundir import RunDir

    run = RunDir(path)
    return run, run_config(run, overrides)


ProfileOpt = typer.Option("demo", "--profile", help="Profile: demo (CPU, minutes) or paper (GPU).")
SetOpt = typer.Option(
    None, "--set", help="Override a config value, e.g. --set classify.lr=3e-4 (repeatable)."
)
