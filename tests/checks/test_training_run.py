"""Tests for the training-run check (autograder.checks.training): ``check_training_run``,
``snapshot`` and ``chance_threshold``, against a real ``fit`` of a tiny generated dataset
(``tests.conftest.tiny_run``) and histories edited or made up from it.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from torch import nn

from autograder.checks.training import chance_threshold, check_training_run, snapshot
from labkit.train import EpochStats, History, evaluate, fit
from tests.conftest import tiny_cnn, tiny_data, tiny_run


@pytest.fixture(autouse=True)
def _fast_size(monkeypatch):
    """The checks at a student's size; the token size's tests say so (``graded``)."""
    monkeypatch.setenv("LABKIT_RUN", "fast")


@pytest.fixture(scope="module")
def run():
    """One real training run, shared: (data, model, snapshot before, history, printed)."""
    return tiny_run()


# ---- check_training_run -------------------------------------------------------------------------


def _with_epochs(history: History, *changes: dict) -> History:
    """A copy of ``history`` with each epoch's fields replaced by the matching dict."""
    epochs = [
        dataclasses.replace(stats, **change)
        for stats, change in zip(history.epochs, changes, strict=True)
    ]
    return dataclasses.replace(history, epochs=epochs)


def test_a_real_run_passes(run):
    assert check_training_run(run.history, run.before, run.model, epochs=2) == []
    assert check_training_run(run.history, run.before, run.model, epochs=2, data=run.data) == []


def test_one_epoch_recorded(run):
    history = dataclasses.replace(run.history, epochs=run.history.epochs[:1])
    assert check_training_run(history, run.before, run.model) == [
        "expected exactly 2 epochs in the history, found 1."
    ]


@pytest.mark.parametrize("field", ["train_loss", "test_loss", "train_acc", "test_acc"])
@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_a_loss_or_accuracy_that_is_not_finite(run, field, value):
    history = _with_epochs(run.history, {}, {field: value})
    assert check_training_run(history, run.before, run.model) == [
        f"epoch 2: {field} is {value!r}, not a finite number."
    ]


def test_a_recorded_value_that_is_not_a_number(run):
    history = _with_epochs(run.history, {"train_loss": torch.tensor(0.5)}, {})
    (problem,) = check_training_run(history, run.before, run.model)
    assert problem.startswith("epoch 1: train_loss is tensor(0.5000)")


def test_loss_that_does_not_go_down(run):
    history = _with_epochs(run.history, {"train_loss": 0.60}, {"train_loss": 0.65})
    (problem,) = check_training_run(history, run.before, run.model)
    assert problem.startswith("the training loss did not go down: epoch 1 0.6000, epoch 2 0.6500.")


def test_accuracy_at_chance(run):
    history = _with_epochs(run.history, {}, {"test_acc": 0.6})
    (problem,) = check_training_run(history, run.before, run.model)
    assert problem == (
        "test accuracy 60.0% after epoch 2 is not above chance (50%; needs more than "
        "68.8% on 64 test images)."
    )


def test_parameters_that_did_not_change(run):
    problems = check_training_run(run.history, snapshot(run.model), run.model)
    assert problems == ["no parameter changed during training."]


def test_some_parameters_that_did_not_change(run):
    before = {**run.before, "5.bias": run.model[5].bias.detach().clone()}
    (problem,) = check_training_run(run.history, before, run.model)
    assert problem == (
        "1 of 6 parameter tensors never changed during training "
        "(a layer forward() never uses?): 5.bias"
    )


def test_a_snapshot_of_another_model(run):
    before = snapshot(nn.Linear(2, 2))
    assert check_training_run(run.history, before, run.model) == [
        "the model's parameters are not the ones snapshotted before training."
    ]


class AlwaysEqual:
    """Equal to everything: passes any ``==`` check a lazy test would make."""

    def __eq__(self, other: object) -> bool:
        return True

    __hash__ = None


class HistoryLike(History):
    pass


@pytest.mark.parametrize(
    ("fake", "kind"),
    [
        (AlwaysEqual(), "AlwaysEqual"),
        ({"epochs": [1, 2], "train_loss": [0.9, 0.1]}, "dict"),
        (None, "NoneType"),
    ],
)
def test_an_object_that_is_not_a_history(run, fake, kind):
    assert check_training_run(fake, run.before, run.model) == [
        f"expected the History that fit() returns, got {kind}."
    ]


