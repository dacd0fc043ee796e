"""Reading HandInfo.csv, the filters, the include/exclude lists and the stand-in folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from jointaug.natural.hands11k import (
    HandsDataError,
    load_photo,
    metadata_reason,
    photo_path,
    read_hand_info,
    read_name_list,
    select_photos,
)
from jointaug.natural.standin_folder import TRUTH_FILE, write_standin

HEADER = "id,age,gender,skinColor,accessories,nailPolish,aspectOfHand,imageName,irregularities\n"


def write_csv(folder: Path, rows: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "HandInfo.csv").write_text(HEADER + "".join(r + "\n" for r in rows))
    return folder


@pytest.fixture(scope="module")
def standin(tmp_path_factory) -> Path:
    return write_standin(tmp_path_factory.mktemp("s") / "standin", 24, 6, seed=3)


def test_ids_are_strings_with_leading_zeros(tmp_path):
    folder = write_csv(
        tmp_path,
        [
            '"0000013",20,"female","medium",1,0,"dorsal left","Hand_0000499.jpg",0',
            "0000200,31,male,fair,0,0,palmar right,Hand_0000500.jpg,0",
        ],
    )
    recs = read_hand_info(folder)
    assert [r.id for r in recs] == ["0000013", "0000200"]
    assert recs[0].accessories == 1 and recs[1].accessories == 0
    assert (recs[0].face, recs[0].side) == ("dorsal", "left")
    assert read_hand_info(folder / "HandInfo.csv") == recs


@pytest.mark.parametrize(
    "row, message",
    [
        ('"1",20,"f","m",1,0,"dorsal left","Hand_1.jpg"', "line 2: 8 cells"),
        ('"1",20,"f","m",x,0,"dorsal left","Hand_1.jpg",0', "line 2: column 'accessories'"),
        ('"1",20,"f","m",0,0,"lateral","Hand_1.jpg",0', "line 2: aspectOfHand 'lateral'"),
        ('"1",20,"f","m",0,0,"dorsal left","../x.jpg",0', "line 2: imageName"),
        ('"",20,"f","m",0,0,"dorsal left","Hand_1.jpg",0', "line 2: empty id"),
    ],
)
def test_malformed_rows_name_file_and_line(tmp_path, row, message):
    write_csv(tmp_path, [row])
    with pytest.raises(HandsDataError, match="HandInfo.csv " + message.replace("(", r"\(")):
        read_hand_info(tmp_path)


def test_missing_columns_and_duplicates_are_reported(tmp_path):
    (tmp_path / "HandInfo.csv").write_text("id,age\n1,2\n")
    with pytest.raises(HandsDataError, match=r"line 1: missing columns"):
        read_hand_info(tmp_path)
    row = '"1",20,"f","m",0,0,"dorsal left","Hand_1.jpg",0'
    write_csv(tmp_path, [row, row])
    with pytest.raises(HandsDataError, match="line 3: imageName 'Hand_1.jpg' appears twice"):
        read_hand_info(tmp_path)
    with pytest.raises(HandsDataError, match="missing"):
        read_hand_info(tmp_path / "nowhere")


def test_metadata_filter_reasons(tmp_path):
    write_csv(
        tmp_path,
        [
            '"1",20,"f","m",1,0,"dorsal left","Hand_1.jpg",0',
            '"1",20,"f","m",0,0,"palmar right","Hand_2.jpg",0',
        ],
    )
    a, b = read_hand_info(tmp_path)
    assert metadata_reason(a) == "accessories"
    assert metadata_reason(b) == ""
    assert metadata_reason(b, aspects=("dorsal left",)) == "aspect palmar right"


def test_name_list_ignores_comments_blank_lines_and_folders(tmp_path):
    p = tmp_path / "exclude.txt"
    p.write_text("# photos I do not want\nHand_0000001.jpg\n\n  Hands/Hand_0000002.jpg  # blurry\n")
    assert read_name_list(p) == {"Hand_0000001.jpg", "Hand_0000002.jpg"}
    with pytest.raises(HandsDataError, match="missing"):
        read_name_list(tmp_path / "none.txt")


@pytest.mark.slow
def test_standin_folder_layout_and_flags(standin):
    recs = read_hand_info(standin)
    assert len(recs) == 24
    truth = json.loads((standin / TRUTH_FILE).read_text())
    assert set(truth) == {r.image_name for r in recs}
    photo = load_photo(photo_path(standin, recs[0].image_name))
    assert photo.shape == (300, 400, 3) and photo.dtype == np.uint8
    assert load_photo(photo_path(standin, recs[0].image_name), max_side=200).shape == (150, 200, 3)
    assert any(r.accessories for r in recs) and any(t["pose"] != "open" for t in truth.values())
    # reusing the folder does not rewrite it
    before = (standin / "HandInfo.csv").stat().st_mtime_ns
    write_standin(standin, 24, 6, seed=3)
    assert (standin / "HandInfo.csv").stat().st_mtime_ns == before


@pytest.mark.slow
def test_selection_rejects_accessories_and_closed_hands(standin):
    recs = read_hand_info(standin)
    truth = json.loads((standin / TRUTH_FILE).read_text())
    kept, decisions = select_photos(standin, recs, 100, 4, np.random.default_rng(0))
    kept_names = {r.image_name for r in kept}
    for r in recs:
        wanted = r.accessories == 0 and truth[r.image_name]["pose"] == "open"
        assert (r.image_name in kept_names) == wanted, (r.image_name, truth[r.image_name]["pose"])
    reasons = {d.image_name: d.reason for d in decisions}
    closed = [
        n for n, t in truth.items() if t["pose"] != "open" and reasons.get(n) != "accessories"
    ]
    assert closed and all(reasons[n].startswith("closed") for n in closed)


@pytest.mark.slow
def test_include_and_exclude_lists_override_and_cap_applies(standin):
    recs = read_hand_info(standin)
    truth = json.loads((standin / TRUTH_FILE).read_text())
    closed = next(n for n, t in truth.items() if t["pose"] != "open")
    kept_all, _ = select_photos(standin, recs, 100, 4, np.random.default_rng(0))
    dropped = kept_all[0].image_name
    kept, decisions = select_photos(
        standin, recs, 100, 4, np.random.default_rng(0), include={closed}, exclude={dropped}
    )
    names = [r.image_name for r in kept]
    assert closed in names and dropped not in names
    assert {d.image_name: d.reason for d in decisions}[dropped] == "exclude list"
    capped, _ = select_photos(standin, recs, 3, 4, np.random.default_rng(0), include={closed})
    assert len(capped) == 3 and capped[0].image_name == closed
    with pytest.raises(HandsDataError, match="not in HandInfo.csv"):
        select_photos(standin, recs, 3, 4, np.random.default_rng(0), include={"Hand_nope.jpg"})


@pytest.mark.slow
def test_selection_order_is_seeded(standin):
    recs = read_hand_info(standin)
    a, _ = select_photos(standin, recs, 5, 4, np.random.default_rng(1))
    b, _ = select_photos(standin, recs, 5, 4, np.random.default_rng(1))
    c, _ = select_photos(standin, recs, 5, 4, np.random.default_rng(2))
    assert a == b and a != c
