"""Time the built-in phantom (48 patients at 256 x 256) and its montage; print figures.

Run: ``python benchmarks/bench_phantom.py [--patients 48] [--size 256]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from jointaug.dataset.phantom import patient_truth, write_phantom
from jointaug.dataset.show import montage


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--patients", type=int, default=48)
    ap.add_argument("--size", type=int, default=256)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "phantom"
        t0 = time.perf_counter()
        ds = write_phantom(out, patients=args.patients, size=args.size, seed=0, progress=False)
        t_write = time.perf_counter() - t0
        t0 = time.perf_counter()
        for i in range(8):
            patient_truth(0, i, args.size)
        t_truth = (time.perf_counter() - t0) / 8
        t0 = time.perf_counter()
        montage(ds, Path(tmp) / "montage.png", n=8, seed=0)
        t_montage = time.perf_counter() - t0
        totals = [int(c.extra["total_counts"]) for c in ds.cases]
        peaks = [float(ds.image(c).max()) for c in ds.cases]
        info = ds.meta.extra["phantom"]
    print(
        f"phantom write: {args.patients} patients at {args.size}: {t_write:.2f} s "
        f"({len(ds.cases)} cases, {t_write / args.patients * 1000:.0f} ms/patient)"
    )
    print(f"patient truth (noise-free, 4 views): {t_truth * 1000:.0f} ms/patient")
    print(f"montage (8 cases): {t_montage:.2f} s")
    print(
        f"counts per image: median {np.median(totals):.3g}, range {min(totals):.3g}-{max(totals):.3g}; "
        f"peak pixel median {np.median(peaks):.0f}, range {min(peaks):.0f}-{max(peaks):.0f}"
    )
    print(
        f"overall positive rate {info['positive_rate']:.3f} over {info['classification_images']} images"
    )


if __name__ == "__main__":
    main()
