"""Where the ensemble looks: one class-activation map per label, averaged over members.

Two methods, both MONAI's (``monai.visualize``):

- ``gradcam``: ``GradCAM(nn_module=model, target_layers=layer)`` (Selvaraju et al. 2017):
  the target layer's activations weighted by the spatially averaged gradient of one
  label's logit, then ReLU. All labels of an image go through the network in ONE batch
  (one copy of the image per label, each row back-propagating its own label's logit), so
  a member costs one forward and one backward pass of L images.
- ``occlusion``: ``OcclusionSensitivity`` (no gradients): the drop of each label's
  sigmoid probability when a Gaussian patch (1/8 of the image wide) darkens the image
  there; a forward pass per patch position, so ~10-100x slower than ``gradcam``.

The Grad-CAM target layer is MONAI's DenseNet example's ``class_layers.relu``: the last
feature map after its batch norm, 1/32 of the input on DenseNet121 (8 x 8 at 256 px),
1/16 or less on the CPU profiles' small DenseNets (2 x 2 at 64 px: a quadrant, not a
joint). Earlier layers (``features.transitionK.relu``, finer grids) may be named
instead, but their channel-averaged gradients are weakly class-specific: on the tests'
trained 4-square network Grad-CAM at ``features.transition1.relu`` (8 x 8) put 30 % of
the true positives' peaks in the right square, ``class_layers.relu`` (4 x 4) 90 %,
occlusion 100 %. On the phantom (``benchmarks/bench_explain.py``: 128 px, blocks
(2, 2, 2), 19 true positives in 26 test images) the peak fell in the joint's own region
for 26 % (Grad-CAM, ``class_layers.relu``, 8 x 8), 32 % (transition1) and 32 % (occlusion),
chance 11 %; on SOME inflamed joint for 47 %, 32 % and 84 %: the small networks' evidence
for a joint is often another hot joint of the same patient (inflammation clusters).
At 64 px (4 x 4 map) Grad-CAM at ``class_layers.relu`` was at chance (7 % vs 10 %).

Each member's map of each label is scaled to maximum 1 (all zeros stays zeros: no
evidence for that label anywhere), then the members are averaged. Maps are on the
classifier's input grid (S, S) of :func:`jointaug.classify.transforms.prepare_image`;
:func:`jointaug.experiments.overlay.to_image_grid` puts them back on the user's image.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence

import numpy as np
import torch
from monai.visualize import GradCAM, OcclusionSensitivity
from monai.visualize.class_activation_maps import ModelWithHooks

METHODS = ("gradcam", "occlusion")


class _RowClassHooks(ModelWithHooks):
    """MONAI's hooks, with ``class_idx`` a (B,) tensor: row b back-propagates label
    ``class_idx[b]`` (MONAI's ``logits[:, idx]`` would mix every row with every label)."""

    def class_score(self, logits: torch.Tensor, class_idx) -> torch.Tensor:
        idx = torch.as_tensor(class_idx, device=logits.device).reshape(-1)
        return logits[torch.arange(logits.shape[0], device=logits.device), idx]


def cam_candidates(model: torch.nn.Module) -> list[str]:
    """Grad-CAM target layers of a MONAI DenseNet, deepest first."""
    names = [n for n, _ in model.named_modules()]
    trans = sorted(
        (n for n in names if n.startswith("features.transition") and n.endswith(".relu")),
        key=lambda n: int(n.split(".")[1].removeprefix("transition")),
        reverse=True,
    )
    return [n for n in ("class_layers.relu",) if n in names] + trans


def cam_layer(model: torch.nn.Module) -> str:
    """The default Grad-CAM target: ``class_layers.relu``, else the deepest candidate."""
    cands = cam_candidates(model)
    if not cands:
        raise ValueError("no Grad-CAM target layer found: not a MONAI DenseNet; pass a layer name")
    return cands[0]


def _scale_to_max(maps: np.ndarray) -> np.ndarray:
    """(L, S, S) -> each map / its maximum; negative values clipped; all-zero maps stay zero."""
    maps = np.clip(np.nan_to_num(maps.astype(np.float32)), 0, None)
    top = maps.reshape(len(maps), -1).max(axis=1)
    return np.where(top[:, None, None] > 0, maps / np.maximum(top, 1e-30)[:, None, None], 0.0)


class EnsembleExplainer:
    """Per-label maps (L, S, S) of prepared images, averaged over the member networks.

    Args:
        models: networks (eval mode) taking (B, 1, S, S) and returning (B, L) logits.
        method: ``gradcam`` or ``occlusion``.
        layer: Grad-CAM target layer (same name in every member); None: :func:`cam_layer`.
        batch: images per forward pass (labels per Grad-CAM pass, patches per occlusion pass).
    """

    def __init__(
        self,
        models: Sequence[torch.nn.Module],
        method: str = "gradcam",
        layer: str | None = None,
        batch: int = 32,
    ):
        if method not in METHODS:
            raise ValueError(f"explain method {method!r}: choose one of {', '.join(METHODS)}")
        if not models:
            raise ValueError("an ensemble needs at least one member")
        self.models, self.method, self.batch = list(models), method, batch
        self.layer = None
        if method == "gradcam":
            self.layer = layer or cam_layer(self.models[0])
            known = {n for n, _ in self.models[0].named_modules()}
            if self.layer not in known:
                raise ValueError(
                    f"Grad-CAM layer {self.layer!r} is not in the network "
                    f"(candidates: {', '.join(cam_candidates(self.models[0])) or 'none'})"
                )
            self._cams = [
                GradCAM(
                    nn_module=_RowClassHooks(
                        m, self.layer, register_forward=True, register_backward=True
                    ),
                    target_layers=self.layer,
                    postprocessing=lambda m: m,
                )
                for m in self.models
            ]

    def member_maps(self, k: int, image: np.ndarray) -> np.ndarray:
        """Member ``k``'s raw maps (L, S, S) of one prepared image (S, S)."""
        model = self.models[k]
        p = next(model.parameters())
        x = torch.as_tensor(np.asarray(image, np.float32), device=p.device)[None, None]
        if self.method == "occlusion":
            size = x.shape[-1]
            occ = OcclusionSensitivity(
                model,
                mask_size=max(3, size // 8),
                n_batch=self.batch,
                verbose=False,
                overlap=0.6,
                activate=torch.sigmoid,
            )
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # MONAI 1.6's list indexing
                p0 = torch.sigmoid(model(x))[0]  # (L,)
                occluded, _ = occ(x)  # (1, L, S, S): p with a patch centred at each pixel
            return (p0[:, None, None] - torch.as_tensor(occluded)[0]).cpu().numpy()
        with torch.no_grad():
            n_labels = int(model(x).shape[1])
        out = []
        with torch.enable_grad():
            for start in range(0, n_labels, self.batch):
                idx = torch.arange(start, min(start + self.batch, n_labels), device=p.device)
                # the input needs a gradient too: frozen early layers still get their maps
                rows = x.expand(len(idx), -1, -1, -1).clone().requires_grad_(True)
                out.append(self._cams[k](rows, class_idx=idx)[:, 0].detach())
        return torch.cat(out).cpu().numpy()

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """Maps (L, S, S) float32 in [0, 1] of one prepared image (module docstring)."""
        maps = [_scale_to_max(self.member_maps(k, image)) for k in range(len(self.models))]
        return np.mean(np.stack(maps), axis=0).astype(np.float32)


def explain_files(
    model_paths: Sequence[str | os.PathLike],
    image_paths: Sequence[str | os.PathLike],
    method: str = "gradcam",
    layer: str | None = None,
    device: str = "cpu",
    views: Sequence[str | None] | None = None,
) -> tuple[np.ndarray, dict]:
    """Ensemble maps (N, L, S, S) float32 of image files -- (N, L, S, 2S) for a per-hand
    model -- and what made them (``method``, ``layer``, ``image_size``, ``members``).

    Images are prepared as the models were trained (their input layout; ``views`` as in
    :func:`jointaug.classify.predict.predict_files`) and every map is returned in the
    file's own orientation (a mirrored view's maps are flipped back). Per hand, each crop
    is explained by the shared network for its own 15 labels and its maps are put back on
    its half of the image (the right crop un-mirrored); a label's map is zero on the other
    hand.
    """
    from jointaug.classify.predict import load_classifier
    from jointaug.classify.transforms import InputLayout, prepare_input
    from jointaug.dataset.io import read_image

    loaded = [load_classifier(p, device) for p in model_paths]
    arch = loaded[0][2]
    size = int(arch["image_size"])
    lay = InputLayout.from_json(arch["layout"]) if arch.get("layout") else None
    models = [m for m, _, _ in loaded]
    per_hand = lay is not None and lay.per_hand
    ex = EnsembleExplainer([m.net for m in models] if per_hand else models, method, layer)
    views = list(views) if views is not None else [None] * len(image_paths)
    maps = []
    for path, view in zip(image_paths, views, strict=True):
        x = prepare_input(read_image(path), size, lay, view)
        m = _hand_maps(ex, x, models[0]) if per_hand else ex(x)
        if lay is not None and lay.mirrored(view):
            m = m[..., ::-1]  # back to the file's own orientation
        maps.append(np.ascontiguousarray(m, dtype=np.float32))
    info = {"method": method, "layer": ex.layer, "image_size": size, "members": len(loaded)}
    return np.stack(maps), info


def _hand_maps(ex: EnsembleExplainer, x: np.ndarray, model: torch.nn.Module) -> np.ndarray:
    """(L, S, 2S) maps of one per-hand input (S, 2S) from its two crops' (L/2, S, S) maps."""
    s = x.shape[0]
    slots = model.slots.cpu().numpy()
    out = np.zeros((model.n_labels, s, 2 * s), np.float32)
    out[slots[0], :, :s] = ex(np.ascontiguousarray(x[:, :s]))
    out[slots[1], :, s:] = ex(np.ascontiguousarray(x[:, s:][:, ::-1]))[..., ::-1]
    return out
