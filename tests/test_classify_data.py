"""Mixing specs, augmentation-set prefixes, the training mix, and method names."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import LABELS, write_signal_dataset, write_signal_set

from jointaug.classify.data import (
    ImageCache,
    MixError,
    allocate,
    fold_part,
    parse_mix,
    set_prefix,
    training_mix,
)
from jointaug.dataset.format import DatasetMeta, read_dataset
from jointaug.dataset.splits import make_splits
from jointaug.dataset.writer import DatasetWriter
from jointaug.experiments.methods import mixture_name, parse_methods, required_sets, resolve_method


def test_parse_mix_accepts_specs():
    assert parse_mix("mp-perlin:0.8,11k-perlin:0.2") == [("mp-perlin", 0.8), ("11k-perlin", 0.2)]
    assert parse_mix(" mp ") == [("mp", 1.0)]
    assert parse_mix("") == []
    assert parse_mix("a:0.5, b:0.25, c:0.25") == [("a", 0.5), ("b", 0.25), ("c", 0.25)]


@pytest.mark.parametrize(
    "spec,message",
    [
        ("mp:0.8,11k:0.1", "add up to 1"),
        ("mp:abc", "not a number"),
        ("mp:0", "must be in"),
        ("mp:1.5", "must be in"),
        ("mp:0.5,mp:0.5", "named twice"),
        ("mp,11k", "name:share"),
        ("../x:1", "folder name"),
        ("mp:nan", "must be in"),
    ],
)
def test_parse_mix_errors_are_clear(spec, message):
    with pytest.raises(MixError, match=message):
        parse_mix(spec)


def test_allocate_rounds_to_exact_total():
    assert allocate([("a", 0.8), ("b", 0.2)], 8192) == [("a", 6554), ("b", 1638)]
    for n in (0, 1, 7, 100, 8191):
        counts = allocate([("a", 1 / 3), ("b", 1 / 3), ("c", 1 / 3)], n)
        assert sum(c for _, c in counts) == n
        assert max(c for _, c in counts) - min(c for _, c in counts) <= 1


def test_set_prefix_takes_the_first_labelled_cases(tmp_path):
    root = write_signal_set(tmp_path / "mp", 6, size=16)
    ds, cases = set_prefix(root, 4, LABELS)
    assert [c.case_id for c in cases] == ["s0000", "s0001", "s0002", "s0003"]
    with pytest.raises(MixError, match="has 6 labelled images; the mix needs 9"):
        set_prefix(root, 9, LABELS)
    with pytest.raises(MixError, match="missing or unfinished"):
        set_prefix(tmp_path / "nope", 1, LABELS)
    with pytest.raises(MixError, match="labels"):
        set_prefix(root, 1, ["x", "y"])


def test_training_mix_adds_set_prefixes_with_labels_in_dataset_order(tmp_path):
    ds = read_dataset(write_signal_dataset(tmp_path / "ds", n_patients=10, size=32))
    fold = make_splits(ds, 5, 0).fold(0)
    a = write_signal_set(tmp_path / "a", 10, size=64, seed=3)
    # set b stores its labels in reverse order: columns must be matched by name
    rng = np.random.default_rng(4)
    meta = DatasetMeta(name="b", labels=LABELS[::-1], groups={"all": LABELS[::-1]})
    b_labels = (rng.random((5, 4)) < 0.5).astype(np.float32)
    with DatasetWriter(tmp_path / "b", meta) as w:
        for i in range(5):
            w.add(f"b{i}", f"b{i}", "palmar", rng.poisson(5, (32, 32)), labels=b_labels[i])
    cache = ImageCache()
    mix = training_mix(
        ds, fold, [("a", 0.5), ("b", 0.5)], 8, {"a": a, "b": tmp_path / "b"}, 16, cache
    )
    train = fold_part(ds, fold, "train", 16, cache)
    assert len(mix) == len(train) + 8
    assert mix.images.shape == (len(mix), 1, 16, 16) and mix.images.dtype == np.float16
    assert mix.sources.count("a") == 4 and mix.sources.count("b") == 4
    assert mix.case_ids[len(train)] == "a/s0000"
    np.testing.assert_array_equal(mix.labels[-4:], b_labels[:4, ::-1])
    # train part: classification views of the fold's train patients only, no obliques
    assert all(c.split("_")[1] in ("palmar", "dorsal") for c in train.case_ids)
    assert {c.split("_")[0] for c in train.case_ids} == set(fold.train)


def test_methods_map_to_mixes():
    assert resolve_method("baseline").mix == ()
    assert resolve_method("mp").mix == (("mp", 1.0),)
    assert resolve_method("11k-perlin").mix == (("11k-perlin", 1.0),)
    m = resolve_method(mixture_name(80))
    assert m.name == "mp80-11kp20" and m.mix == (("mp-perlin", 0.8), ("11k-perlin", 0.2))
    assert (
        m.dir_name(8192) == "mp80-11kp20_8192"
        and resolve_method("baseline").dir_name(0) == "baseline"
    )
    assert resolve_method("focal").loss == "focal" and not resolve_method("tuned_threshold").trains
    assert resolve_method("x:0.5,y:0.5").mix == (("x", 0.5), ("y", 0.5))
    with pytest.raises(ValueError, match="unknown method"):
        resolve_method("resnet")
    with pytest.raises(ValueError, match="add up to 100"):
        resolve_method("mp70-11kp20")


def test_parse_methods_keeps_mix_specs_together_and_required_sets():
    ms = parse_methods("baseline,mp:0.5,11k:0.5,tuned_threshold,baseline")
    assert [m.name for m in ms] == ["baseline", "mp:0.5+11k:0.5", "tuned_threshold"]
    need = required_sets(parse_methods("baseline,mp-perlin,mp80-11kp20"), [100, 8192])
    assert need == {"mp-perlin": 8192, "11k-perlin": 1638}