def test_a_history_subclass_is_not_accepted(run):
    fake = HistoryLike(
        **{f.name: getattr(run.history, f.name) for f in dataclasses.fields(History)}
    )
    assert check_training_run(fake, run.before, run.model) == [
        "expected the History that fit() returns, got HistoryLike."
    ]


def test_recorded_accuracy_that_evaluation_does_not_reproduce(run):
    _, accuracy = evaluate(run.model, run.data)
    assert accuracy > 0.9  # so that 0.8 is above chance and far from it
    history = _with_epochs(run.history, {}, {"test_acc": 0.8})

    assert check_training_run(history, run.before, run.model) == []  # only data= can tell
    assert check_training_run(history, run.before, run.model, data=run.data) == [
        f"evaluating the trained model gives {accuracy:.1%} test accuracy, but the "
        "history records 80.0%."
    ]


def test_a_history_built_by_hand_is_evaluated_in_fp32(run, monkeypatch):
    """Day 2's own loop builds its History: re-evaluation must compute as that loop did."""
    assert (History("cpu", 1, 1, 2).precision, History("cpu", 1, 1, 2).channels_last) == (
        "fp32",
        False,
    )
    calls = []
    monkeypatch.setattr(
        "autograder.checks.training.evaluate",
        lambda model, data, **kwargs: calls.append(kwargs) or evaluate(model, data, **kwargs),
    )
    by_hand = dataclasses.replace(run.history, precision="fp32", channels_last=False)
    check_training_run(by_hand, run.before, run.model, data=run.data)
    check_training_run(run.history, run.before, run.model, data=run.data)
    assert calls == [
        {"precision": "fp32", "channels_last": False},
        {"precision": run.history.precision, "channels_last": True},
    ]


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"precision": "fp8"}, "the history's precision is 'fp8', not 'bf16', 'fp16' or 'fp32'."),
        ({"precision": AlwaysEqual()}, "the history's precision is <"),
        ({"channels_last": 1}, "the history's channels_last is 1, not True or False."),
        ({"precision": "fp16"}, "evaluating the trained model as the history records failed"),
    ],
)
def test_a_history_whose_settings_cannot_be_reproduced(run, change, problem):
    history = dataclasses.replace(run.history, **change)
    (found,) = check_training_run(history, run.before, run.model, data=run.data)
    assert found.startswith(problem)


def test_a_fake_history_with_made_up_numbers(run):
    history = History(
        device="cpu",
        num_train=128,
        num_test=64,
        num_classes=2,
        epochs=[
            EpochStats(1, train_loss=0.7, train_acc=0.5, test_loss=0.7, test_acc=0.5, seconds=1.0),
            EpochStats(2, train_loss=0.8, train_acc=0.5, test_loss=0.7, test_acc=0.5, seconds=1.0),
        ],
    )
    problems = check_training_run(history, run.before, run.model)
    assert len(problems) == 2
    assert problems[0].startswith("the training loss did not go down")
    assert problems[1].startswith("test accuracy 50.0% after epoch 2 is not above chance")


def test_chance_threshold():
    assert chance_threshold(10, 1000) == pytest.approx(0.1 + 3 * math.sqrt(0.09 / 1000))
    assert chance_threshold(2, 64) == pytest.approx(0.6875)
    assert chance_threshold(10, 0) == pytest.approx(1.0)  # no test images: nothing passes


def test_snapshot_is_a_detached_copy():
    model = nn.Linear(3, 2)
    before = snapshot(model)
    assert set(before) == {"weight", "bias"}
    with torch.no_grad():
        model.weight.add_(1)
    assert not torch.equal(before["weight"], model.weight)
    assert not before["weight"].requires_grad


# ---- the token size of graded runs: mutants of the run still fail -------------------------------


