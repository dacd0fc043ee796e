"""Losses ignore unknown labels; pos_weight and focal variants."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from jointaug.classify.losses import make_loss, masked_bce, pos_weight_from_labels


def test_masked_bce_ignores_nan_targets_and_their_gradients():
    logits = torch.tensor([[2.0, -1.0, 0.5], [0.3, 4.0, -2.0]], requires_grad=True)
    targets = torch.tensor([[1.0, math.nan, 0.0], [math.nan, 1.0, 1.0]])
    loss = masked_bce(logits, targets)
    known = torch.isfinite(targets)
    expect = F.binary_cross_entropy_with_logits(logits[known], targets[known])
    torch.testing.assert_close(loss, expect)
    loss.backward()
    assert torch.all(logits.grad[~known] == 0) and torch.all(logits.grad[known] != 0)


def test_all_unknown_batch_gives_zero_and_backpropagates():
    logits = torch.zeros(2, 3, requires_grad=True)
    loss = masked_bce(logits, torch.full((2, 3), math.nan))
    assert float(loss.detach()) == 0.0
    loss.backward()


def test_pos_weight_is_negatives_over_positives_clipped():
    y = np.array([[1, 0, 0, np.nan], [0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 1, np.nan]], np.float32)
    w = pos_weight_from_labels(y, clip=(0.1, 50.0))
    np.testing.assert_allclose(w, [3.0, 50.0, 1 / 3, 0.1])  # last: 2 pos, 0 neg -> lower clip


def test_pos_weight_loss_weights_positive_terms():
    y = np.array([[1, 0], [0, 0], [0, 0], [0, 1]], np.float32)
    fn = make_loss("bce_pos_weight", train_labels=y)
    logits = torch.zeros(1, 2)
    pos = fn(logits, torch.tensor([[1.0, 1.0]]))
    neg = fn(logits, torch.tensor([[0.0, 0.0]]))
    assert float(pos / neg) == pytest.approx(3.0)  # both labels: 3 negatives per positive


def test_focal_is_masked_and_downweights_easy_examples():
    fn = make_loss("focal", focal_gamma=2.0)
    t = torch.tensor([[1.0, math.nan]])
    easy = fn(torch.tensor([[4.0, 0.0]]), t)
    hard = fn(torch.tensor([[-1.0, 0.0]]), t)
    p = torch.sigmoid(torch.tensor(4.0))
    torch.testing.assert_close(easy, -((1 - p) ** 2) * torch.log(p))  # the NaN entry is ignored
    assert float(easy) < 0.01 * float(masked_bce(torch.tensor([[4.0]]), torch.tensor([[1.0]])))
    assert float(hard) > 10 * float(easy)


def test_unknown_loss_is_rejected():
    with pytest.raises(ValueError, match="unknown loss"):
        make_loss("hinge")
    with pytest.raises(ValueError, match="training labels"):
        make_loss("bce_pos_weight")
