"""The classifier network: shapes, Kaiming-uniform initialisation, weights round trip."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from jointaug.classify.checkpoint import save_tensors
from jointaug.classify.model import build_model, model_metadata
from jointaug.classify.predict import load_classifier, predict_probs
from jointaug.config import ClassifyConfig

SMALL = ClassifyConfig(image_size=32, growth_rate=8, block_config=[2, 2], init_features=16)


def test_output_is_one_logit_per_label():
    model = build_model(SMALL, n_labels=7, seed=0).eval()
    with torch.no_grad():
        out = model(torch.rand(3, 1, 32, 32))
    assert out.shape == (3, 7)
    assert out.dtype == torch.float32
    # logits, not probabilities: a random init gives values outside [0, 1]
    assert (out < 0).any() or (out > 1).any()


def test_densenet121_is_the_paper_network():
    model = build_model(ClassifyConfig(), n_labels=30, seed=0)
    n_params = sum(p.numel() for p in model.parameters())
    assert 6.9e6 < n_params < 7.1e6  # DenseNet121 with a 1-channel stem and 30 outputs
    assert model.class_layers.out.out_features == 30


def test_kaiming_uniform_bounds_and_spread():
    model = build_model(ClassifyConfig(), n_labels=30, seed=1)
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert len(layers) > 100
    for m in layers:
        w = m.weight.detach()
        fan_in = w[0].numel()
        bound = math.sqrt(6.0 / fan_in)  # gain sqrt(2) (ReLU) * sqrt(3 / fan_in)
        assert float(w.abs().max()) <= bound * (1 + 1e-6)
        if w.numel() > 5000:  # uniform, not normal: fills the range, std = bound / sqrt(3)
            assert float(w.abs().max()) > 0.98 * bound
            assert abs(float(w.std()) - bound / math.sqrt(3)) < 0.05 * bound
        if m.bias is not None:
            assert torch.all(m.bias == 0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            assert torch.all(m.weight == 1) and torch.all(m.bias == 0)


def test_init_is_seeded_and_leaves_global_rng_alone():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a = build_model(SMALL, 4, seed=5).state_dict()
    b = build_model(SMALL, 4, seed=5).state_dict()
    c = build_model(SMALL, 4, seed=6).state_dict()
    assert torch.equal(torch.get_rng_state(), before)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_weights_file_rebuilds_the_same_network(tmp_path):
    model = build_model(SMALL, 4, seed=2).eval()
    path = tmp_path / "model.safetensors"
    save_tensors(path, model.state_dict(), model_metadata(SMALL, ["a", "b", "c", "d"]))
    loaded, labels, arch = load_classifier(path)
    assert labels == ["a", "b", "c", "d"] and arch["block_config"] == [2, 2]
    x = np.random.default_rng(0).random((5, 1, 32, 32)).astype(np.float32)
    np.testing.assert_allclose(predict_probs(loaded, x), predict_probs(model, x), atol=1e-6)
