"""A prepared GPU check of the paper profile: the real code on the card, in <= 5 minutes.

On a CUDA machine (about 3-4 minutes with start-up; no stage starts after ``--budget``
270 s), at the ``paper`` profile's settings (batch sizes, bf16 autocast, channels-last,
fused Adam, auto sampling batch):

timed stages (the figures of the calibration file's ``rates``):
1. diffusion training steps (the loop's own ``train_step``), 2. DDPM sampling (the full
   500-step sampler, stopped after its time budget), 3. DDIM sampling (``fast_steps``),
4. classifier training (the loop's own ``plan_epoch`` + ``_Step``), with the GPU
   utilisation sampled over the window (``torch.cuda.utilization``; skipped with a note
   where pynvml is missing), 5. evaluation (inference at twice the training batch);

checks (each fails the run if it fails):
6. sync points: ``torch.cuda.set_sync_debug_mode("warn")`` over one classifier step
   (must be 0) and one epoch plan (counted);
7. bf16 vs fp32: the same 4 classifier steps in both: losses within 5 %;
8. sampling headroom: a DDIM call at the auto sampling batch peaks below 90 % of the card;
9. checkpoint resume: a classifier training checkpoints, is killed, resumes, ends right;
10. packing: aggregate images/s of 1, 2 and 4 concurrent classifier trainings (processes,
    ``bench_packing.py``): ``packing_gain`` = gain at 4 (``--gpus-per-classifier 0.25``);

then the projected paper grid from the measured rates and ``experiments.estimate.calibrate``
(what ``jointaug run --plan`` measures). ``--json FILE`` writes ``{"rates": {...},
"packing_gain": g, "card": ..., "results": {...}, "failed": [...]}``, which
``jointaug run --plan --calibration FILE`` reads (``experiments.cards.read_calibration``).
Exit status 1 if any stage or check fails or did not run (the others still run), else 0.

Without CUDA it says so and runs every stage and check on a tiny CPU configuration for
about a second each (packing with 1 and 2 processes), then exits 0 (1 on a failure): a
smoke test that the script works, whose figures mean nothing.

    python benchmarks/gpu_check.py --json gpu_check.json
    python benchmarks/gpu_check.py --seconds 20 --packing-seconds 15 --budget 500
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import torch

CPU_SMOKE = [
    "classify.image_size=32",
    "classify.block_config=[1, 1]",
    "classify.growth_rate=4",
    "classify.init_features=8",
    "classify.batch_size=4",
    "diffusion.image_size=16",
    "diffusion.channels=[8, 16]",
    "diffusion.attention_levels=[false, true]",
    "diffusion.num_res_blocks=1",
    "diffusion.num_head_channels=8",
    "diffusion.batch_size=2",
    "diffusion.timesteps=20",
    "diffusion.fast_steps=4",
    "diffusion.sample_batch_size=2",
]


class Budget(Exception):
    """Raised from a sampler's progress callback when its time is up."""


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _reset_peak(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(dev)


def _peak_gib(dev: torch.device) -> float:
    return torch.cuda.max_memory_allocated(dev) / 2**30 if dev.type == "cuda" else float("nan")


def _timed_loop(fn, dev: torch.device, seconds: float, warmup: int = 3) -> tuple[int, float]:
    """Call fn() repeatedly for about ``seconds`` after ``warmup`` calls: (calls, seconds)."""
    for _ in range(warmup):
        fn()
    _sync(dev)
    n, t0 = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        if n % 4 == 0 or dev.type != "cuda":
            _sync(dev)
            if time.perf_counter() - t0 >= seconds:
                break
    _sync(dev)
    return n, time.perf_counter() - t0


def diffusion_parts(cfg, dev):
    from jointaug.diffusion.model import EMA, EpsilonView, build_unet, network_config
    from jointaug.diffusion.sample import NoiseSchedule

    d = network_config(cfg.diffusion)
    net = build_unet(d, init_seed=0).to(dev)
    sched = NoiseSchedule.from_config(d).ddpm()
    return (
        d,
        net,
        EMA(net, d.ema_decay),
        sched,
        EpsilonView(net, sched.alphas_cumprod, d.network_output),
    )


def stage_diffusion_train(cfg, dev, seconds: float) -> dict:
    from jointaug.diffusion.loop import DiffusionStep, LossMeter, train_step

    d, net, ema, sched, eps = diffusion_parts(cfg, dev)
    opt = torch.optim.Adam(net.parameters(), lr=d.lr, fused=dev.type == "cuda")
    s = d.image_size
    ys = torch.rand(64, 1, s, s, device=dev) * 2 - 1
    cs = torch.rand(64, 3, s, s, device=dev)
    gen = torch.Generator(device=dev).manual_seed(0)
    meter = LossMeter(dev)
    parts = DiffusionStep(net, eps, ema, opt, sched, gen, ys, cs, d, meter)

    def step():
        train_step(parts, 0)

    n, secs = _timed_loop(step, dev, seconds)
    mean, _ = meter.read()
    if not np.isfinite(mean):
        raise FloatingPointError(f"diffusion loss {mean}")
    return {
        "unit": "step",
        "per_s": n / secs,
        "s_per_unit": secs / n,
        "batch": d.batch_size,
        "images_per_s": n * d.batch_size / secs,
        "loss": mean,
    }


def stage_sampling(cfg, dev, seconds: float, sampler: str) -> dict:
    from jointaug.diffusion.sample import NoiseSchedule, sample_batch_size, sample_ddpm, sample_fast

    d, net, ema, _, _ = diffusion_parts(cfg, dev)
    from jointaug.diffusion.model import EpsilonView

    eps = EpsilonView(
        ema.shadow, NoiseSchedule.from_config(d).ddpm().alphas_cumprod, d.network_output
    )
    b = sample_batch_size(d, eps, dev)
    s = d.image_size
    cond = torch.rand(b, 3, s, s, device=dev)
    schedule = NoiseSchedule.from_config(d)
    total = d.timesteps if sampler == "ddpm" else d.fast_steps
    # warm-up (cuDNN autotuning at this batch): a 2-step DDIM
    sample_fast(eps, cond, list(range(b)), schedule, 2, amp=d.amp)
    _sync(dev)
    done = [0]
    t0 = time.perf_counter()

    def progress(i: int, n: int) -> None:
        done[0] = i
        if i % 5 == 0:
            _sync(dev)
            if time.perf_counter() - t0 >= seconds:
                raise Budget

    try:
        if sampler == "ddpm":
            out = sample_ddpm(eps, cond, list(range(b)), schedule, progress, amp=d.amp)
        else:
            out = sample_fast(
                eps, cond, list(range(b)), schedule, d.fast_steps, progress, amp=d.amp
            )
        if not torch.isfinite(out).all():
            raise FloatingPointError("non-finite samples")
    except Budget:
        pass
    _sync(dev)
    secs = time.perf_counter() - t0
    per_image = secs / max(1, done[0]) * total / b
    return {
        "unit": "image",
        "per_s": 1 / per_image,
        "s_per_unit": per_image,
        "batch": b,
        "steps_run": done[0],
        "steps_per_image": total,
    }


def classifier_parts(cfg, dev, n_labels: int = 30, n_images: int = 256):
    from jointaug.classify.data import ImageSet
    from jointaug.classify.train import _make_step

    c = cfg.classify
    rng = np.random.default_rng(0)
    x = rng.random((n_images, 1, c.image_size, c.image_size), dtype=np.float32).astype(np.float16)
    y = (rng.random((n_images, n_labels)) < 0.3).astype(np.float32)
    train = ImageSet(x, y, [f"c{i}" for i in range(n_images)], ["train"] * n_images)
    return c, _make_step(train, c, [f"L{i}" for i in range(n_labels)], c.loss, 0, 1, dev), train


class _Utilisation:
    """GPU utilisation sampled every 0.1 s in a thread (``torch.cuda.utilization``, which
    needs pynvml); ``note`` says why there is none."""

    def __init__(self, dev: torch.device):
        import threading

        self.samples: list[float] = []
        self.note = ""
        self.stop = threading.Event()
        self.thread = None
        if dev.type != "cuda":
            self.note = "skipped: no CUDA device"
            return
        try:
            torch.cuda.utilization(dev)
        except Exception as exc:  # noqa: BLE001 - pynvml missing or NVML unavailable
            self.note = f"skipped: torch.cuda.utilization unavailable ({type(exc).__name__}: {exc})"
            return
        self.thread = threading.Thread(target=self._run, args=(dev,), daemon=True)

    def _run(self, dev) -> None:
        while not self.stop.is_set():
            self.samples.append(float(torch.cuda.utilization(dev)))
            time.sleep(0.1)

    def __enter__(self):
        if self.thread is not None:
            self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join()

    def summary(self) -> dict:
        if not self.samples:
            return {"gpu_util_note": self.note or "no samples"}
        return {
            "gpu_util_mean_pct": float(np.mean(self.samples)),
            "gpu_util_samples": len(self.samples),
        }


def stage_classifier_train(cfg, dev, seconds: float) -> dict:
    """The training loop's own path (``plan_epoch`` + ``_Step``), GPU utilisation sampled."""
    from jointaug.classify.epoch import plan_epoch

    c, step, train = classifier_parts(cfg, dev)
    batches: list = []

    def one():
        step.model.train()
        if not batches:
            batches.extend(plan_epoch(step))
        step(*batches.pop(0))

    with _Utilisation(dev) as util:
        calls, secs = _timed_loop(one, dev, seconds)
    return {
        "unit": "sample",
        "per_s": calls * c.batch_size / secs,
        "s_per_unit": secs / (calls * c.batch_size),
        "batch": c.batch_size,
        "amp": c.amp,
        "channels_last": c.channels_last,
        **util.summary(),
    }


def stage_evaluation(cfg, dev, seconds: float) -> dict:
    from jointaug.classify.train import predict_logits

    c, step, train = classifier_parts(cfg, dev)
    images = torch.from_numpy(train.images)
    b = 2 * c.batch_size

    def one():
        predict_logits(step.model, images, b, dev, c.amp, c.channels_last)

    calls, secs = _timed_loop(one, dev, seconds, warmup=1)
    return {
        "unit": "image",
        "per_s": calls * len(images) / secs,
        "s_per_unit": secs / (calls * len(images)),
        "batch": b,
    }


# ---- checks (each returns a dict; "ok": False or an exception is a failure) -----------


def check_sync_points(cfg, dev, seconds: float) -> dict:
    """Host-device synchronisations in one classifier step (``set_sync_debug_mode("warn")``
    warns at each): the step must have none; the epoch plan (once per epoch) is counted
    apart. On the CPU there is nothing to synchronise: the step runs, the count is 0."""
    import warnings

    from jointaug.classify.epoch import plan_epoch

    c, step, _ = classifier_parts(cfg, dev)
    step.model.train()
    plan = plan_epoch(step)
    for b in plan[:2]:  # warm-up: cuDNN autotuning, allocator
        step(*b)
    _sync(dev)
    counts, msgs = {}, []
    for name, fn in (("epoch_plan", lambda: plan_epoch(step)), ("step", lambda: step(*plan[2]))):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if dev.type == "cuda":
                torch.cuda.set_sync_debug_mode("warn")
            try:
                fn()
            finally:
                if dev.type == "cuda":
                    torch.cuda.set_sync_debug_mode(0)
        sync = [w for w in caught if "synchroniz" in str(w.message).lower()]
        counts[name] = len(sync)
        msgs += [f"{name}: {w.filename}:{w.lineno}: {str(w.message)[:120]}" for w in sync[:3]]
    _sync(dev)
    return {"ok": counts["step"] == 0, "sync_warnings": counts, "first_warnings": msgs}


def check_bf16(cfg, dev, seconds: float, steps: int = 4, rel_tol: float = 0.05) -> dict:
    """The same first ``steps`` classifier steps (same weights, batches, augmentation) in
    bf16 autocast and in float32: losses within ``rel_tol`` of each other."""
    from jointaug.classify.epoch import plan_epoch

    losses = {}
    for amp in (True, False):
        c = cfg.model_copy(update={"classify": cfg.classify.model_copy(update={"amp": amp})})
        _, step, _ = classifier_parts(c, dev)
        step.model.train()
        plan = plan_epoch(step)
        losses[amp] = [float(step(*plan[k])) for k in range(steps)]
    diffs = [
        abs(a - b) / max(abs(b), 1e-6) for a, b in zip(losses[True], losses[False], strict=True)
    ]
    return {
        "ok": max(diffs) <= rel_tol,
        "loss_bf16": losses[True],
        "loss_fp32": losses[False],
        "max_rel_diff": max(diffs),
        "tolerance": rel_tol,
        "note": "" if dev.type == "cuda" else "CPU: autocast is off, both runs are float32",
    }


def check_headroom(cfg, dev, seconds: float, max_share: float = 0.9) -> dict:
    """Peak memory of a 2-step DDIM at the auto sampling batch: at most ``max_share`` of
    the card (the auto batch aims at 60 % of the free memory)."""
    from jointaug.diffusion.sample import sample_batch_size, sample_fast

    d, net, ema, sched, _ = diffusion_parts(cfg, dev)
    from jointaug.diffusion.model import EpsilonView
    from jointaug.diffusion.sample import NoiseSchedule

    eps = EpsilonView(ema.shadow, sched.alphas_cumprod, d.network_output)
    auto = d.model_copy(update={"sample_batch_size": "auto"})
    b = sample_batch_size(auto, eps, dev)
    _reset_peak(dev)
    s = d.image_size
    cond = torch.rand(b, 3, s, s, device=dev)
    sample_fast(eps, cond, list(range(b)), NoiseSchedule.from_config(d), 2, amp=d.amp)
    _sync(dev)
    if dev.type != "cuda":
        return {"ok": True, "batch": b, "note": "CPU: the auto batch is the fixed CPU batch"}
    total = torch.cuda.get_device_properties(dev).total_memory
    peak = torch.cuda.max_memory_reserved(dev)
    return {
        "ok": peak <= max_share * total,
        "batch": b,
        "peak_gib": peak / 2**30,
        "total_gib": total / 2**30,
        "share": peak / total,
    }


def check_checkpoint(cfg, dev, seconds: float) -> dict:
    """A classifier training on the card checkpoints at its first evaluation, is killed
    after it, and the next call resumes from the checkpoint and ends where it should."""
    from jointaug.classify.data import ImageSet
    from jointaug.classify.train import CHECKPOINT, FitOptions, fit

    class Kill(Exception):
        pass

    c = cfg.classify.model_copy(
        update={
            "max_samples": 128,
            "patience_samples": 10_000,
            "eval_every_epochs": 1,
            "checkpoint_minutes": 0.0,
        }
    )
    rng = np.random.default_rng(0)
    s = c.image_size

    def part(n):
        x = rng.random((n, 1, s, s), dtype=np.float32).astype(np.float16)
        y = (rng.random((n, 30)) < 0.3).astype(np.float32)
        return ImageSet(x, y, [f"c{i}" for i in range(n)], ["train"] * n)

    train, val, labels = part(64), part(32), [f"L{i}" for i in range(30)]

    def kill(samples):
        if samples > 64:
            raise Kill

    with tempfile.TemporaryDirectory() as tmp:
        try:
            fit(tmp, train, val, c, 0, labels, FitOptions(device=dev, progress=False, on_step=kill))
        except Kill:
            pass
        written = (Path(tmp) / CHECKPOINT).is_file()
        res = fit(tmp, train, val, c, 0, labels, FitOptions(device=dev, progress=False))
    rows = [int(r["samples"]) for r in res.log]
    ok = written and res.samples == 128 and rows == [64, 128]
    return {
        "ok": ok,
        "checkpoint_written": written,
        "resumed_log_samples": rows,
        "samples": res.samples,
    }


def check_packing(cfg, dev, seconds: float, overrides: list[str], ks: list[int]) -> dict:
    """Aggregate images/s of 1, 2, 4 concurrent classifier trainings (separate processes,
    ``bench_packing.py``); ``packing_gain`` = the gain at the largest k (4: the default
    ``--gpus-per-classifier 0.25``), which ``experiments/schedule.py`` uses."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_packing import measure_packing

    res = measure_packing(ks, "paper", overrides, dev.type, seconds)
    return {
        "ok": True,
        **res,
        "packing_gain": res["gain"][ks[-1]],
        "mps": bool(os.environ.get("CUDA_MPS_PIPE_DIRECTORY")),
    }


def paper_counts(cfg):
    """The whole paper grid's counts, from a plan over the built-in phantom (48 patients)."""
    from jointaug.dataset.phantom import write_phantom
    from jointaug.experiments.plan import make_plan, plan_counts
    from jointaug.experiments.rundir import RunDir

    with tempfile.TemporaryDirectory() as tmp:
        write_phantom(
            Path(tmp) / "data",
            patients=cfg.phantom.patients,
            size=cfg.phantom.size,
            seed=cfg.phantom.seed,
            progress=False,
        )
        run = RunDir.create(Path(tmp) / "run", Path(tmp) / "data", cfg)
        plan = make_plan(run)
        return plan_counts(run, plan), len(run.dataset.labels)


TIMED = (
    "diffusion training",
    "DDPM sampling",
    "DDIM sampling",
    "classifier training",
    "evaluation",
)


def _stages(cfg, dev, seconds: float, packing: tuple[list[str], list[int], float]) -> dict:
    over, ks, pack_s = packing
    return {
        "diffusion training": lambda: stage_diffusion_train(cfg, dev, seconds),
        "DDPM sampling": lambda: stage_sampling(cfg, dev, seconds, "ddpm"),
        "DDIM sampling": lambda: stage_sampling(cfg, dev, seconds, "ddim"),
        "classifier training": lambda: stage_classifier_train(cfg, dev, seconds),
        "evaluation": lambda: stage_evaluation(cfg, dev, seconds),
        "sync points": lambda: check_sync_points(cfg, dev, seconds),
        "bf16 vs fp32": lambda: check_bf16(cfg, dev, seconds),
        "sampling headroom": lambda: check_headroom(cfg, dev, seconds),
        "checkpoint resume": lambda: check_checkpoint(cfg, dev, seconds),
        "packing": lambda: check_packing(cfg, dev, pack_s, over, ks),
    }


def _line(name: str, r: dict) -> str:
    if name in TIMED:
        return (
            f"  {name:<20} {r['per_s']:10.2f} {r['unit']}s/s  ({r['s_per_unit'] * 1e3:9.3f} ms per "
            f"{r['unit']}, batch {r['batch']}, peak {r['peak_gib']:.1f} GiB, {r['wall_s']:.0f} s)"
            + (f", GPU util {r['gpu_util_mean_pct']:.0f} %" if "gpu_util_mean_pct" in r else "")
            + (f" [{r['gpu_util_note']}]" if "gpu_util_note" in r else "")
        )
    shown = {k: v for k, v in r.items() if k not in ("ok", "wall_s", "peak_gib", "per_process")}
    return (
        f"  {name:<20} {'ok' if r.get('ok', True) else 'FAILED'}  {json.dumps(shown, default=str)}"
    )


def run_stages(stages: dict, dev, deadline: float) -> tuple[dict, list[str]]:
    """Run every stage (a failure does not stop the others); stop starting new ones past
    ``deadline`` (perf_counter), which counts as a failure (a check that did not run)."""
    results: dict[str, dict] = {}
    failed: list[str] = []
    for name, fn in stages.items():
        if time.perf_counter() > deadline:
            failed.append(name)
            results[name] = {"error": "skipped: time budget spent"}
            print(f"  {name:<20} SKIPPED: time budget spent")
            continue
        _reset_peak(dev)
        t0 = time.perf_counter()
        try:
            r = fn()
            r["peak_gib"] = _peak_gib(dev)
            r["wall_s"] = time.perf_counter() - t0
            results[name] = r
            if not r.get("ok", True):
                failed.append(name)
            print(_line(name, r), flush=True)
        except Exception as exc:  # noqa: BLE001 - report every stage, fail at the end
            failed.append(name)
            results[name] = {"error": f"{type(exc).__name__}: {exc}"}
            print(f"  {name:<20} FAILED: {type(exc).__name__}: {exc}")
            traceback.print_exc()
        finally:
            if dev.type == "cuda":
                torch.cuda.empty_cache()
    return results, failed


def measured_rates(results: dict, cfg, device: str):
    """The calibration file's ``rates`` (``experiments.cards.read_calibration``)."""
    from jointaug.experiments.estimate import Rates

    def s(name):
        return results.get(name, {}).get("s_per_unit", 0.0)

    return Rates(
        device=device,
        diffusion_step_s=s("diffusion training"),
        sample_s_per_image=s(f"{cfg.diffusion.sampler.upper()} sampling"),
        classifier_s_per_sample=s("classifier training"),
        eval_s_per_image=s("evaluation"),
        batches=tuple((k, v["batch"]) for k, v in results.items() if k in TIMED and "batch" in v),
    )


def projection(rates, cfg, dev, has_cuda: bool) -> dict:
    from jointaug.config import load_config
    from jointaug.experiments.estimate import calibrate, estimate, format_estimates

    counts, n_labels = paper_counts(load_config("paper", [f"device={dev.type}"]))
    rows = estimate(rates, counts)
    what = (
        "projected paper grid on this card"
        if has_cuda
        else "projected (tiny CPU smoke, meaningless)"
    )
    print(f"{what} from the measured rates ({counts.trainings} classifier trainings):")
    print(format_estimates(rows, rates))
    cal = calibrate(cfg, n_labels, dev)
    print("  jointaug run --plan's own calibration (experiments/estimate.calibrate):")
    print(format_estimates(estimate(cal, counts), cal))
    return {"rows": [r.__dict__ for r in rows], "calibrate": cal.to_json()}


def _settings(args, has_cuda: bool) -> tuple[list[str], float, tuple]:
    """(config overrides, seconds per timed stage, packing (overrides, ks, seconds))."""
    if has_cuda:
        return ["device=cuda"], args.seconds, (["device=cuda"], [1, 2, 4], args.packing_seconds)
    print(
        "gpu_check: no CUDA device (torch sees none): running a tiny CPU smoke version "
        "of every stage instead; the figures below are NOT the paper profile's."
    )
    over = ["device=cpu", "threads=1", *CPU_SMOKE]
    return over, 1.0, (over, [1, 2], 1.0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--seconds", type=float, default=10.0, help="time budget per timed stage on CUDA [10]"
    )
    ap.add_argument(
        "--packing-seconds", type=float, default=8.0, help="timed window per k on CUDA [8]"
    )
    ap.add_argument(
        "--budget", type=float, default=270.0, help="start no stage after this many s [270]"
    )
    ap.add_argument("--json", type=Path, default=None, help="write the calibration JSON here")
    args = ap.parse_args()
    t_start = time.perf_counter()

    from jointaug.config import load_config
    from jointaug.runtime import apply_runtime, runtime_record

    has_cuda = torch.cuda.is_available()
    over, seconds, packing = _settings(args, has_cuda)
    cfg = load_config("paper", over)
    dev = apply_runtime(cfg)
    rec = runtime_record(dev)
    print(
        f"device: {rec['device']}  torch {rec['torch']}  CUDA {rec['cuda']}  threads {rec['threads']}"
    )
    results, failed = run_stages(_stages(cfg, dev, seconds, packing), dev, t_start + args.budget)
    rates = measured_rates(results, cfg, rec["device"])
    try:
        results["projection"] = projection(rates, cfg, dev, has_cuda)
    except Exception as exc:  # noqa: BLE001
        failed.append("projection")
        print(f"  projection FAILED: {type(exc).__name__}: {exc}")
        traceback.print_exc()
    total = time.perf_counter() - t_start
    n = len(results) - ("projection" in results)
    print(
        f"gpu_check: {n - len([f for f in failed if f != 'projection'])}/{n} stages ok in {total:.0f} s"
        + (f"; FAILED: {', '.join(failed)}" if failed else "")
    )
    if args.json:
        gain = results.get("packing", {}).get("packing_gain")
        out = {
            "card": rec["device"],
            "runtime": rec,
            "rates": rates.to_json(),
            "packing_gain": gain,
            "results": results,
            "failed": failed,
            "wall_s": total,
        }
        args.json.write_text(json.dumps(out, indent=1, default=str))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
