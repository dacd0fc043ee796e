"""Coverage of the patient cluster bootstrap (experiments/evidence.py) vs the old fold-seed bootstrap.

The line marked ``(= run)`` is the very comparison ``jointaug run`` and ``jointaug stats``
make for ΔGMS (``StatsOptions().compare_options("gms")`` with each image's fold).

Simulated studies shaped like the real one: 48 patients with 1-3 images each, 30 joint
labels at ~11 % prevalence, a patient random effect and a patient-joint effect (the images of
a patient share their labels' latent state), patient-level 5-fold CV with 3 seeds per fold.
Each model's logit is ``slope_m * (latent - cut) + image difficulty (shared by both methods)
+ fold noise (shared by methods and seeds) + method x fold noise (shared by the fold's seeds)
+ seed noise + per-training image noise``; method A has a steeper slope than B (a known effect),
threshold 0.5. The true difference is the seed-averaged pooled GMS difference on a very large
population drawn the same way (thousands of folds, so training noise is averaged out).

Printed: per method of inference, the coverage of the 95 % interval of ΔGMS (effect
scenario) and the false "helps" rate (null scenario, A = B in distribution), with mean
interval widths, and the sd between seeds of one training's GMS on the same fold test set
(training noise alone; the design notes measured ~0.05 on the real data) so the noise regime
is visible.

    python benchmarks/bench_coverage.py --reps 500 --seed 0   # ~1 min on 2 free cores
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, replace

import numpy as np

from jointaug.experiments.evidence import OOF, CompareOptions, compare, finalize
from jointaug.experiments.stats import StatsOptions


@dataclass(frozen=True)
class Sim:
    n_patients: int = 48
    n_labels: int = 30
    prevalence: float = 0.11
    n_folds: int = 5
    n_seeds: int = 3
    sd_patient: float = 0.7  # patient random effect on every joint's latent state
    sd_joint: float = 1.0  # patient-joint effect (shared by the patient's images)
    sd_image: float = 0.4  # image-level variation of the latent state
    slope_b: float = 1.5
    effect: float = 0.6  # slope_a - slope_b
    sd_hard: float = 0.8  # image-label difficulty, shared by both methods and all trainings
    sd_fold: float = 0.3  # fold intercept, shared by both methods and the fold's seeds
    sd_fold_method: float = 0.15  # method x fold intercept, shared by the fold's seeds
    sd_seed: float = 0.3  # one training's intercept
    sd_train: float = 0.7  # one training's per-image-label noise


def _cuts(sim: Sim) -> np.ndarray:
    sd = np.sqrt(sim.sd_patient**2 + sim.sd_joint**2 + sim.sd_image**2)
    from scipy.stats import norm

    return norm.ppf(1 - sim.prevalence) * sd + np.linspace(-0.4, 0.4, sim.n_labels)


def simulate(
    sim: Sim, rng: np.random.Generator, n_patients: int | None = None, n_folds: int | None = None
) -> dict:
    """One study: y (N, L), patient (N,), fold (N,), probs_a / probs_b (S, N, L)."""
    n_pat = n_patients or sim.n_patients
    n_folds = n_folds or sim.n_folds
    n_img = rng.integers(1, 4, size=n_pat)
    patient = np.repeat(np.arange(n_pat), n_img)
    fold_of_patient = rng.permutation(np.arange(n_pat) % n_folds)
    fold = fold_of_patient[patient]
    L, N, S = sim.n_labels, patient.size, sim.n_seeds
    b = rng.normal(0, sim.sd_patient, n_pat)[patient, None]
    z = rng.normal(0, sim.sd_joint, (n_pat, L))[patient]
    centred = b + z + rng.normal(0, sim.sd_image, (N, L)) - _cuts(sim)
    y = (centred > 0).astype(np.float64)
    hard = rng.normal(0, sim.sd_hard, (N, L))
    u = rng.normal(0, sim.sd_fold, n_folds)[fold, None]
    out = {"y": y, "patient": patient, "fold": fold}
    for name, slope in (("a", sim.slope_b + sim.effect), ("b", sim.slope_b)):
        v = rng.normal(0, sim.sd_fold_method, n_folds)[fold, None]
        w = rng.normal(0, sim.sd_seed, (S, n_folds))[:, fold]
        logit = (slope * centred + hard + u + v)[None] + w[:, :, None]
        logit = logit + rng.normal(0, sim.sd_train, (S, N, L))
        out[f"probs_{name}"] = 1 / (1 + np.exp(-logit))
    return out


def _gms(y: np.ndarray, probs: np.ndarray) -> float:
    pred, pos = probs >= 0.5, y > 0.5
    tpr = np.sum(pred & pos) / np.sum(pos)
    tnr = np.sum(~pred & ~pos) / np.sum(~pos)
    return float(np.sqrt(tpr * tnr))


def true_delta(sim: Sim, rng: np.random.Generator, n_patients: int = 20_000) -> tuple[float, float]:
    """(ΔGMS, its Monte-Carlo standard error) on two large populations (10 patients per fold)."""
    vals = []
    for _ in range(2):
        d = simulate(sim, rng, n_patients=n_patients, n_folds=n_patients // 10)
        vals.append(
            np.mean(
                [
                    _gms(d["y"], d["probs_a"][s]) - _gms(d["y"], d["probs_b"][s])
                    for s in range(sim.n_seeds)
                ]
            )
        )
    return float(np.mean(vals)), float(abs(vals[0] - vals[1]) / 2)


def bootstrap_ci(
    diffs: list[float], rng: np.random.Generator, n_boot: int = 2000, level: float = 0.95
) -> tuple[float, float]:
    """The old method's interval: percentile bootstrap of the mean of ``diffs`` (iid)."""
    d = np.asarray([x for x in diffs if not np.isnan(x)], dtype=np.float64)
    means = d[rng.integers(0, d.size, size=(n_boot, d.size))].mean(axis=1)
    a = (1 - level) / 2
    return float(np.quantile(means, a)), float(np.quantile(means, 1 - a))


