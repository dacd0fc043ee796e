"""Image facts and the predict warnings: size, bit depth, value range, modality (no torch)."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import write_dicom
from PIL import Image

from jointaug.dataset.facts import compare, data_facts, image_facts
from jointaug.dataset.io import write_counts_png


@pytest.fixture
def train(tmp_path):
    rng = np.random.default_rng(0)
    paths = []
    for i in range(6):
        lam = np.full((64, 64), 3.0)
        lam[20:30, 20:30] = 40 + 10 * i
        paths.append(tmp_path / f"t{i}.png")
        write_counts_png(paths[-1], rng.poisson(lam))
    return data_facts(paths, modality="NM"), rng


def test_training_summary(train):
    facts, _ = train
    assert facts.n == 6 and facts.shapes == [(64, 64)] and facts.bits == [16] and facts.integer
    lo, hi = facts.peak_range
    assert 40 < lo < hi < 140 and facts.modality == "NM"


def test_an_image_like_the_training_data_gets_no_warning(train, tmp_path):
    facts, rng = train
    write_counts_png(tmp_path / "new.png", rng.poisson(np.full((64, 64), 20.0)))
    write_dicom(tmp_path / "new.dcm", rng.poisson(np.full((64, 64), 30.0)))
    assert compare(image_facts(tmp_path / "new.png"), facts) == []
    assert compare(image_facts(tmp_path / "new.dcm"), facts) == []


def test_a_display_export_is_flagged_8_bit_and_clipped(train, tmp_path):
    facts, rng = train
    counts = rng.poisson(np.full((64, 64), 30.0)).astype(float)
    shown = np.clip(counts * 10, 0, 255).astype(np.uint8)  # windowed for display, saturated
    Image.fromarray(shown).save(tmp_path / "screen.png")
    notes = compare(image_facts(tmp_path / "screen.png"), facts)
    assert len(notes) == 2, notes
    assert notes[0].startswith("8-bit pixels, the training images were 16-bit")
    assert "sit at the 8-bit maximum 255" in notes[1]


def test_size_float_and_range_are_flagged(train, tmp_path):
    facts, rng = train
    write_counts_png(tmp_path / "big.png", rng.poisson(np.full((128, 128), 20.0)))
    assert [n.split(" px")[0] for n in compare(image_facts(tmp_path / "big.png"), facts)] == [
        "size 128x128"
    ]
    np.save(tmp_path / "norm.npy", rng.random((64, 64)).astype(np.float32))  # normalised to [0, 1]
    notes = compare(image_facts(tmp_path / "norm.npy"), facts)
    assert [n.split(",")[0].split(" ")[0] for n in notes] == ["floating-point", "pixel", "peak"], (
        notes
    )


def test_another_modality_is_flagged(train, tmp_path):
    facts, rng = train
    write_dicom(tmp_path / "ct.dcm", rng.poisson(np.full((64, 64), 30.0)), modality="CT")
    notes = compare(image_facts(tmp_path / "ct.dcm"), facts)
    assert notes == ["DICOM Modality 'CT', the training data are 'NM'"]


def test_the_training_sample_is_small_and_even(train, tmp_path):
    _, rng = train
    paths = []
    for i in range(40):
        paths.append(tmp_path / f"s{i}.png")
        write_counts_png(paths[-1], np.full((8, 8), i))
    facts = data_facts(paths, max_images=5)
    assert facts.n == 5 and facts.peak_range == (0.0, 39.0)  # first and last included
