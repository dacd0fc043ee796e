"""The one Kaiming-uniform initialisation (jointaug/init.py) used by all three networks."""

from __future__ import annotations

import math

import torch
from torch import nn

from jointaug.init import kaiming_uniform_, seeded_generator


def _net() -> nn.Module:
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3),
        nn.BatchNorm2d(8),
        nn.ConvTranspose2d(8, 4, 2),
        nn.Flatten(),
        nn.Linear(16, 5),
        nn.Linear(5, 2),
    )
    nn.init.zeros_(net[5].weight)  # a deliberate zero layer
    with torch.no_grad():
        net[1].weight.fill_(3.0)
        net[1].bias.fill_(2.0)
    return net


def test_bounds_zero_bias_and_zero_layers_kept():
    net = _net()
    n = kaiming_uniform_(net, seeded_generator(0), keep_zero=True)
    assert n == 3  # conv, transposed conv, first linear; the zero linear is kept
    assert float(net[5].weight.detach().abs().max()) == 0.0
    for m in (net[0], net[2], net[4]):
        fan_in = nn.init._calculate_fan_in_and_fan_out(m.weight)[0]
        bound = math.sqrt(6.0 / fan_in)
        w = m.weight.detach().abs()
        assert float(w.max()) <= bound and float(w.max()) > 0.7 * bound
        assert float(m.bias.detach().abs().max()) == 0.0
    assert float(net[1].weight.detach()[0]) == 3.0  # batch norm untouched without reset_norm


def test_zero_layers_redrawn_and_norm_reset_on_request():
    net = _net()
    assert kaiming_uniform_(net, seeded_generator(0), reset_norm=True) == 4
    assert float(net[5].weight.detach().abs().max()) > 0
    assert torch.equal(net[1].weight, torch.ones(8)) and torch.equal(net[1].bias, torch.zeros(8))


def test_a_seed_fixes_the_weights_and_leaves_the_global_rng_alone():
    torch.manual_seed(1)
    before = torch.get_rng_state()
    a, b, c = _net(), _net(), _net()
    state = torch.get_rng_state()
    kaiming_uniform_(a, seeded_generator(5))
    kaiming_uniform_(b, seeded_generator(5))
    kaiming_uniform_(c, seeded_generator(6))
    assert torch.equal(torch.get_rng_state(), state) and not torch.equal(before, state)
    assert torch.equal(a[0].weight, b[0].weight) and not torch.equal(a[0].weight, c[0].weight)
