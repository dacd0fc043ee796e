"""Headroom: does the classifier use more data? The ceiling, the baseline and the oracle per
classifier variant (issue 20, item 3).

Each lever is a named list of ``classify.*`` overrides on a base profile. Per lever a run
folder ``OUT/<lever>`` trains ``baseline`` and ``oracle-plan`` (the phantom's own renderer
on the fold's train patients: perfect extra data; ``oracle`` itself renders ``mp-perlin``'s
conditions, which needs a diffusion model) at every size of ``--n`` on the chosen folds and
seeds; the oracle sets are made once at the largest size (``OUT/_sets``; a smaller size reads
the first N images) and linked into every lever's run. ``--ceiling`` also trains the lever's
strong judge (the same classifier on 240 extra phantom patients, 5x the budget;
``fidelity/judge.py``) and scores it on the folds' test images: what the network reaches
with plenty of data.

Printed per lever and method: *validation* macro AUPRC and GMS at the threshold tuned there
(pooled over the folds' validation parts: the figures a choice may be made on), then test
GMS at 0.5 and tuned, test AUPRC, the difference to the baseline with its patient-level 95 %
interval (``experiments/stats.py``: pooled out-of-fold predictions, patients resampled), and
seconds per training. ``--csv`` writes the same rows.

    python benchmarks/bench_headroom.py --dataset DEV_PHANTOM --out OUT --profile cpu \
        --folds 0,1,2,3,4 --seeds 0 --n 512,2048 --ceiling \
        --lever today=classify.lr_aware=false --lever lr_aware= \
        --lever per_hand=classify.per_hand=true --lever px96=classify.image_size=96

``--predict``: also train the baseline on nested 25-100 % subsets of each fold's training
patients in the same run folder (``jointaug headroom``, ``RUN/headroom/``) and print, per
lever, the gain the learning curve predicts for perfect extra data of N images beside the
oracle's measured gain (both at the tuned threshold and at 0.5): does the curve, fitted
before any generator is trained, tell what the oracle later measures?
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

ORACLE = "oracle-plan"  # the phantom's renderer on its own plan: no diffusion model needed


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--profile", default="demo")
    ap.add_argument("--folds", default="0,1")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--n", default="512", help="oracle images per fold (comma-separated sizes)")
    ap.add_argument("--methods", default=f"baseline,{ORACLE}")
    ap.add_argument("--ceiling", action="store_true", help="train and score the strong judge")
    ap.add_argument("--csv", default=None, help="write the rows to this CSV")
    ap.add_argument(
        "--predict", action="store_true", help="learning-curve prediction beside the oracle"
    )
    ap.add_argument("--fractions", default="0.25,0.5,0.75,1.0", help="with --predict")
    ap.add_argument(
        "--lever", action="append", default=[], help="NAME=override;override;... (classify.* keys)"
    )
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    out = Path(args.out)
    folds = [int(f) for f in args.folds.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    sizes = [int(n) for n in args.n.split(",")]
    rows = []
    for lever in args.lever or ["base="]:
        name, _, spec = lever.partition("=")
        overrides = [o for o in spec.split(";") if o]
        t0 = time.perf_counter()
        run = _lever_run(args, out, name, overrides, folds, seeds, sizes)
        wall = time.perf_counter() - t0
        lever_rows = _rows(run, name, folds)
        if args.ceiling:
            lever_rows.append(_ceiling(run, name, folds))
        for r in lever_rows:
            print(_line(r), flush=True)
        if args.predict:
            print(f"  [{name}] " + _predicted(run, folds, args.fractions, sizes[0], lever_rows))
        print(f"  [{name}] wall {wall:.0f} s", flush=True)
        rows += lever_rows
    print("\nlever / method / validation AUPRC, GMS at the threshold tuned there (GMS*) / test")
    print("GMS@0.5, GMS*, AUPRC / dGMS* and dAUPRC vs baseline [patient 95% CI] / s per training")
    for r in rows:
        print(_line(r))
    if args.csv:
        _write_csv(Path(args.csv), rows)


def _lever_run(args, out: Path, name: str, overrides: list[str], folds, seeds, sizes):
    """Make the oracle sets (once), link them into the lever's run and train its grid."""
    from jointaug.config import load_config
    from jointaug.experiments.pipeline import RunOptions, run_experiment
    from jointaug.experiments.plan import make_plan
    from jointaug.experiments.rundir import RunDir
    from jointaug.sets.oracle_plan import make_oracle_plan_set

    cfg = load_config(args.profile, overrides + [f"classify.seeds={seeds}"])
    run = RunDir.create(out / name, args.dataset, cfg)
    for f in folds:
        src = out / "_sets" / f"fold_{f}" / ORACLE
        make_oracle_plan_set(
            src,
            max(sizes),
            dataset=run.dataset,
            train_patients=run.splits.fold(f).train,
            fold=f,
            config=cfg,
            progress=False,
        )
        link = run.augment_dir(f, ORACLE)
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            link.symlink_to(src.resolve(), target_is_directory=True)
    plan = make_plan(run, args.methods, sizes=sizes, folds=folds, curve_sizes=[])
    run_experiment(
        run,
        plan,
        RunOptions(progress=False, estimate=False),
        echo=lambda m, name=name: print(f"  [{name}] {m}", flush=True),
    )
    return run


