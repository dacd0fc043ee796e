"""A ``--set`` sweep on the development dataset, chosen on validation predictions only.

Each candidate is a named list of config overrides on a profile; each gets its own run
folder ``OUT/<name>`` on the development dataset and trains ``--methods`` there. Diffusion
models that the candidates share (no candidate changes ``diffusion.*``) can be trained once
and linked in with ``--diffusion-from RUN`` (its ``fold_K/diffusion`` folders; a model with
other settings is refused by the run as stale, nothing is silently reused). The table and
the choice come from :mod:`jointaug.experiments.selection` (``jointaug choose``): the
validation parts only, by the metric declared before the sweep (``--metric``, default macro
AUPRC). No test prediction is read; report the chosen setting on fresh data
(``bench_augmentation.py --confirm``).

    python benchmarks/bench_choose.py --dataset DEV_PHANTOM --out OUT --profile cpu \\
        --methods mp-perlin --diffusion-from DEV_RUN --set classify.seeds=[0,1] \\
        --candidate paper= --candidate half=perlin.min_fraction=0.5
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--methods", required=True, help="comma-separated methods to train")
    ap.add_argument("--set", action="append", default=[], help="overrides for every candidate")
    ap.add_argument("--candidate", action="append", default=[], help="NAME=override;override")
    ap.add_argument("--diffusion-from", default=None, help="a run whose diffusion models to link")
    ap.add_argument("--metric", default="val_auprc")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    from jointaug.config import load_config
    from jointaug.experiments.pipeline import RunOptions, run_experiment
    from jointaug.experiments.plan import make_plan
    from jointaug.experiments.rundir import RunDir
    from jointaug.experiments.selection import choose, format_rows, validation_rows

    rows = []
    for cand in args.candidate:
        name, _, spec = cand.partition("=")
        cfg = load_config(args.profile, args.set + [o for o in spec.split(";") if o])
        run = RunDir.create(Path(args.out) / name, args.dataset, cfg)
        if args.diffusion_from:
            _link_diffusion(Path(args.diffusion_from), run)
        t0 = time.perf_counter()
        plan = make_plan(run, args.methods, curve_sizes=[])
        run_experiment(
            run,
            plan,
            RunOptions(progress=False, estimate=False),
            echo=lambda m, name=name: print(f"  [{name}] {m}", flush=True),
        )
        print(f"  [{name}] wall {time.perf_counter() - t0:.0f} s", flush=True)
        rows += [r | {"run": name} for r in validation_rows(run)]
    best = choose(rows, args.metric)
    print(format_rows(rows, best))
    print(f"chosen on validation ({args.metric}): {best['run']} / {best['method']}")


def _link_diffusion(source: Path, run) -> None:
    for model in sorted(source.glob("fold_*/diffusion")):
        link = run.path / model.parent.name / "diffusion"
        if link.exists() or link.is_symlink():
            continue
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(model.resolve(), target_is_directory=True)


if __name__ == "__main__":
    main()
