"""Method names -> what a classifier trains on (the one place this mapping lives).

=====================  =========================================  =====================
method                 training mix (augmentation sets : share)   notes
=====================  =========================================  =====================
``baseline``           the fold's train part only                 the paper's baseline
``mp``                 ``mp:1.0``                                 [99mTc]maraciclalide
``mp-perlin``          ``mp-perlin:1.0``                          ... with Perlin masks
``11k``                ``11k:1.0``                                natural hands
``11k-perlin``         ``11k-perlin:1.0``                         ... with Perlin masks
``mpX-11kpY``          ``mp-perlin:X/100+11k-perlin:Y/100``       Table 2, X + Y = 100
``oracle``             ``oracle:1.0``                             the phantom's renderer on
                                                                  mp-perlin's conditions
                                                                  (built-in phantom only)
``oracle-plan``        ``oracle-plan:1.0``                        ... on its own plan
``oversample``         ``oversample:1.0``: N duplicates of the    duplicate-real control
                       train part (no folder)
``oversample-prev``    ``oversample-prev:1.0``: N duplicates      ... at mp-perlin's
                       drawn towards mp-perlin's prevalence       positive prevalence
``shuffled``           ``shuffled:1.0``                           mp-perlin images, labels
                                                                  permuted (no label info)
``forward[-perlin]``   ``forward[-perlin]:1.0``                   non-learned imaging model
``baseline-budget``    the train part only, at each size N        the baseline with the
                       (no images added)                          augmented runs' budget
``set:share+...``      that mix (``data.parse_mix``)              a user's own sets;
                                                                  ``NAME:1.0``: one set
``bce_pos_weight``     baseline, loss ``bce_pos_weight``          imbalance baseline
``focal``              baseline, loss ``focal``                   imbalance baseline
``tuned_threshold``    none: the baseline models, threshold       imbalance baseline
                       tuned on validation GMS
=====================  =========================================  =====================

An augmented method is trained at each size ``N`` (augmentation images added to the
train part) and stored as ``classify/<method>_<N>``; baseline-like methods have size 0
and are stored as ``classify/<method>``. ``baseline-budget`` is sized but adds nothing:
at size ``N`` it trains on the real train part with the sample budget of a mix of
``real + N`` images (``classify.max_epochs`` / ``patience_epochs`` grow the budget
with the training set: :func:`jointaug.classify.train.effective_budget`), so a gain of
an augmented method is not just its longer training. Augmentation set ``s`` of fold ``k`` is the
folder ``RUN/fold_k/augment/s`` (:meth:`RunDir.augment_dir`).

A list of methods is separated by ``,``; the sets of one mix are joined by ``+``
(``baseline,extra:1.0,shuf:1.0,mp-perlin:0.8+11k-perlin:0.2``). The older mix form
with ``,`` (``mp-perlin:0.8,11k-perlin:0.2``) is still read where it is unambiguous:
consecutive ``set:share`` items are one mix while their shares add up to less than 1,
so ``NAME:1.0`` always ends a mix; anything else is an error that shows the ``+`` form.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from jointaug.classify.data import OVERSAMPLE, allocate, parse_mix
from jointaug.sets.registry import registered_names

IMBALANCE_BASELINES = ("bce_pos_weight", "focal", "tuned_threshold")
BASELINE_BUDGET = "baseline-budget"
MIXTURE = re.compile(r"^mp(\d{1,3})-11kp(\d{1,3})$")
MIX_SEPARATOR = re.compile(r"\s*[+,]\s*")


@dataclass(frozen=True)
class Method:
    name: str
    mix: tuple[tuple[str, float], ...] = ()  # () = no augmentation
    loss: str | None = None  # None: the config's classify.loss
    trains: bool = True  # False: reuses another method's models (tuned_threshold)
    base: str = ""  # the method whose models are reused
    budget: bool = False  # sized without images: the budget of real + size images

    @property
    def augmented(self) -> bool:
        return bool(self.mix)

    @property
    def sized(self) -> bool:
        """Trained at each size (augmented, or the budget control)."""
        return self.augmented or self.budget

    def dir_name(self, size: int) -> str:
        """Folder name under ``classify/`` (``baseline``, ``mp-perlin_8192``)."""
        safe = self.name.replace(":", "=").replace(",", "+")
        return f"{safe}_{size}" if self.sized else safe

    def sizes(self, sizes: Sequence[int]) -> list[int]:
        """The sizes this method is trained at: ``sizes`` if sized, else [0]."""
        return [int(s) for s in sizes] if self.sized else [0]

    def budget_images(self, n_real: int, size: int) -> int:
        """The training-set size its sample budget is computed for (real + added)."""
        return n_real + (size if self.sized else 0)


def mixture_name(mp_percent: int) -> str:
    """20 -> ``mp20-11kp80`` (Table 2's "MP 20% 11kP 80%")."""
    if not 0 < mp_percent < 100:
        raise ValueError(f"mixture percentage {mp_percent} must be in 1..99")
    return f"mp{mp_percent}-11kp{100 - mp_percent}"


def resolve_method(name: str) -> Method:
    """A method name (module table) -> Method; raises ValueError for an unknown name."""
    name = name.strip()
    if name == "baseline":
        return Method(name)
    if name == BASELINE_BUDGET:
        return Method(name, budget=True)
    if name in ("bce_pos_weight", "focal"):
        return Method(name, loss=name)
    if name == "tuned_threshold":
        return Method(name, trains=False, base="baseline")
    if (
        name in registered_names() or name == OVERSAMPLE
    ):  # a set kind (sets/registry.py), or the duplicate-real control
        return Method(name, mix=((name, 1.0),))
    m = MIXTURE.match(name)
    if m:
        x, y = int(m.group(1)), int(m.group(2))
        if x + y != 100 or x == 0 or y == 0:
            raise ValueError(f"method {name!r}: mixture percentages must be > 0 and add up to 100")
        return Method(name, mix=(("mp-perlin", x / 100), ("11k-perlin", y / 100)))
    if ":" in name:  # a mix; its name is written with "+" (the older "," is read too)
        return Method(MIX_SEPARATOR.sub("+", name.replace(" ", "")), mix=tuple(parse_mix(name)))
    raise ValueError(
        f"unknown method {name!r}; use baseline, {BASELINE_BUDGET}, "
        f"{', '.join([*registered_names(), OVERSAMPLE])}, mpX-11kpY, "
        f"{', '.join(IMBALANCE_BASELINES)} or a mix like mp-perlin:0.8+11k-perlin:0.2"
    )


def parse_methods(text: str | Iterable[str]) -> list[Method]:
    """``"baseline,mp,extra:1.0,mp-perlin:0.8+11k-perlin:0.2"`` or a list of names ->
    Methods (order kept, duplicates dropped). See the module text for the older mix form."""
    items = split_methods(text) if isinstance(text, str) else [str(t) for t in text]
    out, seen = [], set()
    for item in items:
        m = resolve_method(item)
        if m.name not in seen:
            out.append(m)
            seen.add(m.name)
    return out


def _share(item: str) -> float | None:
    """The share of a ``set:share`` item (None: not one, or not a number)."""
    name, sep, raw = item.partition(":")
    if not sep or "+" in item:
        return None
    try:
        return float(raw)
    except ValueError:
        return None


def split_methods(text: str) -> list[str]:
    """A comma-separated list of methods -> one string per method. Consecutive
    ``set:share`` items of the older mix form are joined while their shares add up to
    less than 1; a group that never reaches 1 is an error that shows the ``+`` form."""
    items: list[str] = []
    open_total = None  # shares of the older-form mix being read (None: none open)
    for part in (p.strip() for p in text.split(",") if p.strip()):
        share = _share(part)
        if share is not None and open_total is not None:
            items[-1] += "," + part
            open_total += share
        else:
            items.append(part)
            open_total = share
        if open_total is not None and open_total >= 1 - 1e-6:
            open_total = None
    for item in items:
        if "," in item and abs(sum(_share(x) or 0 for x in item.split(",")) - 1) > 1e-6:
            raise ValueError(
                f"methods {text!r}: {item!r} reads as one mix whose shares do not add up to 1; "
                f"join the sets of a mix with '+' (e.g. {item.replace(',', '+')}) and list "
                f"methods with ',' (e.g. extra:1.0,shuf:1.0)"
            )
    return items


def required_sets(methods: Iterable[Method], sizes: Sequence[int]) -> dict[str, int]:
    """Images each augmentation set must hold for these methods at these sizes
    (the largest prefix any method/size takes): what the augmentation stage must make."""
    need: dict[str, int] = {}
    for m in methods:
        for size in m.sizes(sizes) if m.augmented else []:
            for name, n in allocate(m.mix, size):
                if name != OVERSAMPLE:  # drawn from the train part, no folder
                    need[name] = max(need.get(name, 0), n)
    return need
