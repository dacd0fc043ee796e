"""Left/right that survives augmentation (classify.lr_aware) and hands at their joints'
resolution (classify.per_hand): dataset.json mirrored_views / mirror_pairs, the canonical
layout, label-aware flips, per-hand crops reassembled to the image's labels."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers import CLASSIFIER_FEW_STEPS, CLASSIFIER_TINY, overrides, signal_imageset, tiny_config
from typer.testing import CliRunner

from jointaug.classify.checkpoint import load_tensors
from jointaug.classify.data import ImageSet, fold_part, input_layout, load_images
from jointaug.classify.model import HandsNet, assemble_hands, build_model
from jointaug.classify.predict import load_classifier, predict_files
from jointaug.classify.train import FitOptions, fit
from jointaug.classify.transforms import (
    InputLayout,
    PaperAugment,
    join_hands,
    prepare_input,
    split_hands,
)
from jointaug.cli import app
from jointaug.config import ClassifyConfig
from jointaug.dataset.format import HAND_LABELS, DatasetError, DatasetMeta, read_dataset
from jointaug.dataset.mirror import lr_permutation, mirror_pairs
from jointaug.dataset.phantom import write_phantom
from jointaug.dataset.splits import Fold
from jointaug.dataset.validate import validate_dataset
from jointaug.keys import classify_settings, settings_key

FLIP_ONLY = dict(rotate_deg=0.0, flip_prob=1.0, crop_prob=0.0, pad_px=0)


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    return write_phantom(
        tmp_path_factory.mktemp("ph") / "phantom", patients=9, size=64, progress=False
    )


def _side_image(n: int = 3, size: int = 16) -> torch.Tensor:
    """Images bright in their left half only."""
    x = torch.zeros(n, 1, size, size)
    x[..., : size // 2] = 1.0
    return x


# ---- dataset.json keys --------------------------------------------------------------


def test_phantom_declares_its_layout_and_validates(phantom):
    meta = json.loads((phantom.root / "dataset.json").read_text())
    assert meta["mirrored_views"] == ["dorsal"]
    assert meta["mirror_pairs"][0] == ["R_wrist", "L_wrist"] and len(meta["mirror_pairs"]) == 15
    assert not validate_dataset(phantom.root).errors


def test_an_old_phantom_gets_the_declaration(tmp_path):
    ds = write_phantom(tmp_path / "p", patients=2, size=32, progress=False)
    path = ds.root / "dataset.json"
    obj = json.loads(path.read_text())
    for k in ("mirrored_views", "mirror_pairs"):
        del obj[k]
    path.write_text(json.dumps(obj))
    ds = write_phantom(tmp_path / "p", patients=2, size=32, progress=False)
    assert read_dataset(ds.root).meta.extra["mirrored_views"] == ["dorsal"]


def test_pairs_from_groups_declared_or_an_error_naming_the_key():
    meta = DatasetMeta.hands("h")
    pairs = mirror_pairs(meta)
    assert pairs[0] == ("R_wrist", "L_wrist") and len(pairs) == 15
    perm = lr_permutation(HAND_LABELS, pairs)
    assert list(perm[:2]) == [15, 16] and np.array_equal(perm[perm], np.arange(30))
    odd = DatasetMeta("x", ["a", "b", "c"], {"one": ["a", "b"], "two": ["c"]})
    with pytest.raises(DatasetError, match="mirror_pairs"):
        mirror_pairs(odd)


def test_made_up_joint_names_and_unpaired_labels():
    meta = DatasetMeta(
        "user",
        ["knee_l", "mid", "knee_r", "ankle_r", "ankle_l"],
        {"all": ["knee_l", "mid", "knee_r", "ankle_r", "ankle_l"]},
        extra={"mirror_pairs": [["knee_r", "knee_l"], ["ankle_r", "ankle_l"]]},
    )
    perm = lr_permutation(meta.labels, mirror_pairs(meta))
    assert list(perm) == [2, 1, 0, 4, 3]  # "mid" maps to itself


def test_malformed_layout_keys_are_refused(tmp_path, phantom):
    import shutil

    root = tmp_path / "bad"
    shutil.copytree(phantom.root, root)
    obj = json.loads((root / "dataset.json").read_text())
    obj["mirror_pairs"] = [["R_wrist", "nope"], ["R_wrist", "L_mcp1"]]
    (root / "dataset.json").write_text(json.dumps(obj))
    with pytest.raises(DatasetError, match="unknown label 'nope'"):
        read_dataset(root)
    messages = " ".join(i.message for i in validate_dataset(root).errors)
    assert "'R_wrist' twice" in messages


# ---- label-aware flips ----------------------------------------------------------------


def test_flip_and_permute_twice_is_the_identity():
    layout = InputLayout(label_perm=(2, 3, 0, 1))
    aug = PaperAugment(**FLIP_ONLY)
    x, y = torch.rand(4, 1, 16, 16), torch.rand(4, 4)
    g = torch.Generator().manual_seed(0)
    x1, y1 = aug.batch(x, y, g, layout)
    assert torch.equal(y1, y[:, [2, 3, 0, 1]])
    x2, y2 = aug.batch(x1, y1, g, layout)
    assert torch.allclose(x2, x, atol=1e-5) and torch.equal(y2, y)


def test_a_flipped_image_carries_the_other_sides_labels():
    """Bright left half, R labels 1: flipped, the bright half is the right one, and the
    labels say L (the canonical layout: R on the image's left)."""
    layout = InputLayout(label_perm=(2, 3, 0, 1))
    aug = PaperAugment(rotate_deg=0.0, flip_prob=0.5, crop_prob=0.0, pad_px=0)
    x, y = _side_image(64), torch.tensor([[1.0, 1.0, 0.0, 0.0]]).repeat(64, 1)
    out, lab = aug.batch(x, y, torch.Generator().manual_seed(1), layout)
    left_bright = out[:, 0, :, :8].mean((1, 2)) > 0.5
    assert (~left_bright).any() and left_bright.any()
    assert torch.equal(lab[:, 0] == 1, left_bright)  # R_a positive <=> bright on the left
    assert torch.equal(lab[:, 2] == 1, ~left_bright)


def test_off_the_augmentation_draws_and_returns_exactly_as_before():
    aug = PaperAugment(rotate_deg=30.0, flip_prob=0.5, crop_prob=0.5, pad_px=4)
    x, y = torch.rand(8, 1, 16, 16), torch.rand(8, 4)
    ga, gb = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    xa, ya = aug.batch(x, y, ga, None)
    assert torch.equal(xa, aug(x, gb)) and ya is y
    assert torch.equal(ga.get_state(), gb.get_state())


def test_settings_key_of_existing_classifiers_unchanged():
    cfg = ClassifyConfig()
    # recorded by classifiers before lr_aware / per_hand existed (commit de9e191)
    assert settings_key(classify_settings(cfg)) == "1ee5ddef129d3720"
    assert "lr_aware" not in classify_settings(cfg)
    on = classify_settings(cfg.model_copy(update={"lr_aware": True}))
    assert on["lr_aware"] is True and settings_key(on) != "1ee5ddef129d3720"


# ---- the canonical layout on the phantom -------------------------------------------------


def _case(ds, view, visit_case="p001"):
    return ds.case(f"{visit_case}_{view}")


def test_the_canonical_dorsal_view_is_the_palmar_view(phantom):
    layout = input_layout(phantom, ClassifyConfig(lr_aware=True))
    assert layout.mirrored_views == ("dorsal",)
    pal, dor = _case(phantom, "palmar"), _case(phantom, "dorsal")
    assert np.array_equal(phantom.regions(dor)[:, ::-1], phantom.regions(pal))
    a = prepare_input(phantom.image(pal), 32, layout, "palmar")
    b = prepare_input(phantom.image(dor), 32, layout, "dorsal")
    raw = prepare_input(phantom.image(dor), 32)
    corr = [np.corrcoef(a.ravel(), z.ravel())[0, 1] for z in (b, raw)]
    assert corr[0] > 0.9 > corr[1]


def test_flip_and_permute_equals_the_canonical_layout_on_the_phantom(phantom):
    """The palmar region map flipped with its ids permuted puts every joint on the side
    where the canonical layout has it (and the dorsal view's map, canonicalised, is it)."""
    layout = input_layout(phantom, ClassifyConfig(lr_aware=True))
    perm = np.array(layout.label_perm)
    regions = phantom.regions(_case(phantom, "palmar"))
    flipped = regions[:, ::-1]
    relabelled = np.where(flipped > 0, perm[np.maximum(flipped, 1) - 1] + 1, 0)
    for i in range(1, 31):
        side = np.nonzero(regions == i)[1].mean() < 32
        assert (np.nonzero(relabelled == i)[1].mean() < 32) == side
    # the same through PaperAugment: the label vector of each region follows it
    x = torch.from_numpy(regions.astype(np.float32))[None, None]
    y = torch.from_numpy(np.eye(30, dtype=np.float32))[:1]  # R_wrist positive
    aug = PaperAugment(**FLIP_ONLY)
    out, lab = aug.batch(x, y, torch.Generator(), InputLayout(label_perm=tuple(perm)))
    assert lab[0, 15] == 1 and lab[0, 0] == 0  # now L_wrist, on the image's right
    wrist = np.nonzero(out[0, 0].flip(0).numpy() == 1)[1]  # undo the vertical flip
    assert wrist.mean() > 32


def test_lr_aware_loaders_canonicalise_val_and_test(phantom):
    layout = input_layout(phantom, ClassifyConfig(lr_aware=True))
    fold = Fold(0, phantom.patients()[:5], phantom.patients()[5:7], phantom.patients()[7:])
    plain = fold_part(phantom, fold, "test", 32)
    canon = fold_part(phantom, fold, "test", 32, layout=layout)
    assert canon.layout is layout
    for i, cid in enumerate(canon.case_ids):
        same = np.array_equal(plain.images[i], canon.images[i])
        assert same == (not cid.endswith("dorsal"))
        if cid.endswith("dorsal"):
            assert np.array_equal(plain.images[i, 0, :, ::-1], canon.images[i, 0])


def test_a_dataset_without_the_keys_is_left_as_is(tiny_dataset):
    ds = read_dataset(tiny_dataset)
    assert input_layout(ds, ClassifyConfig()) is None
    with pytest.raises(DatasetError, match="mirror_pairs"):
        input_layout(ds, ClassifyConfig(lr_aware=True))
    meta = DatasetMeta.hands("h")
    ds.meta.groups = {"right": ds.labels[:1], "left": ds.labels[1:2], "x": ds.labels[2:]}
    ds.meta.extra["mirror_pairs"] = [ds.labels[:2]]
    layout = input_layout(ds, ClassifyConfig(lr_aware=True))
    assert layout.mirrored_views == () and meta.labels  # no view is flipped
    a = load_images(ds, ds.cases, 16, "x")
    b = load_images(ds, ds.cases, 16, "x", layout=layout)
    assert np.array_equal(a.images, b.images)


def test_lr_aware_training_runs_and_records_its_layout(tmp_path):
    data = signal_imageset(np.random.default_rng(0), 32)
    layout = InputLayout(label_perm=(2, 3, 0, 1))
    data.layout = layout
    cfg = tiny_config(lr_aware=True, max_samples=64, patience_samples=64)
    fit(tmp_path, data, data, cfg, 0, ["R_a", "R_b", "L_a", "L_b"], FitOptions(progress=False))
    _, labels, arch = load_classifier(tmp_path / "model.safetensors")
    assert InputLayout.from_json(arch["layout"]) == layout


# ---- per hand -------------------------------------------------------------------------


def test_split_and_join_hands_are_inverse_and_mirror_the_right_half():
    x = torch.arange(2 * 4 * 8, dtype=torch.float32).reshape(2, 1, 4, 8)
    crops = split_hands(x)
    assert crops.shape == (4, 1, 4, 4)
    assert torch.equal(crops[0], x[0, :, :, :4]) and torch.equal(crops[1], x[0, :, :, 4:].flip(-1))
    assert torch.equal(crops[3], x[1, :, :, 4:].flip(-1))
    assert torch.equal(join_hands(crops), x)


class _Probe(torch.nn.Module):
    """Output k of a crop = its pixel (0, k): tells which crop fed which output."""

    def forward(self, x):
        return x[:, 0, 0, :3]


def test_reassembly_puts_each_crops_outputs_on_its_own_labels():
    slots = torch.tensor([[0, 1, 2], [3, 4, 5]])  # R_a R_b R_c | L_a L_b L_c
    net = HandsNet(_Probe(), 6).set_slots(slots)
    x = torch.zeros(2, 1, 4, 8)
    x[:, 0, 0, :3] = torch.tensor([10.0, 11, 12])  # left half: R outputs 10, 11, 12
    x[:, 0, 0, 5:] = torch.tensor([22.0, 21, 20])  # right half, mirrored: 20, 21, 22
    x[1] *= 2
    out = net(x)
    assert out.tolist() == [[10, 11, 12, 20, 21, 22], [20, 22, 24, 40, 42, 44]]
    # an arbitrary label order
    perm = assemble_hands(torch.arange(6.0).reshape(2, 3), torch.tensor([[5, 0, 3], [1, 4, 2]]), 6)
    assert perm.tolist() == [[1, 3, 5, 2, 4, 0]]


def test_per_hand_input_is_both_halves_at_twice_the_width(phantom):
    layout = input_layout(phantom, ClassifyConfig(per_hand=True))
    assert layout.hand_slots == (tuple(range(15)), tuple(range(15, 30)))
    img = prepare_input(phantom.image(_case(phantom, "palmar")), 16, layout, "palmar")
    assert img.shape == (16, 32)
    model = build_model(tiny_config(per_hand=True, image_size=16), 30, layout=layout)
    assert model(torch.from_numpy(img)[None, None]).shape == (1, 30)


def test_per_hand_refuses_pairs_on_the_wrong_side(phantom, tmp_path):
    import shutil

    root = tmp_path / "swapped"
    shutil.copytree(phantom.root, root)
    obj = json.loads((root / "dataset.json").read_text())
    obj["mirror_pairs"] = [[b, a] for a, b in obj["mirror_pairs"]]
    (root / "dataset.json").write_text(json.dumps(obj))
    with pytest.raises(DatasetError, match="other half"):
        input_layout(read_dataset(root), ClassifyConfig(per_hand=True))


def test_per_hand_end_to_end_through_jointaug_run(phantom, tmp_path):
    out = tmp_path / "run"
    sets = overrides(
        CLASSIFIER_TINY,
        CLASSIFIER_FEW_STEPS,
        ["split.folds=3", "classify.seeds=[0]", "classify.per_hand=true", "device=cpu"],
    )
    res = CliRunner().invoke(
        app,
        [
            "run",
            "--dataset",
            str(phantom.root),
            "--profile",
            "demo",
            "--methods",
            "baseline",
            "--out",
            str(out),
            "--folds",
            "0",
            "--no-progress",
            *[a for s in sets for a in ("--set", s)],
        ],
    )
    assert res.exit_code == 0, res.output
    (seed_dir,) = out.glob("fold_0/classify/*/seed_0")
    probs = np.load(seed_dir / "test_probs.npy")
    ids = json.loads((seed_dir / "test_case_ids.json").read_text())
    assert probs.shape == (len(ids), 30) and len(ids) > 0
    assert np.all((probs >= 0) & (probs <= 1))
    tensors, meta = load_tensors(seed_dir / "model.safetensors")
    assert json.loads(meta["arch"])["per_hand"] is True and "slots" in tensors
    # predicting the same files gives the same probabilities (canonicalised by view)
    paths = [phantom.path(phantom.case(c).image) for c in ids]
    views = [phantom.case(c).view for c in ids]
    p, labels = predict_files([seed_dir / "model.safetensors"], paths, views=views)
    assert labels == list(HAND_LABELS)
    np.testing.assert_allclose(p, probs, atol=1e-3)  # training holds images in float16


@pytest.mark.parametrize("size", [96, 128])
def test_whole_image_classifier_at_96_and_128_px(tmp_path, size):
    rng = np.random.default_rng(0)
    data = signal_imageset(rng, 8, image_size=size)
    assert data.images.shape[-2:] == (size, size)
    cfg = tiny_config(image_size=size, block_config=[1, 1], max_samples=16, patience_samples=16)
    res = fit(
        tmp_path, data, data, cfg, 0, ["R_a", "R_b", "L_a", "L_b"], FitOptions(progress=False)
    )
    assert res.samples >= 16
    model, _, arch = load_classifier(tmp_path / "model.safetensors")
    assert arch["image_size"] == size
    assert model(torch.from_numpy(data.images[:2]).float()).shape == (2, 4)


def test_imageset_concat_keeps_the_layout():
    layout = InputLayout(label_perm=(1, 0))
    a = ImageSet(np.zeros((1, 1, 4, 4)), np.zeros((1, 2)), ["a"], ["train"], layout)
    assert ImageSet.concat([a, a]).layout is layout


@pytest.mark.parametrize("per_hand", [False, True])
def test_explanations_follow_the_models_layout(phantom, tmp_path, per_hand):
    """Maps are made on the input the model was trained on and returned in the file's own
    orientation: a dorsal file's maps are the flipped maps of its palmar-layout copy; per
    hand each label's map lies on its own hand's half only (the dorsal file's are mirrored
    with it)."""
    from jointaug.classify.checkpoint import save_tensors
    from jointaug.classify.explain import explain_files
    from jointaug.classify.model import model_metadata
    from jointaug.dataset.io import read_image, write_counts_png

    cfg = tiny_config(lr_aware=True, per_hand=per_hand)
    layout = input_layout(phantom, cfg)
    model = build_model(cfg, len(phantom.labels), seed=0, layout=layout).eval()
    path = tmp_path / "model.safetensors"
    save_tensors(path, model.state_dict(), model_metadata(cfg, phantom.labels, layout))
    dorsal = next(c for c in phantom.classification_cases() if c.view == "dorsal")
    flipped = tmp_path / "flipped.png"
    write_counts_png(flipped, read_image(phantom.path(dorsal.image))[:, ::-1].copy())
    a, info = explain_files([path], [phantom.path(dorsal.image)], views=["dorsal"])
    b, _ = explain_files([path], [flipped], views=["palmar"])
    s = cfg.image_size
    assert a.shape == (1, len(phantom.labels), s, 2 * s if per_hand else s)
    np.testing.assert_allclose(a[0], b[0][..., ::-1], atol=1e-5)
    if per_hand:  # in the canonical layout (b): the first slots' hand on the left half
        slots = model.slots.numpy()
        assert not b[0][slots[0]][..., s:].any() and not b[0][slots[1]][..., :s].any()
        assert b[0][slots[0]][..., :s].any() and b[0][slots[1]][..., s:].any()
