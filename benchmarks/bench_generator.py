"""Generator ablation: train fold K's diffusion model per variant, make an mp-perlin set,
and measure its fidelity (label fidelity by the fold's baseline and by the strong judge,
intensity, memorisation, realism) -- the table in docs/benchmarks.md.

    python benchmarks/bench_generator.py --base runs/abl/base --variants demo,long,cfg
    python benchmarks/bench_generator.py --base runs/abl/base --variants custom \\
        --set diffusion.train_steps=1500 --set diffusion.min_snr_gamma=5

``--base`` is a run folder with the dataset, splits and the fold's seed-0 baseline
classifier (made here with the base profile when missing). Each variant lives in
``BASE/../VARIANT`` (model and set are reused when rerun); one JSON line per
(variant, guidance scale) is appended to ``BASE/../ablation.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

VARIANTS: dict[str, list[str]] = {
    "demo": [],
    "long": [
        "diffusion.train_steps=1500",
        "diffusion.lr_schedule=cosine",
        "diffusion.warmup_steps=50",
    ],
    "long-snr": [
        "diffusion.train_steps=1500",
        "diffusion.lr_schedule=cosine",
        "diffusion.warmup_steps=50",
        "diffusion.min_snr_gamma=5",
    ],
    "long-cfg": [
        "diffusion.train_steps=1500",
        "diffusion.lr_schedule=cosine",
        "diffusion.warmup_steps=50",
        "diffusion.cond_dropout=0.15",
    ],
    "long-snr-cfg": [
        "diffusion.train_steps=1500",
        "diffusion.lr_schedule=cosine",
        "diffusion.warmup_steps=50",
        "diffusion.min_snr_gamma=5",
        "diffusion.cond_dropout=0.15",
    ],
    "48px-cfg": [
        "diffusion.image_size=48",
        "diffusion.train_steps=700",
        "diffusion.lr_schedule=cosine",
        "diffusion.warmup_steps=50",
        "diffusion.min_snr_gamma=5",
        "diffusion.cond_dropout=0.15",
    ],
    "wide-cfg": [
        "diffusion.channels=[32,64,64]",
        "diffusion.num_head_channels=32",
        "diffusion.train_steps=900",
        "diffusion.lr_schedule=cosine",
        "diffusion.warmup_steps=50",
        "diffusion.min_snr_gamma=5",
        "diffusion.cond_dropout=0.15",
    ],
}


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--base", required=True)
    ap.add_argument("--dataset", default=None, help="dataset (only to create the base run)")
    ap.add_argument("--profile", default="demo")
    ap.add_argument("--variants", default="demo")
    ap.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        help="extra overrides (all variants)",
    )
    ap.add_argument("--guidance", default="1", help="guidance scales to sample, e.g. 1,2,3")
    ap.add_argument("--upsample", default="nearest", help="nearest,bilinear")
    ap.add_argument("--fold", type=int, default=0)
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--no-strong", action="store_true")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    from jointaug.config import load_config
    from jointaug.dataset.format import is_complete
    from jointaug.experiments.classification import train_single
    from jointaug.experiments.rundir import RunDir
    from jointaug.experiments.stages import make_fold_set, train_fold_diffusion
    from jointaug.fidelity.judge import load_judge, train_strong_judge
    from jointaug.fidelity.measure import (
        diffusion_renderer,
        matched_label_fidelity,
        measure_set,
        summary_line,
    )

    base_path = Path(args.base)
    if not (base_path / "config.yaml").is_file():
        base = RunDir.create(base_path, args.dataset, load_config(args.profile))
    base = RunDir(base_path)
    fold = args.fold
    judge_path = base.classify_dir(fold, "baseline", 0) / "model.safetensors"
    if not judge_path.is_file():
        train_single(base, fold, "baseline", 0, progress=False)
    judges = [load_judge("baseline", judge_path)]
    if not args.no_strong:
        t0 = time.perf_counter()
        judges.append(
            load_judge(
                "strong",
                train_strong_judge(base.path / "judge", base.dataset, base.config.classify),
            )
        )
        print(f"strong judge ready ({time.perf_counter() - t0:.0f} s)", flush=True)
    log = base_path.parent / "ablation.jsonl"
    for name in args.variants.split(","):
        overrides = VARIANTS.get(name, []) + args.overrides
        cfg = load_config(args.profile, overrides + [f"dataset={base.config.dataset}"])
        vdir = base_path.parent / name
        run = RunDir.create(vdir, base.config.dataset, cfg, splits_file=base.splits_path)
        t0 = time.perf_counter()
        folder = train_fold_diffusion(run, fold, progress=False)
        train_s = json.loads((folder / "model.json").read_text())["wall_s"]
        print(
            f"{name}: trained ({time.perf_counter() - t0:.0f} s this call, {train_s:.0f} s training)",
            flush=True,
        )
        for up in args.upsample.split(","):
            for w in (float(x) for x in args.guidance.split(",")):
                if w != 1 and cfg.diffusion.cond_dropout == 0:
                    continue
                tag = f"{name}-w{w:g}-{up}"
                srun = RunDir.create(
                    base_path.parent / "sets" / tag,
                    base.config.dataset,
                    cfg,
                    splits_file=base.splits_path,
                )
                link = srun.diffusion_dir(fold)
                if not link.exists():
                    link.parent.mkdir(parents=True, exist_ok=True)
                    os.symlink(folder.resolve(), link)
                scfg = cfg.model_copy(
                    update={
                        "diffusion": cfg.diffusion.model_copy(
                            update={"guidance_scale": w, "upsample": up}
                        )
                    }
                )
                t0 = time.perf_counter()
                existed = is_complete(srun.augment_dir(fold, "mp-perlin"))
                out = make_fold_set(srun, fold, "mp", True, args.n, progress=False, config=scfg)
                sample_s = None if existed else (time.perf_counter() - t0) / args.n
                split, cls = base.splits.fold(fold), base.config.classify
                rec = measure_set(out, base.dataset, split, judges, cls.image_size, cls.threshold)
                rec["matched_label_fidelity"] = matched_label_fidelity(
                    diffusion_renderer(folder, scfg),
                    base.dataset,
                    split,
                    judges,
                    cls.image_size,
                    cls.threshold,
                )
                rec.update(
                    variant=name,
                    overrides=overrides,
                    guidance_scale=w,
                    upsample=up,
                    train_s=train_s,
                    sample_s_per_img=sample_s,
                )
                for lf in rec["label_fidelity"].values():
                    lf.pop("per_joint", None)
                with open(log, "a", encoding="utf-8") as f:
                    f.write(json.dumps(rec) + "\n")
                ms = "reused" if sample_s is None else f"{sample_s * 1000:.0f} ms/img"
                print(f"{tag}: {summary_line(rec)}; sampling {ms}", flush=True)


if __name__ == "__main__":
    main()
