"""Left and right in a dataset's layout (optional dataset.json keys, docs/dataset_format.md).

``mirrored_views``: views that are the canonical layout mirrored left-right (the phantom's
dorsal view); ``mirror_pairs``: which label becomes which when an image is mirrored
(or derived from two equal ``right``/``left`` groups). ``classify.lr_aware`` and
``classify.per_hand`` read them through :func:`mirrored_views`, :func:`mirror_pairs` and
:func:`lr_permutation`; :func:`layout_problems` checks them when a dataset is read.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from jointaug.dataset.errors import DatasetError


def layout_problems(obj: dict) -> list[str]:
    """Messages for malformed optional layout keys of a dataset.json object.

    ``mirrored_views``: a list of view names; ``mirror_pairs``: a list of two-label lists,
    each label known and in at most one pair.
    """
    out = []
    views = obj.get("mirrored_views")
    if views is not None and (
        not isinstance(views, list) or not all(isinstance(v, str) for v in views)
    ):
        out.append("'mirrored_views' must be a list of view names")
    pairs = obj.get("mirror_pairs")
    if pairs is None:
        return out
    labels = set(obj.get("labels") or [])
    if not isinstance(pairs, list) or not all(
        isinstance(p, list) and len(p) == 2 and all(isinstance(x, str) for x in p) for p in pairs
    ):
        return [*out, "'mirror_pairs' must be a list of [label, label] pairs"]
    seen: set[str] = set()
    for a, b in pairs:
        for lab in (a, b):
            if lab not in labels:
                out.append(f"'mirror_pairs' names unknown label {lab!r}")
            elif lab in seen:
                out.append(f"'mirror_pairs' names label {lab!r} twice")
            seen.add(lab)
        if a == b:
            out.append(f"'mirror_pairs' pairs {a!r} with itself")
    return out


def mirrored_views(meta) -> list[str]:
    """Views declared mirrored left-right (``mirrored_views``; [] when absent)."""
    return [str(v) for v in meta.extra.get("mirrored_views") or []]


def mirror_pairs(meta) -> list[tuple[str, str]]:
    """The left<->right label pairs: ``mirror_pairs`` when declared, else derived from
    ``groups`` when there are exactly two equal-size groups named right and left (paired
    in order, right first). Raises DatasetError naming the missing key otherwise.

    Convention: the first label of a pair is the joint that lies in the image's LEFT half
    in the canonical layout (views not in ``mirrored_views``); for hands in the palmar
    view that is the patient's right hand.
    """
    declared = meta.extra.get("mirror_pairs")
    if declared is not None:
        return [(str(a), str(b)) for a, b in declared]
    groups = {k.lower(): v for k, v in meta.groups.items()}
    if set(groups) == {"right", "left"} and len(groups["right"]) == len(groups["left"]):
        return list(zip(groups["right"], groups["left"], strict=True))
    raise DatasetError(
        f"dataset {meta.name!r}: left/right-aware classification needs 'mirror_pairs' in "
        "dataset.json (a list of [left-half label, right-half label] pairs), or exactly two "
        "equal-size 'groups' named 'right' and 'left'"
    )


def lr_permutation(labels: Sequence[str], pairs: Sequence[tuple[str, str]]) -> np.ndarray:
    """(L,) int64 index: label i of a mirrored image is label ``perm[i]`` of the original
    (an involution; labels in no pair map to themselves)."""
    index = {lab: i for i, lab in enumerate(labels)}
    perm = np.arange(len(labels), dtype=np.int64)
    for a, b in pairs:
        perm[index[a]], perm[index[b]] = index[b], index[a]
    return perm