def mode_options(mode: str, n_boot: int) -> CompareOptions:
    """The options of each mode; ``fold`` is exactly what ``jointaug run`` / ``stats`` use for
    ΔGMS (:meth:`StatsOptions.compare_options`, with ``fold`` given), at ``n_boot``."""
    run = replace(StatsOptions().compare_options("gms"), n_boot=n_boot)
    return run if mode == "fold" else replace(run, seeds="fixed" if mode == "fixed" else "resample")


def naive(d: dict, sim: Sim, rng: np.random.Generator) -> tuple[float, float]:
    """The old method: bootstrap the mean of the 15 per-(fold, seed) ΔGMS as if independent."""
    diffs = [
        _gms(d["y"][m], d["probs_a"][s][m]) - _gms(d["y"][m], d["probs_b"][s][m])
        for k in range(sim.n_folds)
        for s in range(sim.n_seeds)
        for m in [d["fold"] == k]
    ]
    return bootstrap_ci(diffs, rng, n_boot=2000)


MODES = ("fixed", "resample", "fold")


def run(sim: Sim, reps: int, rng: np.random.Generator, n_boot: int = 2000) -> dict:
    """Coverage (effect scenario) and false-helps rate (null scenario) of each method."""
    truth, truth_se = true_delta(sim, rng)
    null = replace(sim, effect=0.0)
    res = {k: {"cover": 0, "width": 0.0, "helps_null": 0} for k in MODES + ("naive",)}
    fold_sd = []
    for _ in range(reps):
        for scenario, s in (("effect", sim), ("null", null)):
            d = simulate(s, rng)
            a, b = OOF(d["probs_a"]), OOF(d["probs_b"])
            for mode in MODES:
                c = finalize(
                    [
                        compare(
                            a,
                            b,
                            d["y"],
                            d["patient"],
                            rng,
                            mode_options(mode, n_boot),
                            fold=d["fold"] if mode == "fold" else None,
                        )
                    ]
                )[0]
                if scenario == "effect":
                    res[mode]["cover"] += c.ci_low <= truth <= c.ci_high
                    res[mode]["width"] += c.ci_high - c.ci_low
                else:
                    res[mode]["helps_null"] += c.verdict == "helps"
            lo, hi = naive(d, s, rng)
            if scenario == "effect":
                res["naive"]["cover"] += lo <= truth <= hi
                res["naive"]["width"] += hi - lo
                m = d["fold"] == 0
                g = [_gms(d["y"][m], d["probs_b"][j][m]) for j in range(s.n_seeds)]
                fold_sd.append(np.var(g, ddof=1))
            else:
                res["naive"]["helps_null"] += lo > 0
    for r in res.values():
        r.update(
            cover=r["cover"] / reps, width=r["width"] / reps, helps_null=r["helps_null"] / reps
        )
    return {
        "truth": truth,
        "truth_se": truth_se,
        "seed_gms_sd": float(np.sqrt(np.mean(fold_sd))),
        "methods": res,
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--reps", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-boot", type=int, default=StatsOptions().n_boot_gms)
    ap.add_argument(
        "--fold-method-sd",
        type=float,
        default=Sim.sd_fold_method,
        help="method x fold noise shared by a fold's seeds (sensitivity)",
    )
    ap.add_argument(
        "--seed-sd", type=float, default=Sim.sd_seed, help="one training's intercept sd"
    )
    args = ap.parse_args()
    sim = Sim(sd_fold_method=args.fold_method_sd, sd_seed=args.seed_sd)
    t0 = time.perf_counter()
    r = run(sim, args.reps, np.random.default_rng(args.seed), args.n_boot)
    wall = time.perf_counter() - t0
    print(f"reps {args.reps}, seed {args.seed}, n_boot {args.n_boot}, {wall:.1f} s; {sim}")
    print(
        f"true ΔGMS {r['truth']:+.4f} (MC se {r['truth_se']:.4f}); sd between seeds of one "
        f"training's GMS on the same fold test set {r['seed_gms_sd']:.3f}"
    )
    se = np.sqrt(0.95 * 0.05 / args.reps)
    print(f"{'method':<34} {'coverage 95% CI':>16} {'mean width':>11} {'false helps (null)':>19}")
    names = {
        "fixed": "patients; seeds fixed",
        "resample": "patients x seed pools",
        "fold": "patients x seeds per fold (= run)",
        "naive": "old: 15 fold-seed pairs iid",
    }
    for k, m in r["methods"].items():
        print(f"{names[k]:<34} {m['cover']:>16.3f} {m['width']:>11.4f} {m['helps_null']:>19.3f}")
    print(f"(binomial se of a coverage near 0.95 at {args.reps} reps: {se:.3f})")
    o = mode_options("fold", args.n_boot)
    print(
        f"jointaug run / stats use for ΔGMS: seeds={o.seeds!r} with fold given, n_boot "
        f">= {StatsOptions().n_boot_gms} (raised to 50 per comparison of a table), "
        f"margin {o.margin}: the line marked '(= run)'"
    )


if __name__ == "__main__":
    main()