def _mutant_run(data, *, lr=0.1, train_on=None, freeze=(), no_step=False):
    """A real ``fit`` of ``tiny_cnn`` with one thing broken; ``train_on`` replaces the data
    it trains on (the check is then given ``data``)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = tiny_cnn()
        before = snapshot(model)
        for index in freeze:
            for parameter in model[index].parameters():
                parameter.requires_grad_(False)
        optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
        if no_step:
            optimizer.step = lambda *args, **kwargs: None
        history = fit(model, train_on or data, optimizer, epochs=2, batch_size=16, progress=False)
    return history, before, model


@pytest.fixture
def graded(monkeypatch):
    monkeypatch.setenv("LABKIT_RUN", "grade")


def test_an_honest_run_passes_at_the_token_size(graded):
    data = tiny_data()
    history, before, model = _mutant_run(data)
    assert history.batch_size == 16 and len(history.step_losses) == 2 * 128 // 16
    assert check_training_run(history, before, model, epochs=2, data=data) == []


def test_at_the_token_size_the_training_accuracy_must_pass_chance(run, monkeypatch):
    history = _with_epochs(run.history, {}, {"test_acc": 0.6})
    monkeypatch.setenv("LABKIT_RUN", "grade")
    assert check_training_run(history, run.before, run.model) == []
    guessing = _with_epochs(run.history, {}, {"train_acc": 0.55})
    assert check_training_run(guessing, run.before, run.model) == [
        "training accuracy 55.0% after epoch 2 is not above chance (50%; needs more than "
        "63.3% on 128 training images)."
    ]
    monkeypatch.setenv("LABKIT_RUN", "fast")
    (problem,) = check_training_run(history, run.before, run.model)
    assert problem.startswith("test accuracy 60.0% after epoch 2 is not above chance")


@pytest.mark.parametrize(
    ("mutant", "problem"),
    [
        ({"no_step": True}, "no parameter changed during training."),
        ({"lr": 0.0}, "no parameter changed during training."),
        ({"freeze": (0,)}, "2 of 6 parameter tensors never changed during training"),
    ],
)
def test_a_run_that_does_not_update_fails_at_the_token_size(graded, mutant, problem):
    data = tiny_data()
    history, before, model = _mutant_run(data, **mutant)
    problems = check_training_run(history, before, model, epochs=2, data=data)
    assert any(p.startswith(problem) for p in problems), problems


def test_a_loop_that_skips_batches_fails_at_the_token_size(graded, monkeypatch):
    import labkit.train

    monkeypatch.setattr(labkit.train, "tqdm", lambda batches, **kwargs: batches[::2])
    data = tiny_data()
    history, before, model = _mutant_run(data)
    problems = check_training_run(history, before, model, epochs=2, data=data)
    assert problems[0] == (
        "the run took 8 optimizer steps in 2 epochs, but 128 images in batches of 16 make "
        "16: were batches skipped?"
    )


def test_a_run_on_the_test_split_fails_at_the_token_size(graded):
    data = tiny_data()
    swapped = dataclasses.replace(
        data,
        train_images=data.test_images,
        train_labels=data.test_labels,
        test_images=data.train_images,
        test_labels=data.train_labels,
    )
    history, before, model = _mutant_run(data, train_on=swapped)
    problems = check_training_run(history, before, model, epochs=2, data=data)
    assert "the run trained on the test split: train on the training split." in problems
    assert problems[0] == (
        "the run trained on 64 images, but the training split has 128: train on data's "
        "training split, all of it."
    )
    # the same number of images as the training split: the digest still tells
    same_size = dataclasses.replace(
        data, train_images=data.train_images[:64], train_labels=data.train_labels[:64]
    )
    on_test = dataclasses.replace(
        same_size, train_images=data.test_images, train_labels=data.test_labels
    )
    history, before, model = _mutant_run(same_size, train_on=on_test)
    assert check_training_run(history, before, model, epochs=2, data=same_size) == [
        "the run trained on the test split: train on the training split."
    ]


def test_a_run_on_other_images_fails(graded):
    data = tiny_data()
    other = dataclasses.replace(data, train_labels=1 - data.train_labels)
    history, before, model = _mutant_run(data, train_on=other)
    problems = check_training_run(history, before, model, epochs=2, data=data)
    assert "the run trained on other images or labels than data's training split." in problems


def test_a_batch_size_that_is_not_a_whole_number(run):
    history = dataclasses.replace(run.history, batch_size=16.0)
    assert check_training_run(history, run.before, run.model) == [
        "the history's batch_size is 16.0, not a whole number."
    ]
