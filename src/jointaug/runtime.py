"""Device, threads and precision: the one place that decides how torch runs.

Every command starts the same way, whether it builds a config from a profile
(``commands.common.resolve_config``) or opens an existing run folder (the run's saved
config): :func:`apply_runtime` sets torch's CPU thread count from ``config.threads``
and, on CUDA, ``cudnn.benchmark`` and TF32 matrix products; :func:`resolve_device`
turns the config's ``device`` string (``auto``, ``cpu``, ``cuda``, ``cuda:N``) into a
``torch.device`` once, at the entry of a stage, and everything below receives that
``torch.device`` (never the string ``"auto"``). :func:`runtime_record` is what every
training writes into its ``result.json`` / ``model.json``: torch version, device and
card name, thread count and the deterministic flags it ran with, so that two results
can be compared knowing how each was made.

On the CPU nothing here changes results: threads only change speed (each training is
bit-identical for the same thread count; across thread counts float reductions may
round differently, which is why every verb applies the same ``threads``).
"""

from __future__ import annotations

import os
from contextlib import contextmanager, nullcontext
from typing import Protocol

import torch


class RuntimeSettings(Protocol):
    """What :func:`apply_runtime` reads of a config (``jointaug.config.Config`` has it);
    a protocol, so this ground-floor module imports nothing of the package."""

    device: str
    threads: int
    deterministic: bool


class DeviceError(ValueError):
    """A device the config asks for that this machine does not have."""


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """``auto`` -> ``cuda`` when torch sees a GPU, else ``cpu``; ``cpu``, ``cuda``, ``cuda:N``
    as given. A ``torch.device`` is returned unchanged (callers may pass either).

    Raises DeviceError for CUDA requested on a machine without CUDA, or an unknown name.
    """
    if isinstance(name, torch.device):
        dev = name
    elif name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        try:
            dev = torch.device(str(name))
        except RuntimeError as exc:
            raise DeviceError(f"unknown device {name!r}: use auto, cpu, cuda or cuda:N") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(
            f"device {str(name)!r} requested but torch sees no CUDA GPU (torch {torch.__version__}); "
            "use --set device=cpu or device=auto"
        )
    if dev.type not in ("cpu", "cuda"):
        raise DeviceError(f"device {str(name)!r} is not supported: use auto, cpu, cuda or cuda:N")
    return dev


_ASSUMED: list[str] = []  # the device type a scheduler knows its workers use


@contextmanager
def assume_device_type(device_type: str | None):
    """While active, :func:`key_device_type` resolves ``auto`` to ``device_type`` (a
    scheduler whose tasks run elsewhere, e.g. the Ray driver on a cluster with GPUs,
    must not ask its own torch); ``None``: no change."""
    if device_type is None:
        yield
        return
    _ASSUMED.append(device_type)
    try:
        yield
    finally:
        _ASSUMED.pop()


def key_device_type(name: str | torch.device = "auto") -> str:
    """``cpu`` or ``cuda``: the device type a stage run with the config's ``device`` uses,
    for settings keys (:func:`jointaug.keys.runtime_settings`). Explicit names need no
    GPU to be resolved; ``auto`` is the assumed type (:func:`assume_device_type`) or
    whether this process's torch sees a GPU."""
    if isinstance(name, torch.device):
        return name.type
    if name == "auto":
        return _ASSUMED[-1] if _ASSUMED else resolve_device("auto").type
    return "cuda" if str(name).startswith("cuda") else "cpu"


def apply_runtime(config: RuntimeSettings) -> torch.device:
    """Apply the config's runtime settings to this process; return its resolved device.

    - ``threads`` > 0: ``torch.set_num_threads(threads)`` (0 leaves torch's default);
    - on CUDA: ``cudnn.benchmark = True`` (fixed shapes: the fastest kernels are picked
      once) and TF32 for float32 matrix products and convolutions (``high`` precision).
      Neither touches the CPU path.
    - ``deterministic``: ``torch.use_deterministic_algorithms(True, warn_only=True)``,
      ``cudnn.deterministic = True`` and no cuDNN autotuning (on CUDA, two runs then give
      the same numbers at some cost in speed; on the CPU training is deterministic for a
      fixed thread count anyway). ``False`` switches these back off.
    """
    if config.threads > 0 and torch.get_num_threads() != config.threads:
        torch.set_num_threads(config.threads)
    dev = resolve_device(config.device)
    det = bool(getattr(config, "deterministic", False))
    if det:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS
    torch.use_deterministic_algorithms(det, warn_only=True)
    torch.backends.cudnn.deterministic = det
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = not det
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.set_float32_matmul_precision("high")
    return dev


def device_name(device: torch.device | str) -> str:
    """``cpu``, or ``cuda:0 (NVIDIA H100 80GB HBM3)``."""
    dev = resolve_device(device)
    if dev.type == "cuda":
        index = dev.index if dev.index is not None else torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    return str(dev)


def runtime_record(device: torch.device | str) -> dict:
    """How this process runs torch (for result.json / model.json)."""
    dev = resolve_device(device)
    return {
        "torch": torch.__version__,
        "device": device_name(dev),
        "threads": torch.get_num_threads(),
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "cudnn_deterministic": bool(torch.backends.cudnn.deterministic),
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
        "tf32_matmul": bool(torch.backends.cuda.matmul.allow_tf32),
        "cuda": torch.version.cuda,
    }


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 in hardware (CUDA compute capability >= 8.0:
    A100, H100, ...). ``torch.cuda.is_bf16_supported()`` also says yes where bf16 is only
    emulated (V100, T4), which runs slower than float32."""
    if device.type != "cuda":
        return False
    return torch.cuda.is_bf16_supported(including_emulation=False)


def autocast_for(device: torch.device, amp: bool):
    """bf16 autocast on a CUDA card with native bf16 when ``amp``; else a no-op (fp16
    would need loss scaling, emulated bf16 is slower than float32, and on the CPU
    autocast is slower than float32). Callers cast the network's output to float32
    before the loss or the sampler's arithmetic."""
    if not amp or not native_bf16(device):
        return nullcontext()
    return torch.autocast("cuda", dtype=torch.bfloat16)


COMPILE_BACKEND = "inductor"  # tests set "eager" (tracing only: seconds instead of minutes)


def maybe_compile(module: torch.nn.Module, enabled: bool) -> torch.nn.Module:
    """``torch.compile(module)`` when ``enabled`` (config ``compile``), else ``module``.

    Shapes are static (``dynamic=False``): the training batch never changes size in the
    diffusion loop; the classifier's last partial batch of an epoch and the evaluation
    batches add at most a few more compiled shapes, once. The compiled module shares its
    parameters with ``module`` (state dicts are saved from ``module``)."""
    if not enabled:
        return module
    return torch.compile(module, backend=COMPILE_BACKEND, dynamic=False)


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
