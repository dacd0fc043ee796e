"""Label Studio import: the brush RLE codec, the three label kinds, PNG region maps."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from jointaug.dataset.format import HAND_JOINTS
from jointaug.dataset.io import write_label_png
from jointaug.natural.labelstudio import (
    JOINT_INDEX,
    LabelImportError,
    PhotoLabels,
    joint_name,
    match_labels,
    polygon_mask,
    read_labels,
)
from jointaug.natural.regions import JOINT_RADIUS_FRACTION, regions_from_labels
from jointaug.natural.rle import RleError, brush_to_mask, decode_rle, encode_rle, mask_to_brush
from jointaug.natural.standin_folder import TRUTH_FILE, write_standin


def test_rle_hand_computed_example():
    # One 1x1 brush pixel, RGBA all 255: four values 255, one run.
    #   num = 4                     -> 00000000 00000000 00000000 00000100
    #   word_size - 1 = 7           -> 00111
    #   rle_sizes - 1 = 2, 3, 7, 15 -> 0010 0011 0111 1111
    #   run: x=1, k=00, count-1=3 in 3 bits, value 255
    #                               -> 1 00 011 11111111
    # bits after the 32-bit count: 00111001 00011011 11111100 01111111 111(00000 pad)
    rle = [0, 0, 0, 4, 0b00111001, 0b00011011, 0b11111100, 0b01111111, 0b11100000]
    assert decode_rle(rle).tolist() == [255, 255, 255, 255]
    assert encode_rle(np.array([255, 255, 255, 255])) == rle
    assert brush_to_mask(rle, 1, 1).tolist() == [[True]]


def test_rle_literal_block_decodes():
    # num=3, word 8, sizes (3,4,8,16); one literal block x=0, k=00, count-1=2, values 1, 2, 3
    bits = (
        f"{3:032b}"
        + "00111"
        + "0010001101111111"
        + "0"
        + "00"
        + "010"
        + "00000001"
        + "00000010"
        + "00000011"
    )
    bits += "0" * (-len(bits) % 8)
    rle = [int(bits[i : i + 8], 2) for i in range(0, len(bits), 8)]
    assert decode_rle(rle).tolist() == [1, 2, 3]


@pytest.mark.parametrize("seed", [0, 1])
def test_rle_round_trip_random_and_long_runs(seed):
    rng = np.random.default_rng(seed)
    values = rng.integers(0, 4, 3000).astype(np.uint8)
    values[100:1200] = 7  # a run needing the 16-bit count
    values = np.concatenate([values, np.full(140_000, 9, np.uint8)])  # longer than 2**16
    assert np.array_equal(decode_rle(encode_rle(values)), values)
    mask = rng.random((37, 53)) > 0.6
    assert np.array_equal(brush_to_mask(mask_to_brush(mask), 53, 37), mask)


def test_rle_errors():
    with pytest.raises(RleError, match="ends early"):
        decode_rle([0, 0, 0, 4, 57])
    with pytest.raises(RleError, match="expected 2x2x4"):
        brush_to_mask(mask_to_brush(np.ones((1, 1), bool)), 2, 2)
    with pytest.raises(RleError, match="byte values"):
        decode_rle([0, 300])


def test_joint_names_are_normalised():
    assert joint_name("MCP2", "x") == "mcp2"
    assert joint_name("R_dip5", "x") == "dip5"
    assert joint_name(" left-Wrist ", "x") == "wrist"
    with pytest.raises(LabelImportError, match="task 3: label 'knuckle'"):
        joint_name("knuckle", "task 3")


def test_polygon_in_percent_fills_the_right_pixels():
    m = polygon_mask(np.array([[25, 25], [75, 25], [75, 75], [25, 75]]), 40, 20)
    rr, cc = np.nonzero(m)
    assert (rr.min(), rr.max(), cc.min(), cc.max()) == (5, 14, 10, 29)
    assert m.sum() == 10 * 20


def _result(kind, value, w=40, h=20):
    return {"type": kind, "original_width": w, "original_height": h, "value": value}


def test_export_with_all_three_kinds(tmp_path):
    brush = np.zeros((20, 40), bool)
    brush[2:6, 30:36] = True
    tasks = [
        {
            "id": 7,
            "data": {"image": "/data/upload/3/8f3c2a1b-Hand_0000002.jpg"},
            "annotations": [
                {
                    "was_cancelled": True,
                    "result": [
                        _result("keypointlabels", {"x": 1, "y": 1, "keypointlabels": ["mcp3"]})
                    ],
                },
                {
                    "result": [
                        _result(
                            "keypointlabels",
                            {"x": 50.0, "y": 50.0, "width": 1, "keypointlabels": ["MCP3"]},
                        ),
                        _result(
                            "brushlabels",
                            {
                                "format": "rle",
                                "rle": mask_to_brush(brush),
                                "brushlabels": ["wrist"],
                            },
                        ),
                        _result(
                            "polygonlabels",
                            {
                                "points": [[0, 0], [25, 0], [25, 50], [0, 50]],
                                "polygonlabels": ["dip5"],
                            },
                        ),
                    ]
                },
            ],
        },
        {"id": 8, "data": {"image": "x.jpg"}, "annotations": []},
    ]
    path = tmp_path / "export.json"
    path.write_text(json.dumps(tasks))
    (lab,) = read_labels(path)
    assert lab.source == "8f3c2a1b-Hand_0000002.jpg"
    assert lab.kinds == {"keypoint", "brush", "polygon"}
    assert lab.keypoints == {"mcp3": (0.5, 0.5)}  # the cancelled annotation is skipped
    assert np.array_equal(lab.masks["wrist"], brush)
    assert lab.masks["dip5"].sum() == 10 * 10
    # rasterised at twice the labelling size, without a hand mask
    reg = regions_from_labels(lab, (40, 80))
    assert (reg == JOINT_INDEX["wrist"]).sum() == 4 * brush.sum()
    assert (reg == JOINT_INDEX["dip5"]).sum() == 20 * 20
    rr, cc = np.nonzero(reg == JOINT_INDEX["mcp3"])
    assert abs(rr.mean() - 19.5) < 0.6 and abs(cc.mean() - 39.5) < 0.6
    # matched to the photo name despite the upload prefix
    assert set(match_labels([lab], ["Hand_0000001.jpg", "Hand_0000002.jpg"])) == {
        "Hand_0000002.jpg"
    }


def test_bad_exports_name_task_and_result(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(
        json.dumps(
            [
                {
                    "data": {"image": "a.jpg"},
                    "annotations": [
                        {
                            "result": [
                                _result(
                                    "polygonlabels",
                                    {"points": [[0, 0], [1, 1]], "polygonlabels": ["pip2"]},
                                )
                            ]
                        }
                    ],
                }
            ]
        )
    )
    with pytest.raises(LabelImportError, match=r"task 0 \(a.jpg\) result 0: a polygon needs"):
        read_labels(path)
    path.write_text("{not json")
    with pytest.raises(LabelImportError, match="not valid JSON"):
        read_labels(path)
    path.write_text(json.dumps([{"data": {}, "annotations": []}]))
    with pytest.raises(LabelImportError, match="no data.image"):
        read_labels(path)


def test_keypoint_discs_scale_with_hand_and_joint():
    hand = np.zeros((200, 200), bool)
    hand[20:190, 40:160] = True  # palm inscribed radius 60
    lab = PhotoLabels(
        "p.jpg", keypoints={"wrist": (0.5, 0.8), "mcp3": (0.5, 0.5), "dip3": (0.5, 0.2)}
    )
    reg = regions_from_labels(lab, (200, 200), hand)
    areas = {j: (reg == JOINT_INDEX[j]).sum() for j in ("wrist", "mcp3", "dip3")}
    for j, a in areas.items():
        r = JOINT_RADIUS_FRACTION[j] * 60.5
        assert abs(a - np.pi * r * r) / (np.pi * r * r) < 0.1, j
    assert areas["wrist"] > areas["mcp3"] > areas["dip3"]
    small = regions_from_labels(lab, (200, 200), np.pad(hand[::2, ::2], ((0, 100), (0, 100))))
    assert (small == JOINT_INDEX["mcp3"]).sum() < areas["mcp3"]  # smaller hand, smaller discs


def test_region_png_folder(tmp_path):
    reg = np.zeros((10, 12), np.uint8)
    reg[1:3, 1:3] = JOINT_INDEX["pip4"]
    reg[5:9, 5:9] = JOINT_INDEX["wrist"]
    write_label_png(tmp_path / "regions" / "Hand_0000009.png", reg)
    (lab,) = read_labels(tmp_path / "regions")
    assert set(lab.masks) == {"pip4", "wrist"} and lab.masks["wrist"].sum() == 16
    assert np.array_equal(regions_from_labels(lab, (10, 12)), reg)
    reg[0, 0] = 16
    write_label_png(tmp_path / "regions" / "Hand_0000009.png", reg)
    with pytest.raises(LabelImportError, match="value 16 outside 0..15"):
        read_labels(tmp_path / "regions")


def test_standin_export_uses_all_kinds_and_matches_truth(tmp_path: Path):
    folder = write_standin(tmp_path / "s", 14, 6, seed=1)
    truth = json.loads((folder / TRUTH_FILE).read_text())
    labels = match_labels(read_labels(folder / "labelstudio.json"), list(truth))
    assert len(labels) == 6
    assert set().union(*(lab.kinds for lab in labels.values())) == {"keypoint", "brush", "polygon"}
    for name, lab in labels.items():
        reg = regions_from_labels(lab, (300, 400))
        for j in HAND_JOINTS:
            rr, cc = np.nonzero(reg == JOINT_INDEX[j])
            assert rr.size, (name, j)
            x, y = truth[name]["joints"][j]
            # region centre within 6 px of the true joint (brush regions are cut to the hand)
            assert np.hypot(cc.mean() + 0.5 - x * 400, rr.mean() + 0.5 - y * 300) < 6, (name, j)


def test_flattened_results_are_accepted(tmp_path):
    mask = np.zeros((4, 6), bool)
    mask[1:3, 2:5] = True
    res = {
        "type": "brushlabels",
        "original_width": 6,
        "original_height": 4,
        "format": "rle",
        "rle": mask_to_brush(mask),
        "brushlabels": ["pip3"],
    }
    (tmp_path / "e.json").write_text(
        json.dumps([{"data": {"image": "a.jpg"}, "annotations": [{"result": [res]}]}])
    )
    (lab,) = read_labels(tmp_path / "e.json")
    assert np.array_equal(lab.masks["pip3"], mask)
