"""Augmentation-set names -> how each set is made (the one home of this mapping).

Every set a method can name is either a *registered* kind, made by a generator, or a
*user* set: any folder ``RUN/fold_K/augment/NAME`` that exists, is complete and
validates (method ``NAME:1.0``). Registered kinds:

==================  =========  ======  ======  =============================================
set name            generator  source  perlin  made by
==================  =========  ======  ======  =============================================
``mp``              diffusion  mp      no      the fold's diffusion model
``mp-perlin``       diffusion  mp      yes     ... on Perlin-varied joint regions
``11k``             diffusion  natural no      ... on natural-hand conditions
``11k-perlin``      diffusion  natural yes     ... both
``oracle``          oracle     mp      yes     the phantom's renderer on EXACTLY the
                                               ``mp-perlin`` set's conditions (reads it)
``oracle-plan``     oracle     mp      no      the phantom's renderer on its own plan
``forward``         forward    mp      no      a non-learned imaging model
``forward-perlin``  forward    mp      yes     ... on Perlin-varied regions
``shuffled``        shuffled   mp      yes     ``mp-perlin``'s images, labels permuted
``oversample-prev`` oversample mp      no      real train images drawn towards
                                               ``mp-perlin``'s positive-label prevalence
==================  =========  ======  ======  =============================================

A kind that reads another set (``depends_on``: oracle and shuffled read ``mp-perlin``)
is made after it, from its folder (the plan makes the other set at least as large and
the task graph orders them); the factory gets ``sets={name: folder}``. A kind that can
run only on some datasets says why not in :meth:`SetKind.available` (the oracles:
``requires_phantom``, the built-in phantom's imaging model); a plan leaves such a
profile method out with one line, and refuses it when it is named explicitly.

A kind is one module plus one :func:`register_set` line. Every kind writes its set
through the one set writer (:mod:`jointaug.sets.writer`): the module supplies only
its settings, metadata, case plan and a batch maker (planned cases -> images and
rows); recording the settings, resume, growth, batching, shards and the done marker
are the writer's. A generator other than diffusion is registered with ``factory``
``"module:function"``, imported when a set is made (the registry stays import-light; a
missing module is reported before a run starts), with the signature shared by all set
generators (``options`` are passed as its kind-specific keywords)::

    make_<kind>_set(out: Path, n: int, *, dataset: Dataset, train_patients: Sequence[str],
                    fold: int, config: Config, progress: bool = True, **kind_specific) -> Path

The diffusion generator (``sets/diffusion.py``) takes more inputs (a trained model,
a source); the task graph calls it with those. ``tests/test_set_writer.py`` registers a
toy kind in a few lines.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from jointaug.dataset.format import Dataset


@dataclass(frozen=True)
class SetKind:
    name: str
    generator: str  # "diffusion" or another registered generator kind
    source: str  # "mp" (the fold's train cases) or "natural" (the natural source)
    perlin: bool
    factory: str = ""  # "module:function" for non-diffusion generators
    options: tuple[tuple[str, object], ...] = ()  # kind-specific keyword arguments of the factory
    depends_on: tuple[str, ...] = ()  # sets it reads (made first; passed as ``sets=``)
    requires_phantom: bool = False  # renders the built-in phantom's imaging model

    @property
    def needs_diffusion(self) -> bool:
        return self.generator == "diffusion"

    @property
    def needs_natural(self) -> bool:
        return self.source == "natural"

    def available(self, dataset: Dataset) -> str | None:
        """Why this kind cannot be made for ``dataset`` (None: it can)."""
        if self.requires_phantom and not written_by_phantom(dataset):
            return (
                "renders the built-in phantom's imaging model; this dataset was not written "
                "by `jointaug phantom`"
            )
        return None

    def load_factory(self) -> Callable:
        module, _, func = self.factory.partition(":")
        try:
            return getattr(importlib.import_module(module), func)
        except (ImportError, AttributeError) as exc:
            raise ValueError(
                f"augmentation set {self.name!r}: its generator {self.factory!r} cannot be loaded ({exc})"
            ) from exc


def written_by_phantom(dataset: Dataset) -> bool:
    """The dataset was written by ``jointaug phantom`` (its dataset.json records the
    phantom's parameters; ``fidelity.judge.is_builtin_phantom`` asks the same)."""
    return isinstance(dataset.meta.extra.get("phantom"), dict)


SETS: dict[str, SetKind] = {}
# mix entries that are not augmentation sets: drawn from the fold's real train part by
# the classifier's data mixing (``oversample``), so nothing is made or checked for them
MIX_OPTIONS = frozenset({"oversample"})


def register_set(
    name: str,
    generator: str,
    source: str = "mp",
    perlin: bool = False,
    factory: str = "",
    options: dict | None = None,
    *,
    depends_on: tuple[str, ...] = (),
    requires_phantom: bool = False,
) -> SetKind:
    """Add (or replace) a set kind; returns it. ``options`` are passed to the factory."""
    if generator != "diffusion" and not factory:
        raise ValueError(f"set {name!r}: a {generator!r} generator needs factory='module:function'")
    kind = SetKind(
        name,
        generator,
        source,
        bool(perlin),
        factory,
        tuple(sorted((options or {}).items())),
        tuple(depends_on),
        bool(requires_phantom),
    )
    SETS[name] = kind
    return kind


for _name, _source, _perlin in (
    ("mp", "mp", False),
    ("mp-perlin", "mp", True),
    ("11k", "natural", False),
    ("11k-perlin", "natural", True),
):
    register_set(_name, "diffusion", _source, _perlin)
# controls (module table): the phantom's own renderer (built-in phantom only), a
# non-learned physics sketch, label-free and prevalence-matched stand-ins
register_set(
    "oracle",
    "oracle",
    "mp",
    True,
    "jointaug.sets.oracle:make_oracle_set",
    depends_on=("mp-perlin",),
    requires_phantom=True,
)
register_set(
    "oracle-plan",
    "oracle",
    "mp",
    False,
    "jointaug.sets.oracle_plan:make_oracle_plan_set",
    requires_phantom=True,
)
register_set(
    "shuffled",
    "shuffled",
    "mp",
    True,
    "jointaug.sets.shuffled:make_shuffled_set",
    depends_on=("mp-perlin",),
)
register_set(
    "oversample-prev",
    "oversample",
    "mp",
    False,
    "jointaug.sets.oversample_prev:make_oversample_prev_set",
)
for _name, _perlin in (("forward", False), ("forward-perlin", True)):
    register_set(
        _name,
        "forward",
        "mp",
        _perlin,
        "jointaug.sets.forward:make_forward_set",
        {"perlin": _perlin},
    )


def unregister_set(name: str) -> None:
    """Remove set kind ``name`` (tests that register a kind of their own)."""
    SETS.pop(name, None)


def set_kind(name: str) -> SetKind | None:
    """The registered kind of set ``name`` (None: a user's own set)."""
    return SETS.get(name)


def diffusion_set_name(source: str, perlin: bool) -> str:
    """The name of the diffusion set made from ``source`` with/without Perlin masks."""
    for kind in SETS.values():
        if kind.generator == "diffusion" and kind.source == source and kind.perlin == bool(perlin):
            return kind.name
    raise ValueError(f"unknown augmentation source {source!r} (mp or natural)")


def registered_names() -> tuple[str, ...]:
    return tuple(SETS)
