"""Do the class-activation maps point at the right joint? Measured on the built-in phantom.

Writes the phantom (48 patients, ``--phantom-size`` px), splits patients 30 / 6 / 12 into
train / validation / test, trains one CPU-sized DenseNet (``--size`` px, ``--blocks``)
with the repository's training loop, and for every test image (palmar and dorsal) computes
the maps exactly as ``jointaug predict`` does (:mod:`jointaug.classify.explain`, then
:func:`jointaug.experiments.overlay.to_image_grid` onto the image's own grid).

For each true positive (label 1, p >= 0.5) it asks where the map's peak lies, using the
phantom's region maps (joint i = region id i):

- ``in joint``: inside that joint's own region (the figure this benchmark reports);
- ``in any inflamed``: inside the region of some inflamed joint of that image;
- ``chance``: the mean share of the hand (all regions together) that the joint's region
  covers, i.e. the hit rate of a peak dropped uniformly on the joints.

Methods: Grad-CAM at ``class_layers.relu`` (the default), Grad-CAM at the finest
transition layer, and occlusion sensitivity (on ``--occlusion-images`` images; slow).
Also writes a few overlays (``--out``) to look at.

    python benchmarks/bench_explain.py [--threads 1] [--size 128] [--samples 12000] [--out DIR]

Measured at d5f7a01 (2 shared CPU cores, one thread, 228 s wall; classifier 171 s, val
GMS 0.715), 19 true positives in 26 test images; in joint / in any inflamed / chance:
Grad-CAM class_layers.relu 0.263 / 0.474 / 0.112; Grad-CAM features.transition1.relu
0.316 / 0.316; occlusion 0.316 / 0.842. At --size 64 (4 x 4 final map, 27 true
positives): 0.074 / 0.111 / 0.097 for Grad-CAM class_layers.relu, 0.375 for occlusion
on 8 images.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from jointaug.classify.data import load_images
from jointaug.classify.explain import EnsembleExplainer
from jointaug.classify.model import build_model
from jointaug.classify.predict import predict_probs
from jointaug.classify.train import MODEL, FitOptions, fit
from jointaug.classify.transforms import prepare_image
from jointaug.config import load_config
from jointaug.dataset.io import read_image
from jointaug.dataset.phantom import write_phantom
from jointaug.experiments.overlay import map_peaks, overlay, to_image_grid
from jointaug.experiments.predict import explain_note
from jointaug.weights import load_tensors


def train(ds, tmp: Path, args) -> tuple[torch.nn.Module, list, object]:
    """Train on patients 1-30 (validate on 31-36); return the model, test cases, config."""
    pids = sorted({c.patient_id for c in ds.classification_cases()})
    part = {p: ("train" if i < 30 else "val" if i < 36 else "test") for i, p in enumerate(pids)}
    cases = {
        k: [c for c in ds.classification_cases() if part[c.patient_id] == k]
        for k in ("train", "val", "test")
    }
    cfg = load_config(
        "demo",
        [
            f"classify.image_size={args.size}",
            f"classify.block_config=[{args.blocks}]",
            f"classify.max_samples={args.samples}",
            f"classify.patience_samples={args.samples}",
        ],
    ).classify
    t0 = time.perf_counter()
    tr, va = (load_images(ds, cases[k], cfg.image_size, k) for k in ("train", "val"))
    res = fit(tmp / "clf", tr, va, cfg, 0, list(ds.labels), FitOptions(progress=False))
    print(
        f"classifier: {args.size} px, blocks [{args.blocks}], {res.samples} samples, "
        f"best val GMS {res.best_val_gms:.3f}, {time.perf_counter() - t0:.0f} s"
    )
    model = build_model(cfg, len(ds.labels), seed=None)
    model.load_state_dict(load_tensors(tmp / "clf" / MODEL)[0])
    return model.eval(), cases["test"], cfg


def score(ds, model, cases, cfg, method: str, layer: str | None, limit: int | None = None) -> dict:
    """Hit rates of the map peaks of the true positives (module docstring)."""
    ex = EnsembleExplainer([model], method, layer)
    own, anyinf, chance, n_tp, t0 = [], [], [], 0, time.perf_counter()
    for case in cases[:limit]:
        img = ds.image(case)
        regions = read_image(ds.path(case.regions)).astype(int)
        x = prepare_image(img, cfg.image_size)
        probs = predict_probs(model, x[None, None])[0]
        peaks = map_peaks(to_image_grid(ex(x), img.shape))
        truth = case.labels
        hand = max(int((regions > 0).sum()), 1)
        for j in np.nonzero((truth == 1) & (probs >= 0.5))[0]:
            n_tp += 1
            px, py = peaks[j]
            hit = regions[int(py), int(px)] if not np.isnan(px) else 0
            own.append(hit == j + 1)
            anyinf.append(hit > 0 and truth[hit - 1] == 1)
            chance.append((regions == j + 1).sum() / hand)
    n_img = len(cases[:limit])
    return {
        "method": method,
        "layer": layer or ex.layer or "-",
        "n_tp": n_tp,
        "images": n_img,
        "in_joint": float(np.mean(own)) if own else float("nan"),
        "in_any_inflamed": float(np.mean(anyinf)) if anyinf else float("nan"),
        "chance": float(np.mean(chance)) if chance else float("nan"),
        "s_per_image": (time.perf_counter() - t0) / max(n_img, 1),
    }


def pictures(ds, model, cases, cfg, out: Path, n: int = 3) -> None:
    ex = EnsembleExplainer([model], "gradcam")
    info = {"method": "gradcam", "layer": ex.layer, "members": 1}
    for case in cases[:n]:
        img = ds.image(case)
        x = prepare_image(img, cfg.image_size)
        probs = predict_probs(model, x[None, None])[0]
        cams = to_image_grid(ex(x), img.shape)
        truth = ", ".join(lab for lab, v in zip(ds.labels, case.labels, strict=True) if v == 1)
        overlay(
            img,
            probs,
            list(ds.labels),
            0.5,
            out / f"{case.case_id}_overlay.png",
            f"{case.case_id} (truth: {truth or 'none'})",
            cams,
            explain_note(info),
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--phantom-size", type=int, default=128)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--blocks", default="2, 2, 2")
    ap.add_argument("--samples", type=int, default=12000)
    ap.add_argument("--occlusion-images", type=int, default=26)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "bench_explain")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        ds = write_phantom(
            Path(tmp) / "data", patients=48, size=args.phantom_size, seed=0, progress=False
        )
        model, test, cfg = train(ds, Path(tmp), args)
        finest = sorted(
            n for n, _ in model.named_modules() if n.endswith(".relu") and "transition" in n
        )[0]
        rows = [
            score(ds, model, test, cfg, "gradcam", None),
            score(ds, model, test, cfg, "gradcam", finest),
            score(ds, model, test, cfg, "occlusion", None, args.occlusion_images),
        ]
        args.out.mkdir(parents=True, exist_ok=True)
        pictures(ds, model, [c for c in test if c.labels.sum() >= 3], cfg, args.out)
    print(
        f"{'method':10} {'layer':27} {'images':>6} {'TP':>4} {'in joint':>9} {'in any infl.':>12} "
        f"{'chance':>7} {'s/image':>8}"
    )
    for r in rows:
        print(
            f"{r['method']:10} {str(r['layer']):27} {r['images']:6d} {r['n_tp']:4d} {r['in_joint']:9.3f} "
            f"{r['in_any_inflamed']:12.3f} {r['chance']:7.3f} {r['s_per_image']:8.2f}"
        )
    print(f"overlays in {args.out}; wall time {time.perf_counter() - t_all:.0f} s")


if __name__ == "__main__":
    main()
