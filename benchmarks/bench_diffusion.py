"""Diffusion speed and quality figures (prints them; nothing is asserted).

Speed (always): seconds per training step and images/s of the full 500-step DDPM
sampler and of the fast DDIM sampler, at the profile's diffusion settings, with an
untrained network of the right shape (speed does not depend on the weights).

Quality (with ``--run RUN``): trains fold ``--fold``'s diffusion model if needed, then
for the fold's train conditions (real clinician maps) and for composed conditions
(sampled vectors, the augmentation case) reports, per sampler: mean counts in normal,
low and high regions (goal: high > low > normal), total counts against the real train
images (goal: within 20 %), and -- when a baseline classifier of that fold exists or
``--classifier`` trains one -- label fidelity: the pooled GMS of the classifier on the
synthetic images against their sampled labels, beside its GMS on the real test part.

    python benchmarks/bench_diffusion.py                       # speed, demo profile
    python benchmarks/bench_diffusion.py --run runs/demo/run --fold 0 --classifier
    python benchmarks/bench_diffusion.py --profile paper --ddpm-batch 64   # on a GPU
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch


def _median_s(fn, device, repeats: int, warmup: int = 2) -> float:
    times = []
    for _ in range(repeats + warmup):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times[warmup:])


def loop_speed(cfg, device, steps: int) -> tuple[float, float, float]:
    """(one step of the real training loop, EMA update with _foreach_lerp_, EMA update
    with a per-parameter loop) in seconds (medians)."""
    from jointaug.diffusion.loop import DiffusionStep, LossMeter, train_step
    from jointaug.diffusion.model import EMA, EpsilonView, build_unet
    from jointaug.diffusion.sample import NoiseSchedule

    s = cfg.image_size
    net = build_unet(cfg, init_seed=0).to(device)
    ema = EMA(net, cfg.ema_decay)
    sched = NoiseSchedule.from_config(cfg).ddpm()
    eps = EpsilonView(net, sched.alphas_cumprod, cfg.network_output)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, fused=device.type == "cuda")
    ys = torch.rand(64, 1, s, s, device=device) * 2 - 1
    cs = torch.rand(64, 3, s, s, device=device)
    gen = torch.Generator(device=device).manual_seed(0)
    meter = LossMeter(device)
    parts = DiffusionStep(net, eps, ema, opt, sched, gen, ys, cs, cfg, meter)

    def step():
        train_step(parts, 0)

    loop_s = _median_s(step, device, steps)
    meter.read()

    @torch.no_grad()
    def ema_loop():  # the previous implementation, for comparison
        d = ema.current_decay()
        for sp, p in zip(ema.shadow.parameters(), net.parameters(), strict=True):
            sp.lerp_(p.detach(), 1.0 - d)
        for sb, b in zip(ema.shadow.buffers(), net.buffers(), strict=True):
            sb.copy_(b)

    return loop_s, _median_s(lambda: ema.update(net), device, 20), _median_s(ema_loop, device, 20)


def speed(cfg, device, batch: int, ddpm_batch: int, train_steps: int) -> None:
    from jointaug.diffusion.model import EpsilonView, build_unet
    from jointaug.diffusion.sample import NoiseSchedule, sample_ddpm, sample_fast

    s = cfg.image_size
    net = build_unet(cfg, init_seed=0).to(device)
    with torch.no_grad():  # non-zero output so the samplers do real work
        for p in net.parameters():
            p.add_(0.01 * torch.randn_like(p))
    sched = NoiseSchedule.from_config(cfg)
    eps = EpsilonView(net, sched.ddpm().alphas_cumprod, cfg.network_output)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    x = torch.randn(cfg.batch_size, 4, s, s, device=device)
    t = torch.randint(0, cfg.timesteps, (cfg.batch_size,), device=device)
    times = []
    for _ in range(train_steps + 2):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        loss = eps(x, t).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    step_s = statistics.median(times[2:])
    print(
        f"train step (batch {cfg.batch_size}, {s}x{s}): {step_s * 1000:.1f} ms median "
        f"-> {cfg.train_steps} steps ~ {step_s * cfg.train_steps:.0f} s"
    )
    loop_s, ema_foreach, ema_loop = loop_speed(cfg, device, train_steps)
    print(
        f"train loop step (draw on device, loss, Adam, EMA, device-side loss meter): "
        f"{loop_s * 1000:.1f} ms median ({step_s / loop_s:.2f} of the bare step's speed)"
    )
    print(
        f"EMA update: _foreach_lerp_ {ema_foreach * 1000:.2f} ms, per-parameter lerp_ loop "
        f"{ema_loop * 1000:.2f} ms ({ema_loop / ema_foreach:.1f}x)"
    )

    def rate(fn, b, repeats):
        """Images/s, best of ``repeats`` runs (a shared machine only ever slows a run down)."""
        cond = torch.rand(b, 3, s, s, device=device)
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn(cond, list(range(b)))
            if device.type == "cuda":
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - t0)
        return b / best

    fast = rate(lambda c, sd: sample_fast(eps, c, sd, sched, cfg.fast_steps), batch, 5)
    full = rate(lambda c, sd: sample_ddpm(eps, c, sd, sched), ddpm_batch, 1)
    print(f"DDPM  {cfg.timesteps} steps: {full:8.2f} img/s (batch {ddpm_batch})")
    print(
        f"DDIM  {cfg.fast_steps} steps: {fast:8.2f} img/s (batch {batch})  -> {fast / full:.1f}x faster"
    )
    print(f"8,192 images: DDPM ~ {8192 / full / 60:.1f} min, DDIM ~ {8192 / fast / 60:.1f} min")


def quality(run_path: str, fold: int, n: int, classifier: bool, fast_steps: int = 0) -> None:
    from jointaug.diffusion.intensity import poisson_counts
    from jointaug.diffusion.trained import generate_rates, load_trained
    from jointaug.experiments.rundir import RunDir
    from jointaug.experiments.stages import train_fold_diffusion
    from jointaug.fidelity.quality import ordering_ok, region_means, total_counts
    from jointaug.runtime import resolve_device
    from jointaug.sets.sources import mp_source, plan_case

    run = RunDir(run_path)
    config = run.config
    t0 = time.perf_counter()
    folder = train_fold_diffusion(run, fold, progress=True)
    print(f"diffusion model fold {fold}: {folder} ({time.perf_counter() - t0:.0f} s this call)")
    ds = run.dataset
    src = mp_source(ds, run.splits.fold(fold).train)
    cases = src.cases[:n]
    reals = [ds.image(c) for c in cases]
    conds = [ds.tissue(c) for c in cases]
    plans = [plan_case(i, src, 12345, fold, "bench", config.sampler, None) for i in range(n)]
    composed = [p.composed.condition for p in plans]
    labels = np.stack([p.composed.labels for p in plans])
    views = [p.source_case.view for p in plans]
    real_total = total_counts(reals).mean()
    rm = region_means(reals, conds)
    print(
        f"real train images ({len(cases)}): normal {rm['normal']:.2f}, low {rm['low']:.2f}, "
        f"high {rm['high']:.2f} counts/px; total {real_total:,.0f} counts"
    )
    synthetic = {}
    for sampler in ("ddim", "ddpm"):
        model = load_trained(
            folder,
            resolve_device(config.device),
            config.diffusion.model_copy(
                update={"sampler": sampler, "fast_steps": fast_steps or config.diffusion.fast_steps}
            ),
        )
        for name, cc in (("clinician maps", conds), ("composed", composed)):
            rng = np.random.default_rng(0)
            t0 = time.perf_counter()
            rates = []
            for b in range(0, len(cc), 32):
                rates += generate_rates(model, cc[b : b + 32], list(range(b, min(b + 32, len(cc)))))
            dt = time.perf_counter() - t0
            imgs = [poisson_counts(r, rng) for r in rates]
            g = region_means(imgs, cc)
            print(
                f"{sampler} on {name}: normal {g['normal']:.2f}, low {g['low']:.2f}, high {g['high']:.2f} "
                f"counts/px (ordering {'ok' if ordering_ok(g) else 'WRONG'}); total / real "
                f"{total_counts(imgs).mean() / real_total:.3f}; {len(cc) / dt:.2f} img/s"
            )
            if name == "composed":
                synthetic[sampler] = imgs
    if classifier:
        fidelity(run, fold, synthetic, labels, views)


def fidelity(run, fold: int, synthetic: dict, labels: np.ndarray, views: list) -> None:
    """The fold's seed-0 baseline on the synthetic images (prepared in the run's input
    layout, as it was trained) against their sampled labels."""
    from jointaug.classify.data import fold_part, input_layout
    from jointaug.classify.metrics import binarize, pooled_metrics
    from jointaug.classify.predict import load_classifier, predict_probs
    from jointaug.classify.transforms import prepare_input
    from jointaug.experiments.classification import train_single

    path = run.classify_dir(fold, "baseline", 0) / "model.safetensors"
    if not path.is_file():
        print("training the baseline classifier of this fold (seed 0) ...")
        train_single(run, fold, "baseline", 0, progress=True)
    model, _, _ = load_classifier(path)
    size = run.config.classify.image_size
    thr = run.config.classify.threshold
    layout = input_layout(run.dataset, run.config.classify)
    test = fold_part(run.dataset, run.splits.fold(fold), "test", size, layout=layout)
    test_m = pooled_metrics(
        test.labels, binarize(predict_probs(model, test.images.astype(np.float32)), thr)
    )
    print(
        f"baseline classifier on the real test part: GMS {test_m['gms']:.3f} "
        f"(TPR {test_m['tpr']:.3f}, TNR {test_m['tnr']:.3f})"
    )
    for sampler, imgs in synthetic.items():
        x = np.stack(
            [prepare_input(im, size, layout, v) for im, v in zip(imgs, views, strict=True)]
        )
        x = x[:, None].astype(np.float32)
        m = pooled_metrics(labels, binarize(predict_probs(model, x), thr))
        print(
            f"label fidelity, {sampler}: GMS {m['gms']:.3f} (TPR {m['tpr']:.3f}, TNR {m['tnr']:.3f}) "
            f"on {len(imgs)} synthetic images vs their sampled labels"
        )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--profile", default="demo")
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    ap.add_argument("--batch", type=int, default=32, help="DDIM batch")
    ap.add_argument("--ddpm-batch", type=int, default=16, help="DDPM batch")
    ap.add_argument("--train-steps", type=int, default=10, help="timed training steps")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--run", default=None, help="run folder for the quality figures")
    ap.add_argument("--fold", type=int, default=0)
    ap.add_argument("--n", type=int, default=64, help="images per quality check")
    ap.add_argument("--fast-steps", type=int, default=0, help="DDIM steps (0: the run's)")
    ap.add_argument(
        "--classifier", action="store_true", help="label fidelity (trains a baseline if needed)"
    )
    args = ap.parse_args()

    from jointaug.config import load_config
    from jointaug.runtime import resolve_device

    if args.threads:
        torch.set_num_threads(args.threads)
    config = load_config(args.profile, args.overrides)
    device = resolve_device(config.device)
    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU, {torch.get_num_threads()} threads"
    )
    print(
        f"profile {args.profile}: {config.diffusion.image_size}px, channels {config.diffusion.channels}, "
        f"head {config.diffusion.network_output}; device {name}"
    )
    speed(config.diffusion, device, args.batch, args.ddpm_batch, args.train_steps)
    if args.run:
        quality(args.run, args.fold, args.n, args.classifier, args.fast_steps)


if __name__ == "__main__":
    main()
