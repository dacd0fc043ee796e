"""The pieces a MONAI bundle of a classifier ensemble instantiates from its config.

``configs/inference.json`` (written by :mod:`jointaug.experiments.bundle`) names these by
``_target_``; each is a small callable with constructor arguments that say everything:

- :class:`LoadCountImaged`: a file path -> the (H, W) count image, read by the toolkit's
  own reader (png, tif, npy, dcm; rows stay rows: no transpose as MONAI's PIL reader does);
- :class:`PrepareCountsd`: (H, W) counts -> (1, S, S) float32 network input, exactly
  :func:`jointaug.classify.transforms.prepare_image` (sqrt, zero-pad to square, area
  resize, divide by the 99th percentile), the normalisation of training and ``predict``;
- :class:`ProbabilityEnsemble`: K MONAI DenseNets -> the mean of their sigmoid
  probabilities (B, L), which is what ``jointaug predict`` computes;
- :func:`load_ensemble_weights`: ``models/model.safetensors`` into that network;
- :class:`CsvPredictor`: the inference loop, writing ``predictions.csv``. MONAI's
  ``SupervisedEvaluator`` needs pytorch-ignite, which the toolkit does not install; with
  ignite a user may swap it in (``ClassificationSaver`` writes a similar CSV).
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Callable, Hashable, Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import MapTransform

from jointaug.classify.checkpoint import CheckpointError, load_tensors, save_tensors
from jointaug.classify.model import build_model
from jointaug.classify.transforms import prepare_image
from jointaug.dataset.io import read_image
from jointaug.files import write_text_atomic


class LoadCountImaged(MapTransform):
    """``{key: path}`` -> ``{key: MetaTensor (H, W)}`` float32 counts; ``meta["filename_or_obj"]``
    is the path (MONAI's convention, so savers can name rows)."""

    def __call__(self, data: dict) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            path = str(d[key])
            counts = np.asarray(read_image(path), dtype=np.float32)
            d[key] = MetaTensor(torch.from_numpy(counts), meta={"filename_or_obj": path})
        return d


class PrepareCountsd(MapTransform):
    """(H, W) counts -> (1, ``image_size``, ``image_size``) float32, by ``prepare_image``."""

    def __init__(
        self, keys: Hashable | Sequence[Hashable], image_size: int, allow_missing_keys: bool = False
    ):
        super().__init__(keys, allow_missing_keys)
        self.image_size = int(image_size)

    def __call__(self, data: dict) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            img = d[key]
            meta = dict(img.meta) if isinstance(img, MetaTensor) else {}
            x = prepare_image(
                np.asarray(img.cpu() if torch.is_tensor(img) else img), self.image_size
            )
            d[key] = MetaTensor(torch.from_numpy(x[None]), meta=meta)
        return d


class ProbabilityEnsemble(torch.nn.Module):
    """K DenseNet classifiers of one architecture: (B, 1, S, S) -> (B, L) mean sigmoid probability.

    Args:
        arch: the architecture dict stored with every member (``classify.model.ARCH_KEYS``).
        n_labels: L, one logit per label.
        n_members: K; weights come from :func:`load_ensemble_weights` (keys ``members.k.*``).
    """

    def __init__(self, arch: dict, n_labels: int, n_members: int):
        super().__init__()
        if n_members < 1:
            raise ValueError("an ensemble needs at least one member")
        self.members = torch.nn.ModuleList(
            build_model(arch, n_labels, seed=None) for _ in range(n_members)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([torch.sigmoid(m(x).float()) for m in self.members]).mean(dim=0)


def ensemble_tensors(member_files: Sequence[str | os.PathLike]) -> tuple[dict, dict, list[str]]:
    """Members' ``model.safetensors`` -> (``members.k.*`` tensors, arch, labels); every member
    must share labels and architecture (as ``predict_files`` requires)."""
    tensors: dict[str, torch.Tensor] = {}
    arch = labels = None
    for k, path in enumerate(member_files):
        state, meta = load_tensors(path)
        try:
            a, labs = json.loads(meta["arch"]), json.loads(meta["labels"])
        except (KeyError, ValueError) as exc:
            raise CheckpointError(f"{path}: not a jointaug classifier ({exc})") from exc
        if arch is not None and (a != arch or labs != labels):
            raise CheckpointError(f"{path}: labels or architecture differ from the other models")
        arch, labels = a, labs
        tensors.update({f"members.{k}.{name}": t for name, t in state.items()})
    if arch is None:
        raise ValueError("no model files given")
    return tensors, arch, list(labels)


def save_ensemble(
    path: str | os.PathLike,
    member_files: Sequence[str | os.PathLike],
    extra: dict[str, str] | None = None,
) -> tuple[dict, list[str], int]:
    """Write the members' weights as one safetensors file; return (arch, labels, K)."""
    tensors, arch, labels = ensemble_tensors(member_files)
    meta = {
        "arch": json.dumps(arch),
        "labels": json.dumps(labels),
        "n_members": str(len(member_files)),
        **(extra or {}),
    }
    save_tensors(path, tensors, meta)
    return arch, labels, len(member_files)


def load_ensemble_weights(
    network: ProbabilityEnsemble, path: str | os.PathLike, device: str | torch.device = "cpu"
) -> ProbabilityEnsemble:
    """Load ``path`` (safetensors, no pickle) into ``network``; return it on ``device``, in eval mode."""
    tensors, _ = load_tensors(path)
    try:
        network.load_state_dict(tensors)
    except RuntimeError as exc:
        raise CheckpointError(
            f"{path}: weights do not fit the bundle's network_def ({exc})"
        ) from exc
    return network.to(device).eval()


class CsvPredictor:
    """Run ``network`` through ``inferer`` on every batch; write ``output_dir/predictions.csv``.

    Columns: ``image``, ``p_<label>`` (8 decimals), ``<label>`` (``postprocessing`` of the
    probabilities: 0/1 at the bundle's threshold). ``run()`` returns the CSV path.
    """

    def __init__(
        self,
        dataloader: Iterable[dict],
        network: torch.nn.Module,
        inferer: Callable,
        postprocessing: Callable,
        labels: Sequence[str],
        output_dir: str | os.PathLike,
        device: str | torch.device = "cpu",
    ):
        self.dataloader, self.network, self.inferer = dataloader, network, inferer
        self.postprocessing, self.labels = postprocessing, list(labels)
        self.output_dir, self.device = Path(output_dir), torch.device(device)

    def run(self) -> Path:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["image", *(f"p_{lab}" for lab in self.labels), *self.labels])
        self.network.eval()
        with torch.no_grad():
            for batch in self.dataloader:
                x = batch["image"]
                names = x.meta["filename_or_obj"] if isinstance(x, MetaTensor) else [""] * len(x)
                x = x.as_tensor() if isinstance(x, MetaTensor) else x
                probs = torch.as_tensor(self.inferer(x.to(self.device), self.network)).float().cpu()
                decisions = torch.as_tensor(self.postprocessing(probs))
                for name, p, d in zip(names, probs.tolist(), decisions.tolist(), strict=True):
                    w.writerow([name, *(f"{v:.8f}" for v in p), *(int(v) for v in d)])
        path = self.output_dir / "predictions.csv"
        write_text_atomic(path, buf.getvalue())
        return path