def _rows(run, lever: str, folds: list[int]) -> list[dict]:
    """One row per (method, size): validation and test figures, the paired statistics."""
    from jointaug.experiments.oof import collect_run
    from jointaug.experiments.selection import validation_rows
    from jointaug.experiments.stats import stats_rows

    stats = stats_rows(collect_run(run))
    rows = []
    for v in validation_rows(run):  # the validation figures a choice may read
        method, size = v["method"], v["size"]
        rs = [r for r in _results(run) if r["method"] == method and r["size"] == size]
        row = {
            "lever": lever,
            "method": method if method == "baseline" else f"{method} ({size})",
            "trainings": len(rs),
            "val_auprc": v["val_auprc"],
            "val_gms_tuned": v["val_gms_tuned"],
            "test_gms": float(np.mean([r["test"]["gms"] for r in rs])),
            "test_gms_tuned": float(np.mean([r["test_tuned"]["gms"] for r in rs])),
            "s_per_training": float(np.mean([r["wall_s"] for r in rs])),
            "samples": float(np.mean([r["samples"] for r in rs])),
        }
        row |= _stat(stats, row["method"])
        rows.append(row)
    base = [r for r in rows if r["method"] == "baseline"]
    known = [r["_baseline_auprc"] for r in rows if "_baseline_auprc" in r]
    if base and known:
        base[0]["test_auprc"] = known[0]
    for r in rows:
        r.pop("_baseline_auprc", None)
    return rows


def _results(run) -> list[dict]:
    """Every finished training's result.json."""
    return [
        json.loads(p.read_text())
        for p in sorted(run.path.glob("fold_*/classify/*/seed_*/result.json"))
    ]


def _stat(stats: list[dict], label: str) -> dict:
    """Single-model differences to the baseline: GMS tuned and AUPRC, with 95 % CIs."""
    out = {}
    for r in stats:
        if r["models"] != "single" or r["reference"] != "baseline" or r["method"] != label:
            continue
        if r["metric"] == "gms" and r["threshold"] == "tuned":
            out |= {k: r[c] for k, c in zip(D_GMS, CI, strict=True)}
        if r["metric"] == "auprc":
            out |= {k: r[c] for k, c in zip(D_AUPRC, CI, strict=True)}
            out["test_auprc"] = r["value_method"]
            out["_baseline_auprc"] = r["value_reference"]
    return out


