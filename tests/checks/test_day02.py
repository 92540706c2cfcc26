"""Day 2's checks (``checks.lenet``, ``checks.alexnet``) against reference models and mutants.

The reference models below are the course slides' LeNet-5 and AlexNet; the stored target
tables (``lenet5-10``, ``alexnet-slides-1000``) must be exactly their summaries.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from autograder.checks.alexnet import (
    SLIDES_ALEXNET_SHAPES,
    GroupedConvCase,
    check_alexnet_settings,
    check_grouped_conv,
    check_layer_shapes,
)
from autograder.checks.lenet import (
    check_evaluate,
    check_lenet5_tanh,
    check_train_one_epoch,
    lenet5_params,
)
from autograder.checks.tables import check_summary
from autograder.checks.targets import stored_table
from labkit.summary import capture_summary, count_parameters


class LeNet5(nn.Module):
    def __init__(self, num_classes: int = 10, pool=nn.AvgPool2d, act=torch.tanh) -> None:
        super().__init__()
        self.act = act
        self.conv1 = nn.Conv2d(1, 6, 5)
        self.pool2 = pool(2, 2)
        self.conv3 = nn.Conv2d(6, 16, 5)
        self.pool4 = pool(2, 2)
        self.conv5 = nn.Conv2d(16, 120, 5)
        self.fc6 = nn.Linear(120, 84)
        self.fc7 = nn.Linear(84, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool2(self.act(self.conv1(x)))
        x = self.pool4(self.act(self.conv3(x)))
        x = torch.flatten(self.act(self.conv5(x)), 1)
        return self.fc7(self.act(self.fc6(x)))


def alexnet(
    num_classes: int = 1000,
    conv1: int = 96,
    lrn_first: bool = True,
    lrn: tuple = (5, 1e-4, 0.75, 2.0),
    p: float = 0.5,
) -> nn.Module:
    def norm() -> nn.Module:
        size, alpha, beta, k = lrn
        return nn.LocalResponseNorm(size, alpha, beta, k)

    def block(conv: nn.Module) -> list[nn.Module]:
        pool = nn.MaxPool2d(3, 2)
        return [conv, nn.ReLU(inplace=True)] + ([norm(), pool] if lrn_first else [pool, norm()])

    features = nn.Sequential(
        *block(nn.Conv2d(3, conv1, 11, 4)),
        *block(nn.Conv2d(conv1, 256, 5, padding=2)),
        nn.Conv2d(256, 384, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(384, 384, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2),
    )
    classifier = nn.Sequential(
        nn.Dropout(p),
        nn.Linear(9216, 4096),
        nn.ReLU(inplace=True),
        nn.Dropout(p),
        nn.Linear(4096, 4096),
        nn.ReLU(inplace=True),
        nn.Linear(4096, num_classes),
    )
    return _AlexNet(features, classifier)


class _AlexNet(nn.Module):
    def __init__(self, features: nn.Sequential, classifier: nn.Sequential) -> None:
        super().__init__()
        self.features = features
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


# ---- stored targets -------------------------------------------------------------------


def test_lenet5_target_is_the_seed_table():
    target = stored_table("lenet5-10")
    assert target.total_params == 61_706 == lenet5_params(10)
    assert [r.layer for r in target.rows] == [
        "Conv2d",
        "AvgPool2d",
        "Conv2d",
        "AvgPool2d",
        "Conv2d",
        "Linear",
        "Linear",
    ]
    assert capture_summary(LeNet5(), (1, 32, 32)).to_dict() == target.to_dict()


@pytest.mark.parametrize("num_classes", [2, 10, 47])
def test_lenet5_params_formula(num_classes):
    assert count_parameters(LeNet5(num_classes)) == lenet5_params(num_classes)


def test_alexnet_target_is_the_seed_network():
    target = stored_table("alexnet-slides-1000")
    assert target.total_params == 62_378_344
    model = alexnet()
    assert capture_summary(model, (3, 227, 227)).to_dict() == target.to_dict()
    assert not check_summary(model, target, (3, 227, 227))


def test_torchvision_alexnet_count_is_the_one_the_notebook_explains():
    assert count_parameters(torchvision.models.alexnet(weights=None)) == 61_100_840


# ---- LeNet-5 -------------------------------------------------------------------------


def test_lenet5_reference_passes():
    assert not check_summary(LeNet5(), stored_table("lenet5-10"), (1, 32, 32))
    assert not check_lenet5_tanh(LeNet5())


def test_max_pooling_fails_the_table():
    problems = check_summary(LeNet5(pool=nn.MaxPool2d), stored_table("lenet5-10"), (1, 32, 32))
    assert problems and "MaxPool2d" in problems[0]


@pytest.mark.parametrize("act", [lambda x: x, F.relu, torch.sigmoid])
def test_missing_or_other_activation_fails_tanh_check(act):
    problems = check_lenet5_tanh(LeNet5(act=act))
    if act is torch.sigmoid:
        # sigmoid stays within [0, 1]: within tanh's range, so it passes this check
        assert not problems
    else:
        assert problems and "tanh" in problems[0]


def test_tanh_check_does_not_change_the_model():
    model = LeNet5()
    before = copy.deepcopy(model.state_dict())
    model.train()
    check_lenet5_tanh(model)
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_tanh_check_reports_a_failing_forward():
    class Broken(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(3, 3)

        def forward(self, x):
            raise RuntimeError("boom")

    assert "boom" in check_lenet5_tanh(Broken())[0]


# ---- the training loop ---------------------------------------------------------------


def good_train(model, loader, optimizer, device):
    model.train()
    losses, correct, seen = [], 0, 0
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        correct += (logits.argmax(1) == y).sum().item()
        seen += len(y)
    return losses, correct / seen


def train_variant(
    *, zero_grad=True, train_mode=True, step=True, item=True, percent=False, no_grad=False
):
    def run(model, loader, optimizer, device):
        if train_mode:
            model.train()
        losses, correct, seen = [], 0, 0
        for x, y in loader:
            with torch.set_grad_enabled(not no_grad):
                logits = model(x)
                loss = F.cross_entropy(logits, y)
            if zero_grad:
                optimizer.zero_grad()
            if not no_grad:
                loss.backward()
            if step:
                optimizer.step()
            losses.append(loss.item() if item else loss.detach())
            correct += (logits.argmax(1) == y).sum().item()
            seen += len(y)
        return losses, (100 if percent else 1) * correct / seen

    return run


def zero_grad_after_backward(model, loader, optimizer, device):
    model.train()
    losses, correct, seen = [], 0, 0
    for x, y in loader:
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        loss.backward()
        optimizer.zero_grad()
        optimizer.step()
        losses.append(loss.item())
        correct += (logits.argmax(1) == y).sum().item()
        seen += len(y)
    return losses, correct / seen


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_good_train_one_epoch_passes(seed):
    assert check_train_one_epoch(good_train, seed=seed) == []


@pytest.mark.parametrize(
    ("mutant", "expected"),
    [
        (train_variant(zero_grad=False), "zero_grad"),
        (train_variant(train_mode=False), "training mode"),
        (train_variant(step=False), "SGD"),
        (train_variant(item=False), "Python floats"),
        (train_variant(percent=True), "fraction"),
        (zero_grad_after_backward, "SGD"),
    ],
)
def test_train_one_epoch_mutants_fail(mutant, expected):
    problems = check_train_one_epoch(mutant)
    assert problems and any(expected in p for p in problems), problems


def test_train_one_epoch_that_raises_is_reported():
    def broken(model, loader, optimizer, device):
        raise ValueError("oops")

    assert "oops" in check_train_one_epoch(broken)[0]


def test_train_one_epoch_stub_is_reported_not_raised():
    def stub(model, loader, optimizer, device):
        raise NotImplementedError()

    assert check_train_one_epoch(stub) == [
        "train_one_epoch raised NotImplementedError: replace the stub with your code."
    ]


def test_evaluate_stub_is_reported_not_raised():
    def stub(model, loader, device):
        raise NotImplementedError()

    assert check_evaluate(stub) == [
        "evaluate raised NotImplementedError: replace the stub with your code."
    ]


def good_evaluate(model, loader, device):
    model.eval()
    total, correct, seen = 0.0, 0, 0
    with torch.no_grad():
        for x, y in loader:
            logits = model(x)
            total += F.cross_entropy(logits, y, reduction="sum").item()
            correct += (logits.argmax(1) == y).sum().item()
            seen += len(y)
    return total / seen, correct / seen


def evaluate_variant(*, eval_mode=True, no_grad=True, batch_mean=False, tensors=False):
    def run(model, loader, device):
        if eval_mode:
            model.eval()
        total, correct, seen, batches = 0.0, 0, 0, 0
        with torch.set_grad_enabled(not no_grad):
            for x, y in loader:
                logits = model(x)
                if batch_mean:
                    total += F.cross_entropy(logits, y).item()
                else:
                    total += F.cross_entropy(logits, y, reduction="sum").item()
                correct += (logits.argmax(1) == y).sum().item()
                seen += len(y)
                batches += 1
        loss = total / (batches if batch_mean else seen)
        if tensors:
            return torch.tensor(loss), torch.tensor(correct / seen)
        return loss, correct / seen

    return run


@pytest.mark.parametrize("seed", [0, 3, 5])
def test_good_evaluate_passes(seed):
    assert check_evaluate(good_evaluate, seed=seed) == []


@pytest.mark.parametrize(
    ("mutant", "expected"),
    [
        (evaluate_variant(eval_mode=False), "model.eval()"),
        (evaluate_variant(no_grad=False), "no_grad"),
        (evaluate_variant(batch_mean=True), "Weight each batch"),
        (evaluate_variant(tensors=True), "Python floats"),
    ],
)
def test_evaluate_mutants_fail(mutant, expected):
    problems = check_evaluate(mutant)
    assert problems and any(expected in p for p in problems), problems


def test_evaluate_that_trains_is_caught():
    def trains(model, loader, device):
        model.eval()
        with torch.no_grad():
            for p in model.parameters():
                p.add_(1.0)
        return good_evaluate(model, loader, device)

    problems = check_evaluate(trains)
    assert any("changed the model" in p for p in problems), problems


def test_an_object_that_equals_everything_is_not_a_result():
    class Liar:
        def __eq__(self, other):
            return True

        def __sub__(self, other):
            return 0.0

    problems = check_evaluate(lambda model, loader, device: (Liar(), Liar()))
    assert problems and "Python floats" in problems[0]


# ---- AlexNet -------------------------------------------------------------------------


def test_seed_alexnet_passes():
    model = alexnet()
    assert check_layer_shapes(model, SLIDES_ALEXNET_SHAPES) == []
    assert check_alexnet_settings(model) == []


def test_pool_before_lrn_names_layer_two():
    problems = check_layer_shapes(alexnet(lrn_first=False))
    assert problems and "layer 2" in problems[0] and "LocalResponseNorm" in problems[0]


def test_torchvision_alexnet_fails_at_conv1():
    problems = check_layer_shapes(
        torchvision.models.alexnet(weights=None), input_size=(3, 227, 227)
    )
    assert problems and "layer 1" in problems[0] and "64" in problems[0]


def test_missing_fc_layer_is_listed():
    model = alexnet()
    model.classifier = model.classifier[:-3]  # ends after fc6: fc7 and fc8 are missing
    problems = check_layer_shapes(model)
    assert problems and "Missing" in problems[0]


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        (alexnet(lrn=(5, 1e-4, 0.75, 1.0)), "k=2"),
        (alexnet(p=0.2), "Dropout(0.5)"),
    ],
)
def test_alexnet_settings_mutants(model, expected):
    problems = check_alexnet_settings(model)
    assert problems and expected in problems[0]


# ---- grouped convolution -------------------------------------------------------------


def good_columns(x, conv_a, conv_b):
    x_a, x_b = x.chunk(2, dim=1)
    return torch.cat([conv_a(x_a), conv_b(x_b)], dim=1)


def good_grouped(conv_a, conv_b, *, swap=False, groups=2, bias=True):
    first, second = (conv_b, conv_a) if swap else (conv_a, conv_b)
    conv = nn.Conv2d(
        2 * conv_a.in_channels,
        2 * conv_a.out_channels,
        conv_a.kernel_size,
        conv_a.stride,
        conv_a.padding,
        groups=groups,
    )
    if groups == 2:
        with torch.no_grad():
            conv.weight.copy_(torch.cat([first.weight, second.weight]))
            if bias:
                conv.bias.copy_(torch.cat([first.bias, second.bias]))
    return conv


CASES = [GroupedConvCase(48, 128, 5, 1, 2), GroupedConvCase(3, 4, 3, 2, 0, size=11, batch=3)]


def test_grouped_reference_passes():
    assert check_grouped_conv(good_columns, good_grouped, CASES) == []


@pytest.mark.parametrize(
    ("columns", "grouped", "expected"),
    [
        (
            lambda x, a, b: torch.cat([b(x[:, x.shape[1] // 2 :]), a(x[:, : x.shape[1] // 2])], 1),
            good_grouped,
            "two_column_conv",
        ),
        (
            lambda x, a, b: torch.cat([a(x[:, ::2]), b(x[:, 1::2])], 1),
            good_grouped,
            "values differ",
        ),
        (good_columns, lambda a, b: good_grouped(a, b, swap=True), "not the two columns"),
        (good_columns, lambda a, b: good_grouped(a, b, groups=1), "groups=1"),
        (good_columns, lambda a, b: good_grouped(a, b, bias=False), "not the two columns"),
        (good_columns, lambda a, b: nn.Identity(), "must return an nn.Conv2d"),
    ],
)
def test_grouped_mutants_fail(columns, grouped, expected):
    problems = check_grouped_conv(columns, grouped, CASES)
    assert problems and any(expected in p for p in problems), problems
