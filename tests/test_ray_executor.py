"""The Ray executor on a local 2-CPU Ray instance: the same tables as the local executor
(with the augmentation sets written in shards and merged), and a worker killed mid-task
(retried, or failed and rerun) still gives the same tables."""

from __future__ import annotations

import pytest
from helpers import PIPELINE_TINY as TINY
from typer.testing import CliRunner

from jointaug.cli import app
from jointaug.dataset.phantom import write_phantom
from jointaug.experiments.ray_executor import FAULT_ENV, GraphFailed

pytestmark = pytest.mark.slow  # starts a local Ray instance and runs the grid (15-30 s a test)

ray = pytest.importorskip("ray")

GRID = [
    *TINY,
    "experiment.methods=[baseline, mp-perlin]",
    "experiment.mixtures=[]",
    "experiment.imbalance_baselines=[]",
    "experiment.curve_sizes=[]",
    "classify.seeds=[0]",
    "diffusion.sample_batch_size=4",
]
TABLES = ("table1.md", "table2.md", "metrics.csv")


def _run(data, out, *extra):
    args = [
        "run",
        "--dataset",
        str(data),
        "--out",
        str(out),
        "--profile",
        "paper",
        "--folds",
        "0,1",
        "--no-progress",
        *[a for s in GRID for a in ("--set", s)],
        *extra,
    ]
    return CliRunner().invoke(app, args)


def _tables(out):
    return {k: (out / "results" / k).read_bytes() for k in TABLES}


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    root = tmp_path_factory.mktemp("raygrid")
    write_phantom(root / "data", patients=6, size=64, seed=0, progress=False)
    res = _run(root / "data", root / "local")
    assert res.exit_code == 0, res.output
    fault = root / "fault"
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        object_store_memory=100 * 1024**2,
        log_to_driver=False,
        runtime_env={"env_vars": {FAULT_ENV: str(fault)}},
    )
    yield root, fault, _tables(root / "local")
    ray.shutdown()


def test_ray_gives_the_local_tables_even_when_a_worker_dies_mid_task(grid):
    root, fault, local = grid
    fault.write_text("classify/1/mp-perlin_8/seed_0")  # that task's worker dies once
    res = _run(root / "data", root / "ray", "--executor", "ray", "--shards", "2")
    assert res.exit_code == 0, res.output
    assert not fault.exists()  # the worker did die, and Ray retried the task
    # 2 models, 2 sets in 2 shards each + 2 merges, 4 classifiers
    assert "ray: done 12/12" in res.output and "stage: report" in res.output
    assert "set/1/mp-perlin/4-8" in res.output and "merge/0/mp-perlin" in res.output
    assert _tables(root / "ray") == local
    assert (root / "ray" / "logs" / "classify__1__mp-perlin_8__seed_0.log").is_file()


def test_a_failed_task_is_reported_with_its_log_and_a_rerun_completes(grid, tmp_path):
    from jointaug.config import load_config
    from jointaug.experiments.pipeline import RunOptions, run_experiment
    from jointaug.experiments.plan import make_plan
    from jointaug.experiments.rundir import RunDir

    root, fault, local = grid
    run = RunDir.create(tmp_path / "run", root / "data", load_config("paper", GRID))
    plan = make_plan(run, folds=[0, 1])
    fault.write_text("set/0/mp-perlin")
    log: list[str] = []
    with pytest.raises(
        GraphFailed, match=r"set/0/mp-perlin: .*\n    log: .*set__0__mp-perlin\.log"
    ) as err:
        run_experiment(
            run,
            plan,
            RunOptions(progress=False, estimate=False, executor="ray", ray_retries=0),
            echo=log.append,
        )
    assert "not started because a task they need failed: 1 task(s)" in str(err.value)
    assert not (run.results_dir / "table1.md").exists()  # no report from a partial grid
    assert (run.diffusion_dir(1) / "done").is_file()  # the rest ran on
    run_experiment(
        run, plan, RunOptions(progress=False, estimate=False, executor="ray"), echo=log.append
    )
    assert _tables(run.path) == local


def test_classifier_workers_are_reused_across_trainings(grid, tmp_path):
    """Trainings ready together share long-lived workers (one process, its image cache):
    4 baseline trainings on 2 CPUs run in at most 2 processes, with the local tables."""
    import re

    root, _, _ = grid
    out = tmp_path / "reuse"
    res = _run(
        root / "data",
        out,
        "--executor",
        "ray",
        "--set",
        "experiment.methods=[baseline]",
        "--set",
        "classify.seeds=[0, 1]",
    )
    assert res.exit_code == 0, res.output
    logs = sorted((out / "logs").glob("classify__*.log"))
    pids = {re.findall(r"pid (\d+)", p.read_text())[0] for p in logs}
    assert len(logs) == 4 and len(pids) <= 2
