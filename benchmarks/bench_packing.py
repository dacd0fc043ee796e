"""Packing classifiers: aggregate training images/s of k concurrent trainings.

Each of ``k`` processes (spawned, one torch thread each) builds one classifier of the
chosen profile (``demo`` on the CPU, ``paper`` on a GPU: DenseNet121 at 256 px, batch
32, bf16 + channels-last), trains a few warm-up steps, waits at a barrier, then runs the
training loop's own path (``plan_epoch`` + ``_Step``: augmentation on the device, fused
Adam on CUDA) for ``seconds`` and reports its images/s. The aggregate is the sum over
processes (all run the same window). ``gain(k) = aggregate(k) / aggregate(1)``: what
``--gpus-per-classifier 1/k`` (k trainings sharing a card) buys over one at a time.

    python benchmarks/bench_packing.py --ks 1,2 --seconds 20            # CPU, demo profile
    python benchmarks/bench_packing.py --ks 1,2,4 --profile paper       # on a GPU

``benchmarks/gpu_check.py`` calls :func:`measure_packing` for its ``packing_gain``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import time

N_LABELS = 30
N_IMAGES = 256


def _worker(profile: str, overrides: list[str], device: str, seconds: float, barrier, queue):
    import numpy as np
    import torch

    from jointaug.classify.data import ImageSet
    from jointaug.classify.epoch import plan_epoch
    from jointaug.classify.train import _make_step
    from jointaug.config import load_config
    from jointaug.runtime import apply_runtime, synchronize

    cfg = load_config(profile, [f"device={device}", "threads=1", *overrides])
    dev = apply_runtime(cfg)
    torch.set_num_threads(1)
    c = cfg.classify
    rng = np.random.default_rng(0)
    s = c.image_size
    x = rng.random((N_IMAGES, 1, s, s), dtype=np.float32).astype(np.float16)
    y = (rng.random((N_IMAGES, N_LABELS)) < 0.3).astype(np.float32)
    train = ImageSet(x, y, [f"c{i}" for i in range(N_IMAGES)], ["train"] * N_IMAGES)
    step = _make_step(train, c, [f"L{i}" for i in range(N_LABELS)], c.loss, 0, 1, dev)
    step.model.train()
    batches: list = []

    def one() -> int:
        if not batches:
            batches.extend(plan_epoch(step))
        idx, params = batches.pop(0)
        step(idx, params)
        return len(idx)

    for _ in range(3):  # warm-up: cuDNN autotuning, allocator
        one()
    synchronize(dev)
    barrier.wait()
    images, t0 = 0, time.perf_counter()
    while True:
        images += one()
        if images % (4 * c.batch_size) == 0 or dev.type != "cuda":
            synchronize(dev)
            if time.perf_counter() - t0 >= seconds:
                break
    synchronize(dev)
    queue.put(images / (time.perf_counter() - t0))


def aggregate(
    k: int, profile: str, overrides: list[str], device: str, seconds: float
) -> list[float]:
    """Per-process images/s of ``k`` concurrent trainings (sum = the aggregate)."""
    ctx = mp.get_context("spawn")  # fresh processes: no CUDA state inherited
    barrier, queue = ctx.Barrier(k), ctx.Queue()
    procs = [
        ctx.Process(target=_worker, args=(profile, overrides, device, seconds, barrier, queue))
        for _ in range(k)
    ]
    for p in procs:
        p.start()
    rates = [queue.get(timeout=600) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    if any(p.exitcode != 0 for p in procs):
        raise RuntimeError(f"a packing worker failed (exit codes {[p.exitcode for p in procs]})")
    return rates


def measure_packing(
    ks: list[int], profile: str, overrides: list[str], device: str, seconds: float
) -> dict:
    """``{"images_per_s": {k: aggregate}, "per_process": {k: [...]}, "gain": {k: ratio}}``."""
    per = {k: aggregate(k, profile, overrides, device, seconds) for k in ks}
    agg = {k: sum(v) for k, v in per.items()}
    base = agg[ks[0]]
    return {
        "images_per_s": agg,
        "per_process": per,
        "gain": {k: agg[k] / base for k in ks},
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ks", default="1,2", help="concurrent trainings to measure [1,2]")
    ap.add_argument("--profile", default="demo", help="classifier of this profile [demo]")
    ap.add_argument("--device", default="cpu", help="cpu or cuda [cpu]")
    ap.add_argument("--seconds", type=float, default=20.0, help="timed window per k [20]")
    ap.add_argument("--repeats", type=int, default=1, help="alternate the ks this often [1]")
    ap.add_argument("--set", action="append", default=[], help="config override KEY=VALUE")
    args = ap.parse_args()
    ks = [int(k) for k in args.ks.split(",")]
    runs = []
    for r in range(args.repeats):
        res = measure_packing(ks, args.profile, args.set, args.device, args.seconds)
        runs.append(res)
        for k in ks:
            rates = ", ".join(f"{x:.1f}" for x in res["per_process"][k])
            print(
                f"repeat {r}: k={k}: aggregate {res['images_per_s'][k]:8.1f} img/s "
                f"(per process {rates}), gain {res['gain'][k]:.2f}",
                flush=True,
            )
    print(json.dumps({"ks": ks, "runs": runs}, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
