import json

import numpy as np
import pytest
from helpers import write_tiny_dataset

from jointaug.dataset.format import DatasetError, read_dataset
from jointaug.dataset.splits import make_splits, read_splits, validate_splits, write_splits


@pytest.fixture
def ds20(tmp_path):
    return read_dataset(write_tiny_dataset(tmp_path / "d", n_patients=20, size=24, seed=3))


def test_folds_are_60_20_20_and_patients_never_cross(ds20):
    s = make_splits(ds20, k=5, seed=0)
    all_patients = set(ds20.patients())
    assert sorted(p for part in s.parts for p in part) == sorted(all_patients)
    assert [len(p) for p in s.parts] == [4] * 5
    for f in s.folds:
        train, val, test = map(set, (f.train, f.val, f.test))
        assert not (train & val) and not (train & test) and not (val & test)
        assert train | val | test == all_patients
        assert (len(train), len(val), len(test)) == (12, 4, 4)
        assert test == set(s.parts[f.fold]) and val == set(s.parts[(f.fold + 1) % 5])
    # every patient is a test patient exactly once
    tests = [p for f in s.folds for p in f.test]
    assert sorted(tests) == sorted(all_patients)


def test_deterministic_and_seed_dependent(ds20):
    assert make_splits(ds20, 5, 0).parts == make_splits(ds20, 5, 0).parts
    assert make_splits(ds20, 5, 0).parts != make_splits(ds20, 5, 1).parts


def test_label_frequency_balanced_better_than_random(ds20):
    y = {p: np.zeros(3) for p in ds20.patients()}
    for c in ds20.classification_cases():
        y[c.patient_id] += c.labels

    def spread(parts):
        per = np.array([sum(y[p] for p in part) for part in parts])
        return float(per.std(axis=0).sum())

    ours = spread(make_splits(ds20, 5, 0).parts)
    rng = np.random.default_rng(0)
    randoms = []
    for _ in range(50):
        perm = list(rng.permutation(ds20.patients()))
        randoms.append(spread([perm[i::5] for i in range(5)]))
    assert ours <= np.median(randoms)


def test_round_trip_and_leak_detection(ds20, tmp_path):
    s = make_splits(ds20, 5, 0)
    path = tmp_path / "splits.json"
    write_splits(s, path)
    assert read_splits(path, ds20).folds == s.folds
    obj = json.loads(path.read_text())
    obj["folds"][2]["val"].append(obj["folds"][2]["test"][0])  # leak a test patient into val
    path.write_text(json.dumps(obj))
    with pytest.raises(DatasetError, match="fold 2: patients in both val and test"):
        read_splits(path, ds20)


def test_unknown_and_missing_patients(ds20):
    s = make_splits(ds20, 5, 0)
    f = s.folds[0]
    s.folds[0] = type(f)(0, f.train[1:] + ("ghost",), f.val, f.test)
    problems = validate_splits(s, ds20)
    assert any("unknown patients ['ghost']" in p for p in problems)
    assert any("patients in no part" in p for p in problems)


def test_too_few_patients(tmp_path):
    ds = read_dataset(write_tiny_dataset(tmp_path / "d", n_patients=3))
    with pytest.raises(DatasetError, match="3 patients"):
        make_splits(ds, 5, 0)
