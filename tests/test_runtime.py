"""One home for device, threads and precision; every verb starts the same way (issue 13.3)."""

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from jointaug.cli import app
from jointaug.config import load_config
from jointaug.runtime import DeviceError, apply_runtime, resolve_device, runtime_record


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    auto = resolve_device("auto")
    assert auto.type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(DeviceError, match="unknown device"):
        resolve_device("gpu0")
    if not torch.cuda.is_available():
        for name in ("cuda", "cuda:1", torch.device("cuda")):
            with pytest.raises(DeviceError, match="no CUDA"):
                resolve_device(name)


def test_apply_runtime_sets_threads_and_records_them():
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        dev = apply_runtime(load_config("demo", ["threads=1"]))
        assert torch.get_num_threads() == 1 and isinstance(dev, torch.device)
        rec = runtime_record(dev)
        assert rec["threads"] == 1 and rec["torch"] == torch.__version__
        assert rec["device"] == str(dev) or rec["device"].startswith("cuda:")
        assert {"deterministic_algorithms", "cudnn_deterministic", "tf32_matmul"} <= set(rec)
        apply_runtime(load_config("demo", ["threads=0"]))  # 0 keeps what torch has
        assert torch.get_num_threads() == 1
        apply_runtime(load_config("demo", ["deterministic=true"]))
        assert torch.are_deterministic_algorithms_enabled() and torch.backends.cudnn.deterministic
        assert runtime_record("cpu")["deterministic_algorithms"] is True
        apply_runtime(load_config("demo"))
        assert not torch.are_deterministic_algorithms_enabled()
        assert runtime_record("cpu")["deterministic_algorithms"] is False
    finally:
        torch.set_num_threads(before)
        torch.use_deterministic_algorithms(False)
        torch.backends.cudnn.deterministic = False


def test_cuda_requested_without_cuda_is_one_clear_error(tmp_path, tiny_dataset):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    res = CliRunner().invoke(
        app,
        [
            "run",
            "--dataset",
            str(tiny_dataset),
            "--out",
            str(tmp_path / "r"),
            "--set",
            "device=cuda",
            "--plan",
        ],
    )
    assert res.exit_code == 2 and "no CUDA GPU" in res.output and "Traceback" not in res.output


TINY_CLASSIFIER = [
    "threads=1",
    "split.folds=3",
    "classify.image_size=32",
    "classify.block_config=[1, 1]",
    "classify.growth_rate=4",
    "classify.init_features=8",
    "classify.batch_size=4",
    "classify.max_samples=32",
    "classify.patience_samples=16",
    "classify.eval_every_epochs=1",
    "classify.seeds=[0]",
]


def test_run_and_train_classifier_give_the_same_numbers(tmp_path, tiny_dataset):
    """The same training through `jointaug run` and through `jointaug train-classifier`,
    the second started with another torch thread count: bit-identical probabilities, and
    both ran with the profile's thread count (recorded in result.json)."""
    out = tmp_path / "run"
    sets = [a for kv in TINY_CLASSIFIER for a in ("--set", kv)]
    before = torch.get_num_threads()
    try:
        res = CliRunner().invoke(
            app,
            [
                "run",
                "--dataset",
                str(tiny_dataset),
                "--out",
                str(out),
                "--methods",
                "baseline",
                "--folds",
                "0",
                "--no-progress",
                *sets,
            ],
        )
        assert res.exit_code == 0, res.output
        seed_dir = out / "fold_0" / "classify" / "baseline" / "seed_0"
        via_run = (seed_dir / "test_probs.npy").read_bytes()
        rec_run = json.loads((seed_dir / "result.json").read_text())
        torch.set_num_threads(2)  # what a fresh process on this machine would have
        res = CliRunner().invoke(
            app,
            [
                "train-classifier",
                "--run",
                str(out),
                "--fold",
                "0",
                "--method",
                "baseline",
                "--seed",
                "0",
                "--force",
                "--no-progress",
            ],
        )
        assert res.exit_code == 0, res.output
        assert torch.get_num_threads() == 1  # the run's config was applied
        rec_verb = json.loads((seed_dir / "result.json").read_text())
        assert rec_run["threads"] == rec_verb["threads"] == 1
        assert rec_verb["device"] == "cpu" and rec_verb["torch"] == torch.__version__
        assert (seed_dir / "test_probs.npy").read_bytes() == via_run
        probs = np.load(seed_dir / "test_probs.npy")
        assert probs.size > 0 and np.isfinite(probs).all()
    finally:
        torch.set_num_threads(before)


def test_emulated_bf16_is_not_used(monkeypatch):
    """V100/T4: torch says bf16 is "supported" (emulated), which is slower than float32."""
    import contextlib

    import torch

    from jointaug.runtime import autocast_for, native_bf16

    cuda = torch.device("cuda")
    monkeypatch.setattr(
        torch.cuda, "is_bf16_supported", lambda including_emulation=True: including_emulation
    )
    assert not native_bf16(cuda) and isinstance(autocast_for(cuda, True), contextlib.nullcontext)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    with pytest.warns(UserWarning, match="CUDA is not available"):  # no card here: torch says so
        assert native_bf16(cuda) and isinstance(autocast_for(cuda, True), torch.autocast)
    assert isinstance(autocast_for(cuda, False), contextlib.nullcontext)
    assert not native_bf16(torch.device("cpu"))


def test_cpu_tasks_of_a_cuda_run_run_on_the_cpu_where_no_gpu_is_visible(
    tmp_path, tiny_dataset, monkeypatch
):
    """Ray gives a task without num_gpus no CUDA device: with device: cuda, the natural
    source, merges and the report must not stop with DeviceError (they need no GPU)."""
    import torch

    from jointaug.config import load_config
    from jointaug.experiments.graph import task_run
    from jointaug.experiments.kinds import Task
    from jointaug.experiments.rundir import RunDir

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    run = RunDir.create(tmp_path / "run", tiny_dataset, load_config("demo", ["device=cuda"]))
    cpu_task = task_run(run, Task("natural", "natural", {}, num_gpus=0.0))
    gpu_task = task_run(run, Task("diffusion/0", "diffusion", {"fold": 0}, num_gpus=1.0))
    assert cpu_task.config.device == "cpu" and cpu_task.path == run.path
    assert gpu_task.config.device == "cuda" and run.config.device == "cuda"  # the run is unchanged
    assert "device: cuda" in (run.path / "config.yaml").read_text()
