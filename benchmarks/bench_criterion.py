"""Training the generator to a criterion: how many steps the fidelity plateau saves.

Trains fold 0's diffusion model of the ``demo`` profile (built-in phantom) for
``--steps`` steps with the stopping criterion's checks on but a patience that never
stops (``fidelity_patience`` = 10**6), so the whole fidelity curve is recorded
(``model.json`` -> ``fidelity.history``). Then applies the plateau rule
(``diffusion/criterion.first_stop``) with the given patience and min_delta to that
curve: the step where ``stop_on_fidelity`` would have stopped, its fidelity, and the
fidelity of the last checks of the full run (equal fidelity = within min_delta).
Because a criterion stop is the same training cut short (the loop is unchanged up to
the stop, tested), the curve of one full run answers for every patience.

    python benchmarks/bench_criterion.py --steps 600 --every 25 --patience 4
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def summary(hist: list, args, wall: float) -> dict:
    """Where the plateau rule stops on ``hist`` and the fidelity there vs the full run."""
    from jointaug.diffusion.criterion import first_stop

    stop = first_stop(hist, args.patience, args.min_delta)
    tail = [s for _, s in hist[-args.patience :]]
    return {
        "steps": args.steps,
        "every": args.every,
        "patience": args.patience,
        "min_delta": args.min_delta,
        "stop_step": stop,
        "steps_saved": args.steps - stop if stop else 0,
        "fidelity_at_stop": dict((int(a), b) for a, b in hist).get(stop) if stop else None,
        "best_fidelity_up_to_stop": max(s for st, s in hist if stop is None or st <= stop),
        "fidelity_last_checks_mean": sum(tail) / len(tail),
        "best_fidelity_full_run": max(s for _, s in hist),
        "wall_s_full_run": wall,
        "wall_s_per_step_incl_checks": wall / args.steps,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=600, help="training steps of the full run")
    ap.add_argument("--every", type=int, default=25, help="fidelity_every (steps)")
    ap.add_argument("--patience", type=int, default=4, help="fidelity_patience (checks)")
    ap.add_argument("--min-delta", type=float, default=0.01)
    ap.add_argument("--cases", type=int, default=16, help="fidelity_cases")
    args = ap.parse_args()

    from jointaug.config import load_config
    from jointaug.dataset.phantom import write_phantom
    from jointaug.experiments.rundir import RunDir
    from jointaug.experiments.stages import train_fold_diffusion
    from jointaug.runtime import apply_runtime

    over = [
        f"diffusion.train_steps={args.steps}",
        "diffusion.stop_on_fidelity=true",
        f"diffusion.fidelity_every={args.every}",
        "diffusion.fidelity_patience=1000000",
        f"diffusion.fidelity_cases={args.cases}",
        f"diffusion.sample_every={args.steps}",
    ]
    cfg = load_config("demo", over)
    apply_runtime(cfg)
    with tempfile.TemporaryDirectory() as tmp:
        p = cfg.phantom
        write_phantom(Path(tmp) / "data", p.patients, p.size, p.seed, progress=False)
        run = RunDir.create(Path(tmp) / "run", Path(tmp) / "data", cfg)
        t0 = time.perf_counter()
        train_fold_diffusion(run, 0, progress=False)
        wall = time.perf_counter() - t0
        info = json.loads((run.diffusion_dir(0) / "model.json").read_text())
    hist = info["fidelity"]["history"]
    print("step  fidelity")
    for step, score in hist:
        print(f"{step:5d}  {score:.4f}")
    print(json.dumps(summary(hist, args, wall), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
