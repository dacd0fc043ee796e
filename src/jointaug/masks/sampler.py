"""The hierarchical inflammation sampler (paper: "Image Augmentation").

A vector of inflammation levels, one per label, drawn by hierarchical binary decisions
over the dataset's ``groups`` (for hands: one group per hand):

1. with probability ``p_any`` the image has any inflammation (else all labels are 0);
2. if so, each group is inflamed with probability ``p_group``, conditioned on at least
   one group being inflamed ("ensuring at least one hand was inflamed");
3. in an inflamed group, each label is inflamed with probability ``p_label``,
   conditioned on at least one label of that group being inflamed (see below);
4. each inflamed label is high (2) with probability ``p_high``, else low (1).

"At least one" rules are sampled exactly from the conditional distribution (the law of
independent Bernoulli draws given that not all are 0), without rejection loops. With
``p`` = 0 the conditional limit is used: exactly one member, chosen uniformly.

Step 3's rule is our choice; the paper is silent. Without it an inflamed hand could end
with no inflamed joint, and an image that step 1 declared inflamed could get an all-zero
vector, which contradicts the hierarchy's meaning and, for small label sets, is common
(a group of 3 labels: 1 in 8). For the paper's 15 labels per hand the effect is
negligible: P(label | hand inflamed) = 0.5 / (1 - 0.5**15) = 0.500015 instead of 0.5.

Excluded labels (e.g. the wrists of natural images, which the paper never inflames) are
never inflamed and do not count: a group with no eligible label is never inflamed, and
the at-least-one rules apply to eligible labels and groups only.

Exact marginals (G eligible groups, n eligible labels in a group)::

    P(group inflamed)       = p_any * p_group / (1 - (1 - p_group)**G)
    P(label | its group)    = p_label / (1 - (1 - p_label)**n)
    P(high | label inflamed) = p_high
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from jointaug.config import SamplerConfig
from jointaug.dataset.format import DatasetMeta

NONE, LOW, HIGH = 0, 1, 2


def bernoulli_at_least_one(n: int, p: float, rng: np.random.Generator) -> np.ndarray:
    """(n,) bool: independent Bernoulli(p) draws conditioned on at least one True.

    Exact: the index of the first True is drawn from its truncated geometric law,
    everything after it is independent Bernoulli(p), everything before it is False.
    ``p <= 0`` gives exactly one True at a uniform index (the limit as p -> 0).
    """
    if n < 1:
        raise ValueError("need at least one member to force one True")
    out = np.zeros(n, dtype=bool)
    if p >= 1:
        out[:] = True
        return out
    if p <= 0:
        out[rng.integers(n)] = True
        return out
    cdf = np.cumsum(p * (1.0 - p) ** np.arange(n))
    first = min(int(np.searchsorted(cdf, rng.random() * cdf[-1], side="right")), n - 1)
    out[first] = True
    out[first + 1 :] = rng.random(n - first - 1) < p
    return out


def _check_probability(name: str, p: float) -> None:
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"sampler {name} must be a probability in [0, 1], got {p}")


def sample_inflammation(
    groups: Sequence[Sequence[int]],
    n_labels: int,
    rng: np.random.Generator,
    p_any: float = 0.9,
    p_group: float = 0.75,
    p_label: float = 0.5,
    p_high: float = 0.5,
    exclude: np.ndarray | None = None,
) -> np.ndarray:
    """Draw one inflammation vector.

    Args:
        groups: label indices (0-based) of each group, e.g. ``[[0..14], [15..29]]``.
            Labels in no group are never inflamed.
        n_labels: length of the vector.
        rng: the random source.
        p_any, p_group, p_label, p_high: the paper's probabilities (0.9, 0.75, 0.5, 0.5).
        exclude: optional (n_labels,) bool mask of labels never inflamed.

    Returns:
        (n_labels,) int8: 0 = not inflamed, 1 = low, 2 = high. When the image is drawn
        as inflamed and some label is eligible, at least one group (and in each inflamed
        group at least one label) is inflamed. With no eligible label it is all 0.
    """
    for name, p in (
        ("p_any", p_any),
        ("p_group", p_group),
        ("p_label", p_label),
        ("p_high", p_high),
    ):
        _check_probability(name, p)
    eligible = np.ones(n_labels, dtype=bool)
    if exclude is not None:
        exclude = np.asarray(exclude, dtype=bool)
        if exclude.shape != (n_labels,):
            raise ValueError(f"exclude has shape {exclude.shape}, expected ({n_labels},)")
        eligible &= ~exclude
    members = []
    for g in groups:
        idx = np.asarray(g, dtype=np.intp)
        if idx.size and (idx.min() < 0 or idx.max() >= n_labels):
            raise ValueError(f"group {list(g)} has label indices outside 0..{n_labels - 1}")
        idx = idx[eligible[idx]]
        if idx.size:
            members.append(idx)

    vector = np.zeros(n_labels, dtype=np.int8)
    if not members or rng.random() >= p_any:
        return vector
    for g_on, idx in zip(bernoulli_at_least_one(len(members), p_group, rng), members, strict=True):
        if not g_on:
            continue
        inflamed = idx[bernoulli_at_least_one(idx.size, p_label, rng)]
        high = rng.random(inflamed.size) < p_high
        vector[inflamed] = np.where(high, HIGH, LOW)
    return vector


def sample_with_config(
    groups: Sequence[Sequence[int]],
    n_labels: int,
    rng: np.random.Generator,
    config: SamplerConfig | None = None,
    exclude: np.ndarray | None = None,
) -> np.ndarray:
    """:func:`sample_inflammation` with the probabilities of a ``SamplerConfig``."""
    c = config or SamplerConfig()
    return sample_inflammation(
        groups, n_labels, rng, c.p_any, c.p_group, c.p_label, c.p_high, exclude=exclude
    )


def groups_from_meta(meta: DatasetMeta) -> list[list[int]]:
    """Label indices (0-based, in ``meta.labels`` order) of each group of ``meta.groups``.

    Labels that no group names form one extra group at the end (so a dataset without
    ``groups`` is one group of all labels). Raises ValueError for a group naming an
    unknown label or a label named in two groups.
    """
    index = {name: i for i, name in enumerate(meta.labels)}
    seen: dict[str, str] = {}
    out: list[list[int]] = []
    for gname, names in meta.groups.items():
        idx = []
        for name in names:
            if name not in index:
                raise ValueError(
                    f"dataset {meta.name!r}: group {gname!r} names unknown label {name!r}"
                )
            if name in seen:
                raise ValueError(
                    f"dataset {meta.name!r}: label {name!r} is in groups {seen[name]!r} and {gname!r}"
                )
            seen[name] = gname
            idx.append(index[name])
        if idx:
            out.append(idx)
    rest = [i for i, name in enumerate(meta.labels) if name not in seen]
    if rest:
        out.append(rest)
    return out


def exclusion_mask(labels: Sequence[str], exclude: Sequence[str]) -> np.ndarray:
    """(len(labels),) bool mask of the labels named in ``exclude`` (or ending in ``_NAME``
    for a bare joint name: ``["wrist"]`` excludes ``R_wrist`` and ``L_wrist``).

    Raises ValueError when an entry matches no label.
    """
    out = np.zeros(len(labels), dtype=bool)
    for item in exclude:
        hit = np.array([lab == item or lab.endswith(f"_{item}") for lab in labels], dtype=bool)
        if not hit.any():
            raise ValueError(f"exclude: {item!r} matches none of the labels {list(labels)}")
        out |= hit
    return out
