"""The exponential moving average of trained weights that replicas act with."""

import pytest
import torch
from torch import nn

from redux.learner.weight_average import WeightAverage


def test_the_average_follows_the_weights_geometrically():
    module = nn.Linear(3, 2)
    with torch.no_grad():
        module.weight.zero_()
    average = WeightAverage(module, decay=0.9)
    decays = []
    for step in range(1, 40):
        with torch.no_grad():
            module.weight.fill_(1.0)
        average.update(module)
        decays.append(min(0.9, (1 + step) / (10 + step)))
    # constant target 1 from 0: the average is 1 - prod(decays)
    expected = 1.0 - torch.tensor(decays, dtype=torch.float64).prod().item()
    assert average.weights()["weight"] == pytest.approx(torch.full((2, 3), expected), abs=1e-6)
    assert not torch.equal(average.weights()["weight"], module.weight.detach())


def test_the_average_smooths_noise_the_raw_weights_carry():
    torch.manual_seed(0)
    module = nn.Linear(50, 50, bias=False)
    average = WeightAverage(module, decay=0.98)
    for _ in range(400):
        with torch.no_grad():
            module.weight.copy_(torch.randn(50, 50))  # noise around a true value of 0
        average.update(module)
    assert average.weights()["weight"].std() < 0.2 * module.weight.std()


def test_non_float_buffers_are_copied_and_a_saved_average_must_fit():
    module = nn.BatchNorm1d(4)
    average = WeightAverage(module, decay=0.5)
    module.num_batches_tracked += 7
    average.update(module)
    assert average.weights()["num_batches_tracked"].item() == 7
    with pytest.raises(ValueError, match="missing"):
        average.load({"weight": torch.ones(4)}, updates=1)
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        WeightAverage(module, decay=1.0)
