"""Device and precision in the settings keys: CPU keys unchanged, GPU outputs distinct."""

from __future__ import annotations

from jointaug.config import load_config
from jointaug.keys import classify_settings, diffusion_settings, runtime_settings, settings_key
from jointaug.outputs import Output, check, write_done
from jointaug.runtime import assume_device_type, key_device_type


def test_cpu_records_unchanged_and_cuda_adds_device_and_precision():
    cfg = load_config("demo")
    c, d = cfg.classify, cfg.diffusion
    # the CPU adds nothing: every key written before the field existed stays current
    assert classify_settings(c) == classify_settings(c, "cpu")
    assert "runtime" not in classify_settings(c) and "runtime" not in diffusion_settings(d)
    assert runtime_settings("cpu", True) == {}
    gpu = classify_settings(c, "cuda")
    assert gpu["runtime"] == {"device": "cuda", "amp": c.amp}
    assert diffusion_settings(d, "cuda")["runtime"] == {"device": "cuda", "amp": d.amp}
    bf16 = c.model_copy(update={"amp": not c.amp})
    assert settings_key(classify_settings(bf16)) == settings_key(classify_settings(c))
    assert settings_key(classify_settings(bf16, "cuda")) != settings_key(gpu)


def test_a_cpu_made_output_is_stale_for_a_gpu_run(tmp_path):
    cfg = load_config("demo").classify
    cpu = classify_settings(cfg, "cpu")
    write_done(tmp_path, settings_key(cpu), cpu)
    assert check(Output("classifier", tmp_path, settings_key(cpu), cpu)).current
    gpu = classify_settings(cfg, "cuda")
    state = check(Output("classifier", tmp_path, settings_key(gpu), gpu))
    assert state.stale is not None
    assert any(line.startswith("runtime.device") for line in state.stale.changes)


def test_key_device_type():
    assert key_device_type("cpu") == "cpu" and key_device_type("cuda:1") == "cuda"
    with assume_device_type("cuda"):  # a scheduler whose workers have GPUs
        assert key_device_type("auto") == "cuda" and key_device_type("cpu") == "cpu"
    with assume_device_type(None):
        assert key_device_type("auto") in ("cpu", "cuda")
