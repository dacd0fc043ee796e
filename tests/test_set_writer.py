"""The one set writer: a toy set kind, registered only here, runs the task graph's path.

The toy kind is the few lines a new kind needs: settings, metadata, a case plan and a
batch maker (images = the planned condition map times ``scale``); resume, growth,
batching and staleness come from :mod:`jointaug.sets.writer`.
"""

import hashlib
from pathlib import Path

import numpy as np
import pytest

from jointaug.config import load_config
from jointaug.dataset.format import DatasetMeta, is_complete, read_dataset
from jointaug.dataset.phantom import write_phantom
from jointaug.dataset.validate import validate_dataset
from jointaug.experiments.rundir import RunDir
from jointaug.experiments.stages import make_named_set
from jointaug.outputs import StaleOutputError
from jointaug.sets.registry import register_set, unregister_set
from jointaug.sets.sources import CasePlanner, mp_source
from jointaug.sets.writer import SetCase, SetSpec, write_set

FAIL_AT: list[int] = []  # batch starts at which the toy generator "crashes" (once each)


def make_toy_set(out, n, *, dataset, train_patients, fold, config, progress=True, scale=1):
    """A whole set kind: the condition map times ``scale`` as the image, batches of 3."""
    src = mp_source(dataset, tuple(train_patients))
    settings = {"kind": "toy", "fold": fold, "scale": scale, "seed": config.diffusion.seed}
    meta = DatasetMeta(
        name=f"toy-fold{fold}",
        labels=list(dataset.labels),
        groups=dict(dataset.meta.groups),
        classification_views=list(dataset.meta.classification_views),
        extra={"augmentation": settings},
    )

    def make_batch(plans):
        if FAIL_AT and plans[0].index == FAIL_AT[0]:
            FAIL_AT.pop(0)
            raise RuntimeError("toy crash")
        return [
            SetCase(
                p.source_case.patient_id,
                p.source_case.view,
                p.composed.condition.astype(np.int32) * scale,
                p.composed.labels,
                p.composed.condition,
                p.regions,
                {"source_case": p.source_case.case_id},
            )
            for p in plans
        ]

    planner = CasePlanner(src, config.diffusion.seed, fold, "toy", config.sampler)
    spec = SetSpec("toy", settings, meta, ["source_case"], planner, what="toy set", batch_size=3)
    return write_set(out, n, spec, make_batch, progress=progress)


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    root = tmp_path_factory.mktemp("writer") / "data"
    write_phantom(root, patients=6, size=64, seed=0, progress=False)
    return root


@pytest.fixture
def toy():
    register_set("toy", "toy", "mp", False, "test_set_writer:make_toy_set", {"scale": 3})
    yield
    unregister_set("toy")
    FAIL_AT.clear()


def _run(tmp_path, phantom, name="run"):
    return RunDir.create(
        tmp_path / name, phantom, load_config("demo", ["split.folds=3", "device=cpu"])
    )


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_a_toy_kind_writes_a_contract_set_through_the_task_graph_path(toy, phantom, tmp_path):
    run = _run(tmp_path, phantom)
    out = make_named_set(run, 0, "toy", 7, progress=False)
    assert out == run.augment_dir(0, "toy") and is_complete(out) and validate_dataset(out).ok
    ds = read_dataset(out)
    assert [c.case_id for c in ds.cases] == [f"toy_{i:06d}" for i in range(7)]
    cfg = run.config
    planner = CasePlanner(
        mp_source(run.dataset, run.splits.fold(0).train), cfg.diffusion.seed, 0, "toy", cfg.sampler
    )
    for i, case in enumerate(ds.cases):
        plan = planner(i)
        np.testing.assert_array_equal(case.labels, plan.composed.labels)  # labels as planned
        np.testing.assert_array_equal(ds.image(case), plan.composed.condition.astype(np.int32) * 3)
        np.testing.assert_array_equal(ds.tissue(case), plan.composed.condition)
        assert (
            case.patient_id in run.splits.fold(0).train
            and case.extra["source_case"] == plan.source_case.case_id
        )


def test_the_toy_set_resumes_grows_and_refuses_other_settings(toy, phantom, tmp_path):
    ref = make_named_set(_run(tmp_path, phantom, "ref"), 0, "toy", 8, progress=False)
    run = _run(tmp_path, phantom)
    FAIL_AT.append(6)  # crash in the third batch [6, 9)
    with pytest.raises(RuntimeError, match="toy crash"):
        make_named_set(run, 0, "toy", 8, progress=False)
    out = run.augment_dir(0, "toy")
    assert (
        not is_complete(out) and len(list(out.rglob("images/*/*.png"))) == 6
    )  # two whole batches kept
    make_named_set(run, 0, "toy", 4, progress=False)  # smaller: completes cases [0, 4)
    assert len(read_dataset(out).cases) == 6  # ... and keeps the journalled cases
    make_named_set(run, 0, "toy", 8, progress=False)  # resume and grow
    assert _digest(out) == _digest(ref)  # the same bytes as one go
    assert (
        make_named_set(run, 0, "toy", 2, progress=False) == out
        and len(read_dataset(out).cases) == 8
    )
    register_set("toy", "toy", "mp", False, "test_set_writer:make_toy_set", {"scale": 5})
    with pytest.raises(StaleOutputError, match=r"scale: 3 -> 5"):
        make_named_set(run, 0, "toy", 9, progress=False)
    assert _digest(out) == _digest(ref)  # nothing changed