CI = ("estimate", "ci_low", "ci_high")
D_GMS = ("d_gms_tuned", "d_gms_low", "d_gms_high")
D_AUPRC = ("d_auprc", "d_auprc_low", "d_auprc_high")


def _ceiling(run, lever: str, folds: list[int]) -> dict:
    """The lever's strong judge on the folds' test images: GMS at 0.5, at the threshold tuned
    on its own validation patients, AUPRC."""
    from jointaug.classify.data import fold_part, input_layout
    from jointaug.classify.metrics import pool_summary
    from jointaug.classify.predict import predict_probs
    from jointaug.fidelity.judge import judge_record, load_judge, train_strong_judge

    cfg = run.config.classify
    t0 = time.perf_counter()
    path = train_strong_judge(run.judge_dir, run.dataset, cfg)
    wall = time.perf_counter() - t0
    judge, rec = load_judge("strong", path), judge_record(path)
    layout = input_layout(run.dataset, cfg)
    split = run.splits.fold
    parts = [fold_part(run.dataset, split(f), "test", cfg.image_size, layout=layout) for f in folds]
    y = np.concatenate([p.labels for p in parts])
    p = predict_probs(judge.model.eval(), np.concatenate([p.images for p in parts]))
    at05, tuned = pool_summary(y, p, cfg.threshold), pool_summary(y, p, rec["threshold_tuned"])
    return {
        "lever": lever,
        "method": "ceiling (strong judge)",
        "trainings": 1,
        "val_auprc": rec["val"]["auprc"],
        "val_gms_tuned": rec["val_tuned_gms"],
        "test_gms": at05["gms"],
        "test_gms_tuned": tuned["gms"],
        "test_auprc": at05["auprc"],
        "s_per_training": wall,
        "samples": float("nan"),
    }


def _line(r: dict) -> str:
    def f(k, fmt="{:.3f}"):
        v = r.get(k)
        return fmt.format(v) if v is not None and v == v else "-"

    d = "{:+.3f}"
    ci = f"{f(D_GMS[0], d)} [{f(D_GMS[1], d)}, {f(D_GMS[2], d)}]"
    ca = f"{f(D_AUPRC[0], d)} [{f(D_AUPRC[1], d)}, {f(D_AUPRC[2], d)}]"
    head = f"{r['lever']:<14} {r['method']:<24} {f('val_auprc')}  {f('val_gms_tuned')}  "
    figs = f"{f('test_gms')}  {f('test_gms_tuned')}  {f('test_auprc')}  {ci}  {ca}  "
    return head + figs + f("s_per_training", "{:.0f}")


def _write_csv(path: Path, rows: list[dict]) -> None:
    import csv

    cols = list(dict.fromkeys(k for r in rows for k in r))
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)
    print(f"wrote {path}")


def _predicted(run, folds: list[int], fractions: str, n: int, rows: list[dict]) -> str:
    """The learning curve's predicted gain at +n images beside the oracle's measured one."""
    from jointaug.experiments.headroom import parse_fractions, run_headroom

    h = run_headroom(
        run, parse_fractions(fractions), folds, extras=[n], progress=False, echo=lambda m: None
    )
    by = {r["method"]: r for r in rows}
    base, oracle = by.get("baseline", {}), by.get(f"{ORACLE} ({n})", {})
    measured = {
        "tuned": oracle.get("d_gms_tuned", float("nan")),
        "default": oracle.get("test_gms", float("nan")) - base.get("test_gms", float("nan")),
    }
    cells = []
    for mode in ("tuned", "default"):
        g = h.predictions[mode].gains[0]
        cells.append(
            f"{'tuned' if mode == 'tuned' else '@0.5'}: predicted {g.estimate:+.3f} "
            f"({g.low:+.3f} to {g.high:+.3f}), oracle {measured[mode]:+.3f}"
        )
    return f"headroom at +{n}: " + "; ".join(cells)


if __name__ == "__main__":
    main()
