"""Training and inference speed of the kit's loop against the slides-style loop, side by side.

    .venv/bin/python scripts/bench_training.py [--models M ...] [--steps 6] [--rounds 5]
        [--full-models M ...] [--seeds N] [--threads N] [--no-accuracy] [--no-day04] [--quick]

Two loops on the same CIFAR-10 images and models, measured in one run:

- slides-style: torchvision transforms per image (RandomCrop(32, padding=4),
  RandomHorizontalFlip, ToTensor, Normalize) in a ``Dataset`` of PIL images, a
  ``DataLoader(batch_size=128, shuffle=True)``, fp32, NCHW, ``loss.item()`` each step;
- kit: ``labkit.fit`` and ``labkit.train.predict`` as the labs call them (uint8
  tensors on the device, batched crop and flip, channels_last, autocast as it chooses,
  the optimizer's fused step).

Models: the course slides' ResNet-18 (torchvision's, 7x7 stem and max pool), a CIFAR-stem
ResNet-18 (3x3 stride-1 stem, no max pool), VGG-16-BN for 32x32 (Day 3's: no
average pool, the classifier sized to 512 x 1 x 1) and LeNet-5 (3 input channels).

Printed: training and inference images per second of each loop and their ratio (the
median over ``--rounds`` rounds of the ratio within the round: a round times the course slides'
loop, then the kit's, each after one untimed batch of its own, so that a slow spell of a
shared machine slows both; the range of the rounds' ratios beside it); the machine's
ceiling for each model (the images per second of training if the model's multiply-adds
all ran at the rate of a large matmul, measured here, and nothing else took time) and
both loops' share of it, which says whether a target ratio is within reach of this
machine at all; one step of each lab's optimizer as built and fused (what the fused step
saves of each training step); the time of one full 2-epoch CIFAR-10 run per model
(measured for ``--full-models``, estimated from the throughput otherwise, and labelled
so); 2-epoch test accuracy of the kit's loop against the same loop in fp32 NCHW, same
data and random seed (full CIFAR-10 for ``--full-models``, a subset for the rest), over
``--seeds`` random seeds; the kit's targets; and the seconds the autograder takes for one
Day 4 submission (``scripts/bench_grading.py``'s, sandboxed). Timings are wall clock, in
this process; the load average is printed next to them. On a machine that other jobs
keep busy, torch's threads wait on each other and every number drops, the kit's loop
(all torch) more than the course slides' (part Python): compare runs at like loads. On a virtual
machine, a neighbour on the same physical cores slows it without showing in the load
average: on the CI machine the same VGG-16-BN bf16 step ran at 60 to 134 images/s
minutes apart.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import io
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torchvision
from torch import nn
from torch.utils.data import DataLoader
from torch.utils.flop_counter import FlopCounterMode
from torchvision import transforms

from labkit import ImageData, load_cifar10, seed_everything
from labkit.fastpath import BF16_MIN_SPEEDUP, choose_fast_path, fuse_step
from labkit.train import fit, predict

ROOT = Path(__file__).resolve().parent.parent
FULL_TRAIN, FULL_TEST, EPOCHS = 50_000, 10_000, 2
# On a GPU a pair of 2-epoch runs takes seconds, and cuDNN's nondeterministic kernels make
# two runs of one seed differ by about 1.4 points (H100): one seed says little there.
GPU_SEEDS = 5


# ---- models -------------------------------------------------------------------------------------


class LeNet5(nn.Module):
    """LeNet-5 as on Day 2 (tanh, average pooling), for 3 x 32 x 32 images."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, kernel_size=5)
        self.pool2 = nn.AvgPool2d(kernel_size=2, stride=2)
        self.conv3 = nn.Conv2d(6, 16, kernel_size=5)
        self.pool4 = nn.AvgPool2d(kernel_size=2, stride=2)
        self.conv5 = nn.Conv2d(16, 120, kernel_size=5)
        self.fc6 = nn.Linear(120, 84)
        self.fc7 = nn.Linear(84, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool2(torch.tanh(self.conv1(x)))  # N x 6 x 14 x 14
        x = self.pool4(torch.tanh(self.conv3(x)))  # N x 16 x 5 x 5
        x = torch.flatten(torch.tanh(self.conv5(x)), 1)  # N x 120
        return self.fc7(torch.tanh(self.fc6(x)))  # N x num_classes


def resnet18_slides() -> nn.Module:
    return torchvision.models.resnet18(num_classes=10)


def resnet18_cifar() -> nn.Module:
    model = torchvision.models.resnet18(num_classes=10)
    model.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
    nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
    model.maxpool = nn.Identity()
    return model


def vgg16_bn_cifar() -> nn.Module:
    model = torchvision.models.vgg16_bn(num_classes=10)
    model.avgpool = nn.Identity()  # N x 512 x 1 x 1 after five pools of a 32 x 32 image
    model.classifier[0] = nn.Linear(512, 4096)
    nn.init.normal_(model.classifier[0].weight, 0, 0.01)  # as torchvision initialises it
    nn.init.zeros_(model.classifier[0].bias)
    return model


@dataclass(frozen=True)
class Recipe:
    """A model and how the labs train it (optimizer, batch size, augmentation)."""

    label: str
    build: Callable[[], nn.Module]
    optimizer: Callable[[nn.Module], torch.optim.Optimizer]
    batch_size: int = 128
    augment: bool = True


def _sgd(lr: float, weight_decay: float = 0.0) -> Callable[[nn.Module], torch.optim.Optimizer]:
    return lambda m: torch.optim.SGD(m.parameters(), lr=lr, momentum=0.9, weight_decay=weight_decay)


MODELS = {
    "resnet18-slides": Recipe("ResNet-18, slides' (7x7 stem)", resnet18_slides, _sgd(0.01, 5e-4)),
    "resnet18-cifar": Recipe("ResNet-18, CIFAR stem", resnet18_cifar, _sgd(0.01, 5e-4)),
    "vgg16-bn": Recipe(
        "VGG-16-BN (32x32)",
        vgg16_bn_cifar,
        lambda m: torch.optim.Adam(m.parameters(), lr=3e-4),
        batch_size=64,  # Day 3's recipe
        augment=False,
    ),
    "lenet5": Recipe("LeNet-5", LeNet5, _sgd(0.05), batch_size=64, augment=False),
}


# ---- the two loops ------------------------------------------------------------------------------


def _subset(data: ImageData, train: int, test: int) -> ImageData:
    """``train`` and ``test`` images drawn at random (the same ones every time)."""
    generator = torch.Generator().manual_seed(0)
    tr = torch.randperm(len(data.train_labels), generator=generator)[:train]
    te = torch.randperm(len(data.test_labels), generator=generator)[:test]
    return dataclasses.replace(
        data,
        train_images=data.train_images[tr],
        train_labels=data.train_labels[tr],
        test_images=data.test_images[te],
        test_labels=data.test_labels[te],
    )


def slides_loaders(data: ImageData, batch_size: int) -> tuple[DataLoader, DataLoader]:
    """The slides' pipeline: per-image PIL transforms in a Dataset, batched by a DataLoader."""
    from labkit import as_dataset

    normalize = transforms.Normalize(data.mean, data.std)
    train_tf = transforms.Compose(
        [
            transforms.RandomCrop(32, padding=4),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            normalize,
        ]
    )
    test_tf = transforms.Compose([transforms.ToTensor(), normalize])
    train = DataLoader(as_dataset(data, True, train_tf), batch_size=batch_size, shuffle=True)
    test = DataLoader(as_dataset(data, False, test_tf), batch_size=batch_size)
    return train, test


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def slides_train(model, loader, optimizer, device, steps: int) -> float:
    """Images per second of the course slides' training loop over ``steps`` batches."""
    criterion = nn.CrossEntropyLoss()
    model.train()
    running_loss, seen = 0.0, 0
    _sync(device)
    start = time.perf_counter()
    for i, (inputs, labels) in enumerate(loader):
        if i == steps:
            break
        inputs, labels = inputs.to(device), labels.to(device)
        optimizer.zero_grad()
        outputs = model(inputs)
        loss = criterion(outputs, labels)
        loss.backward()
        optimizer.step()
        running_loss += loss.item()
        seen += len(labels)
    _sync(device)
    return seen / (time.perf_counter() - start)


@torch.no_grad()
def slides_infer(model, loader, device) -> float:
    """Images per second of the course slides' test loop."""
    model.eval()
    correct, total = 0, 0
    _sync(device)
    start = time.perf_counter()
    for images, labels in loader:
        images, labels = images.to(device), labels.to(device)
        outputs = model(images)
        _, predicted = torch.max(outputs.data, 1)
        total += labels.size(0)
        correct += (predicted == labels).sum().item()
    _sync(device)
    return total / (time.perf_counter() - start)


def kit_train(model, data: ImageData, optimizer, batch_size: int) -> tuple[float, str]:
    """Images per second of ``labkit.fit`` over one epoch of ``data`` (its end-of-epoch
    evaluation of ``data``'s small test split included), and what it chose: the precision,
    and "+fused" where the optimizer stepped with its fused kernel."""
    device = next(model.parameters()).device
    _sync(device)
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        history = fit(model, data, optimizer, epochs=1, batch_size=batch_size, progress=False)
    _sync(device)
    chose = history.precision + ("+fused" if history.fused_step else "")
    return len(data.train_labels) / (time.perf_counter() - start), chose


def kit_infer(model, data: ImageData) -> float:
    device = next(model.parameters()).device
    _sync(device)
    start = time.perf_counter()
    predict(model, data.test_images, data).argmax(1).cpu()
    return len(data.test_labels) / (time.perf_counter() - start)


@dataclass(frozen=True)
class StepTimes:
    optimizer: str  # its class name
    parameters: int
    as_built: float  # seconds per step
    fused: float


def optimizer_steps(key: str, device, rounds: int) -> StepTimes:
    """Seconds of one step of ``key``'s optimizer, as the lab builds it and as ``fit`` steps
    it (fused), over the model's parameters with random gradients: the medians of
    ``rounds`` rounds of 3 steps each, alternating, after one round that warms up."""
    recipe = MODELS[key]
    seed_everything(0)
    model = recipe.build().to(device)
    for p in model.parameters():
        p.grad = torch.randn_like(p) * 1e-3
    as_built, fused = recipe.optimizer(model), recipe.optimizer(model)
    fuse_step(fused)
    seconds: dict[torch.optim.Optimizer, list[float]] = {as_built: [], fused: []}
    for _ in range(rounds + 1):
        for optimizer, taken in seconds.items():
            _sync(device)
            start = time.perf_counter()
            for _ in range(3):
                optimizer.step()
            _sync(device)
            taken.append((time.perf_counter() - start) / 3)
    return StepTimes(
        type(as_built).__name__,
        sum(p.numel() for p in model.parameters()),
        statistics.median(seconds[as_built][1:]),
        statistics.median(seconds[fused][1:]),
    )


# ---- measurements -------------------------------------------------------------------------------


@dataclass
class Speed:
    slides_train: list[float] = dataclasses.field(default_factory=list)
    kit_train: list[float] = dataclasses.field(default_factory=list)
    slides_infer: list[float] = dataclasses.field(default_factory=list)
    kit_infer: list[float] = dataclasses.field(default_factory=list)
    kit_chose: str = ""  # fit's precision (after its trial step, on a CPU), "+fused" step

    def median(self, name: str) -> float:
        return statistics.median(getattr(self, name))

    def ratios(self, loop: str) -> list[float]:
        """kit / slides for each round of ``loop`` ("train" or "infer"): the two loops of a
        round ran within seconds of each other, so a slow spell of the machine touches both."""
        kit, slides = getattr(self, f"kit_{loop}"), getattr(self, f"slides_{loop}")
        return [k / s for k, s in zip(kit, slides, strict=True)]

    def ratio(self, loop: str) -> float:
        return statistics.median(self.ratios(loop))

    def spread(self, loop: str) -> str:
        ratios = self.ratios(loop)
        return f"{min(ratios):.2f}-{max(ratios):.2f}"


def measure_speed(
    key: str, data: ImageData, device, steps: int, rounds: int, batch: int, infer: int
) -> Speed:
    """Alternate the two loops ``rounds`` times on copies of one model, after a warm-up."""
    recipe = MODELS[key]
    seed_everything(0)
    slides_model = recipe.build().to(device)
    kit_model = copy.deepcopy(slides_model)
    slides_opt, kit_opt = recipe.optimizer(slides_model), recipe.optimizer(kit_model)
    # The same images for both: steps x batch to train on (fit evaluates one batch after
    # its epoch), ``infer`` to predict.
    sub = _subset(data, steps * batch, infer)
    train_sub = dataclasses.replace(
        sub, test_images=sub.test_images[:batch], test_labels=sub.test_labels[:batch]
    )
    train_loader, test_loader = slides_loaders(sub, batch)
    warm = _subset(data, 2 * batch, batch)
    speed = Speed()
    slides_train(slides_model, train_loader, slides_opt, device, 2)
    _, speed.kit_chose = kit_train(kit_model, warm, kit_opt, batch)  # and its trial step
    slides_infer(slides_model, slides_loaders(warm, batch)[1], device)
    kit_infer(kit_model, warm)

    warm_loader = slides_loaders(warm, batch)[0]
    for _ in range(rounds):
        # One untimed batch of each loop right before it is timed: the other loop has just
        # run, with its own model and layout, and the first step after it pays for that.
        slides_train(slides_model, warm_loader, slides_opt, device, 1)
        speed.slides_train.append(
            slides_train(slides_model, train_loader, slides_opt, device, steps)
        )
        kit_train(kit_model, warm, kit_opt, batch)
        speed.kit_train.append(kit_train(kit_model, train_sub, kit_opt, batch)[0])
        speed.slides_infer.append(slides_infer(slides_model, test_loader, device))
        speed.kit_infer.append(kit_infer(kit_model, sub))
    return speed


@dataclass(frozen=True)
class Run:
    accuracy: float
    seconds: float
    num_test: int
    precision: str


def train_run(key: str, data: ImageData, device, seed: int = 0, **options) -> Run:
    """One 2-epoch run of the kit's loop, as a lab does it, timed as a whole: ``seed``
    draws the model's initial weights and the order of the batches."""
    recipe = MODELS[key]
    seed_everything(seed)
    model = recipe.build().to(device)
    optimizer = recipe.optimizer(model)
    _sync(device)
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        history = fit(
            model,
            data,
            optimizer,
            epochs=EPOCHS,
            batch_size=recipe.batch_size,
            augment=recipe.augment,
            seed=seed,
            progress=False,
            **options,
        )
    _sync(device)
    seconds = time.perf_counter() - start
    return Run(history.test_acc[-1], seconds, len(data.test_labels), history.precision)


@dataclass(frozen=True)
class Comparison:
    """2-epoch runs in fp32 NCHW (``slow``) and as the kit chooses (``fast``), seed by seed."""

    slow: list[Run]
    fast: list[Run]
    measured: bool  # on all of CIFAR-10, so the fast runs' times are full-run times

    @property
    def diffs(self) -> list[float]:
        """Fast minus fp32 test accuracy, in points, per seed."""
        return [100 * (f.accuracy - s.accuracy) for s, f in zip(self.slow, self.fast, strict=True)]

    @property
    def diff(self) -> float:
        return statistics.mean(self.diffs)

    @property
    def standard_error(self) -> float:
        """Of ``diff``, in points. Over 2+ seeds, from how much the seeds' differences vary
        (training noise and test sampling together); for 1 seed, only what sampling the
        test images gives, the least a difference can be trusted to."""
        if len(self.diffs) > 1:
            return statistics.stdev(self.diffs) / math.sqrt(len(self.diffs))
        p = (self.slow[0].accuracy + self.fast[0].accuracy) / 2
        return 100 * math.sqrt(max(p * (1 - p), 1e-9) / self.fast[0].num_test)

    def mean(self, runs: str, field: str) -> float:
        return statistics.mean(getattr(run, field) for run in getattr(self, runs))

    def within(self, points: float) -> bool | None:
        """True if fast and fp32 are at most ``points`` apart with a standard error to spare,
        False if further apart, None if the mean is within but the error is too wide to tell."""
        if abs(self.diff) > points:
            return False
        return True if abs(self.diff) + self.standard_error <= points else None


def full_run_estimate(train_ips: float, infer_ips: float) -> float:
    """Seconds for 2 epochs over 50,000 images with a 10,000-image test after each."""
    return EPOCHS * (FULL_TRAIN / train_ips + FULL_TEST / infer_ips)


# ---- the machine's ceiling ----------------------------------------------------------------------


def training_flops(key: str) -> float:
    """Floating-point operations of one training image of ``key``, forward and backward:
    the multiply-adds of its convolutions and linear layers (2 each), as torch's
    ``FlopCounterMode`` counts them. Batch norm, activations, pooling and the optimizer
    step are left out, so a ceiling worked out from this count is generous."""
    model = MODELS[key].build()
    images, labels = torch.randn(2, 3, 32, 32), torch.tensor([0, 1])
    with FlopCounterMode(display=False) as counter:
        nn.functional.cross_entropy(model(images), labels).backward()
    return counter.get_total_flops() / len(labels)


def matmul_rate(device: torch.device, precision: str, rounds: int = 3) -> float:
    """Floating-point operations per second of a large square matmul in ``precision`` on
    ``device`` (the best of ``rounds``): about as fast as this device multiplies and adds
    in it, since a large matmul is the kernel libraries tune hardest."""
    n = 8192 if device.type == "cuda" else 2048
    dtype = choose_fast_path(device, precision).dtype
    a, b = (torch.randn(n, n, device=device).to(dtype) for _ in range(2))
    a @ b  # warm-up
    best = math.inf
    for _ in range(rounds):
        _sync(device)
        start = time.perf_counter()
        for _ in range(4):
            a @ b
        _sync(device)
        best = min(best, (time.perf_counter() - start) / 4)
    return 2 * n**3 / best


def ceiling_precisions(device: torch.device) -> list[str]:
    """The precisions ``fit`` may compute in on ``device``: fp32, and its autocast dtype."""
    autocast = choose_fast_path(device).precision
    return ["fp32"] + ([autocast] if autocast != "fp32" else [])


# ---- printing -----------------------------------------------------------------------------------


def load_average() -> str:
    try:
        return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "load average unknown"


def describe_machine(device: torch.device) -> str:
    if device.type == "cuda":
        where = torch.cuda.get_device_name(device)
    else:
        where = f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"
    threads = torch.get_num_threads()
    return (
        f"{where}; torch {torch.__version__}, {threads} thread{'s' * (threads != 1)}; "
        f"{load_average()}"
    )


def _seconds(value: float) -> str:
    return f"{value / 60:.1f} min" if value >= 120 else f"{value:.0f} s"


def _seeds(n: int) -> str:
    return "seed 0" if n == 1 else f"mean of seeds 0-{n - 1}"


def speed_target(speed: Speed, need: float, ceiling: float) -> tuple[bool, str]:
    """Whether the kit's training ratio meets ``need``, and in words, saying when the
    images/s that ``need`` asks of this machine lie above its ceiling."""
    ratio = speed.ratio("train")
    asked = need * speed.median("slides_train")
    above = (
        f": {asked:.0f} images/s, above this machine's ceiling of {ceiling:.0f}, "
        "so no loop reaches it here"
        if asked > ceiling
        else ""
    )
    return ratio >= need, f"{ratio:.2f}x (need {need}x{above})"


def _check(label: str, ok: bool | None, detail: str) -> None:
    print(f"  {'?' if ok is None else '✔' if ok else '✘'} {label}: {detail}")


def parse_args(argv: list[str] | None, device: torch.device) -> argparse.Namespace:
    """The command line, with the defaults that depend on the device and on --quick filled in."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), default=list(MODELS))
    parser.add_argument("--steps", type=int, default=6, help="training batches per round")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds (median kept)")
    parser.add_argument("--batch-size", type=int, default=128, help="batch size for throughput")
    parser.add_argument("--infer", type=int, default=1024, help="test images per inference round")
    parser.add_argument(
        "--full-models",
        nargs="*",
        choices=sorted(MODELS),
        help="models to run on all of CIFAR-10 for 2 epochs (default: lenet5 and "
        "resnet18-slides on a CPU, every model on a GPU)",
    )
    parser.add_argument(
        "--subset", type=int, default=300, help="train images per class for the other models"
    )
    parser.add_argument(
        "--threads",
        type=int,
        help="torch CPU threads (default: torch's, one per core); 1 is steadier on a busy machine",
    )
    parser.add_argument(
        "--seeds",
        type=int,
        help="2-epoch run pairs per model, seeds 0, 1, ... (default: 1 on a CPU; "
        f"{GPU_SEEDS} on a GPU, "
        "where a pair takes seconds and cuDNN's nondeterministic kernels make even two runs "
        "of one seed differ): the difference within one seed is within training noise of a "
        "point or two; more seeds give the mean and its standard error",
    )
    parser.add_argument("--no-accuracy", action="store_true", help="skip the 2-epoch runs")
    parser.add_argument("--no-day04", action="store_true", help="skip grading a Day 4 submission")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run: 2 steps of 16, 1 round, 2-epoch runs on 10 images per class, no Day 4",
    )
    args = parser.parse_args(argv)
    if args.seeds is None:
        args.seeds = GPU_SEEDS if device.type == "cuda" and not args.quick else 1
    if args.seeds < 1:
        parser.error(f"--seeds {args.seeds}: run at least one seed")
    if args.quick:
        args.steps, args.rounds, args.batch_size, args.infer = 2, 1, 16, 32
        args.full_models, args.subset, args.no_day04 = [], 10, True
    if args.full_models is None:
        args.full_models = list(MODELS) if device.type == "cuda" else ["lenet5", "resnet18-slides"]
    return args


def subset_size(args: argparse.Namespace) -> dict[str, int]:
    """``load_cifar10``'s arguments for the labs' subset that ``--subset`` sizes."""
    return {"train_per_class": args.subset, "test_per_class": max(10, args.subset // 3)}


def print_setup(args: argparse.Namespace, device: torch.device) -> None:
    """The header: the machine, and how each of the two loops computes."""
    fast = choose_fast_path(device)
    print(f"machine: {describe_machine(device)}")
    print(
        f"kit loop: {fast.describe()}; uint8 data on {device.type}, batched crop and flip"
        + (
            f"; on a CPU, bf16 only where a trial step is {BF16_MIN_SPEEDUP}x faster"
            if device.type == "cpu"
            else ""
        )
    )
    print(
        f"slides-style loop: per-image torchvision transforms, DataLoader(batch_size="
        f"{args.batch_size}, shuffle=True), fp32, NCHW"
    )


def load_data(args: argparse.Namespace) -> ImageData:
    """CIFAR-10, all of it if a model trains fully, else the subset; exits if too small."""
    data = load_cifar10(**({} if args.full_models else subset_size(args)))
    print(f"data: {data.describe()}")
    if len(data.train_labels) < args.steps * args.batch_size:
        sys.exit(
            f"need {args.steps * args.batch_size} training images, have {len(data.train_labels)}"
        )
    return data


def print_throughput(
    args: argparse.Namespace, data: ImageData, device: torch.device
) -> dict[str, Speed]:
    """== throughput: each model's training and inference images/s in both loops, and ratios."""
    print(
        f"\n== throughput, images/s: median of {args.rounds} rounds, each the slides-style loop "
        f"then the kit's; training {args.steps} batches of {args.batch_size}, inference "
        f"{args.infer} images (slides: batches of {args.batch_size}; kit: predict's default). "
        "ratio: the median of the rounds' kit / slides ratios, their range beside it"
    )
    header = (
        f"{'model':28}{'kit chose':>12}{'train slides':>13}{'train kit':>11}{'ratio':>7}"
        f"{'range':>11}{'infer slides':>13}{'infer kit':>11}{'ratio':>7}{'range':>11}"
    )
    print(header)
    speeds: dict[str, Speed] = {}
    for key in args.models:
        speed = measure_speed(
            key, data, device, args.steps, args.rounds, args.batch_size, args.infer
        )
        speeds[key] = speed
        st, kt = speed.median("slides_train"), speed.median("kit_train")
        si, ki = speed.median("slides_infer"), speed.median("kit_infer")
        print(
            f"{MODELS[key].label:28}{speed.kit_chose:>12}{st:11.0f}{kt:11.0f}"
            f"{speed.ratio('train'):6.2f}x{speed.spread('train'):>11}{si:12.0f}{ki:11.0f}"
            f"{speed.ratio('infer'):6.2f}x{speed.spread('infer'):>11}   ({load_average()})",
            flush=True,
        )
    return speeds


def print_ceiling(speeds: dict[str, Speed], device: torch.device) -> dict[str, float]:
    """== the machine's ceiling: images/s at a large matmul's rate, and both loops' share of it."""
    rates = {p: matmul_rate(device, p) for p in ceiling_precisions(device)}
    fastest = max(rates, key=rates.get)
    print(
        "\n== the machine's ceiling: a large matmul runs at "
        + ", ".join(f"{rate / 1e9:,.0f} GFLOP/s in {p}" for p, rate in rates.items())
        + " here. A training image costs its model's multiply-adds, forward and backward "
        "(convolutions and linear layers, as torch's FlopCounterMode counts them); the "
        f"ceiling is the images/s if all of them ran at the {fastest} rate and nothing else "
        "took time, which no loop that does this arithmetic can beat; both loops as a share "
        "of it"
    )
    print(f"{'model':28}{'GFLOP/image':>12}{'ceiling':>9}{'slides':>7}{'kit':>7}")
    ceilings: dict[str, float] = {}
    for key, speed in speeds.items():
        flops = training_flops(key)
        ceilings[key] = rates[fastest] / flops
        shares = (speed.median(f"{loop}_train") / ceilings[key] for loop in ("slides", "kit"))
        print(
            f"{MODELS[key].label:28}{flops / 1e9:12.3f}{ceilings[key]:9.0f}"
            + "".join(f"{share:7.0%}" for share in shares)
        )
    return ceilings


def print_optimizer_steps(args: argparse.Namespace, device: torch.device) -> None:
    """== one optimizer step: each lab's optimizer as built against fused, in ms."""
    print(
        f"\n== one optimizer step, ms: the lab's optimizer as built, and fused as fit steps it "
        f"(the same update in one kernel); random gradients, median of {args.rounds} rounds"
    )
    print(
        f"{'model':28}{'optimizer':>10}{'parameters':>12}{'as built':>10}{'fused':>8}{'ratio':>7}"
    )
    for key in args.models:
        steps = optimizer_steps(key, device, args.rounds)
        print(
            f"{MODELS[key].label:28}{steps.optimizer:>10}{steps.parameters / 1e6:11.1f}M"
            f"{steps.as_built * 1000:10.1f}{steps.fused * 1000:8.1f}"
            f"{steps.as_built / steps.fused:6.1f}x",
            flush=True,
        )


def print_accuracy(
    args: argparse.Namespace, data: ImageData, device: torch.device
) -> dict[str, Comparison]:
    """== 2-epoch runs: the kit's loop as it chooses against fp32 NCHW, accuracy and time."""
    # The other models train on the labs' fast subset, loaded as a lab loads it.
    subset = load_cifar10(**subset_size(args)) if args.full_models else data
    gpu = device.type == "cuda"
    tf32 = (
        gpu and torch.backends.cudnn.allow_tf32 and torch.cuda.get_device_capability(device)[0] >= 8
    )
    baseline = "fp32 NCHW" + (
        " (its convolutions in TF32, PyTorch's default on this GPU)" if tf32 else ""
    )
    if args.seeds > 1:
        error = "of the mean difference, from how much the seeds' differences vary"
    else:
        error = "from sampling the test images alone (one seed shows no training noise" + (
            f", though on a GPU two runs of one seed already differ: use --seeds {GPU_SEEDS})"
            if gpu
            else ")"
        )
    print(
        "\n== 2-epoch runs of the kit's loop as it chooses (fast) against the same loop in "
        f"{baseline}: same data, random seed and recipe (each lab's optimizer, batch size, "
        f"augmentation); train + test images; {_seeds(args.seeds)}; times include fit's "
        f"trial step. ± 1 SE: {error}"
    )
    print(
        f"{'model':28}{'data':>16}{'kit chose':>10}{'fp32 acc':>10}{'fast acc':>10}"
        f"{'diff':>8}{'± 1 SE':>8}{'fp32 time':>11}{'fast time':>11}"
    )
    runs: dict[str, Comparison] = {}
    for key in args.models:
        full = key in args.full_models
        on = data if full else subset
        where = f"{len(on.train_labels):,} + {len(on.test_labels):,}"
        slow, fast = [], []
        for seed in range(args.seeds):
            slow.append(train_run(key, on, device, seed, precision="fp32", channels_last=False))
            fast.append(train_run(key, on, device, seed))
        runs[key] = c = Comparison(slow, fast, measured=full)
        per_seed = ", ".join(f"{d:+.1f}" for d in c.diffs) if args.seeds > 1 else ""
        print(
            f"{MODELS[key].label:28}{where:>16}{fast[0].precision:>10}"
            f"{c.mean('slow', 'accuracy'):10.1%}{c.mean('fast', 'accuracy'):10.1%}"
            f"{c.diff:+7.1f}p{c.standard_error:7.1f}p"
            f"{_seconds(c.mean('slow', 'seconds')):>11}"
            f"{_seconds(c.mean('fast', 'seconds')):>11}"
            + (f"   (seeds: {per_seed})" if per_seed else "")
            + f"   ({load_average()})",
            flush=True,
        )
    return runs


def print_full_runs(speeds: dict[str, Speed], runs: dict[str, Comparison]) -> dict[str, float]:
    """== one full 2-epoch CIFAR-10 run per model, measured or estimated; the kit's seconds."""
    print(
        f"\n== one full {EPOCHS}-epoch CIFAR-10 run ({FULL_TRAIN:,} train images per epoch, "
        f"{FULL_TEST:,} test images after each): measured where marked, else estimated "
        "from the throughput above"
    )
    print(f"{'model':28}{'slides-style loop':>22}{'kit loop':>22}{'kit, fp32 NCHW':>22}")
    totals: dict[str, float] = {}
    for key, speed in speeds.items():
        slides_est = full_run_estimate(speed.median("slides_train"), speed.median("slides_infer"))
        kit_est = full_run_estimate(speed.median("kit_train"), speed.median("kit_infer"))
        c = runs.get(key)
        measured = c is not None and c.measured
        kit_seconds = c.mean("fast", "seconds") if measured else kit_est
        kit = f"{_seconds(kit_seconds)} {'measured' if measured else 'est.'}"
        fp32 = f"{_seconds(c.mean('slow', 'seconds'))} measured" if measured else "-"
        totals[key] = kit_seconds
        print(f"{MODELS[key].label:28}{_seconds(slides_est) + ' est.':>22}{kit:>22}{fp32:>22}")
    return totals


def print_targets(
    args: argparse.Namespace,
    device: torch.device,
    speeds: dict[str, Speed],
    ceilings: dict[str, float],
    runs: dict[str, Comparison],
    totals: dict[str, float],
) -> None:
    """== the kit's targets: training ratios, accuracy, the slides' ResNet-18's GPU time."""
    print(f"\n== the kit's targets ({load_average()})")
    targets = {"resnet18-cifar": 2.5, "vgg16-bn": 1.8}
    for key, need in targets.items():
        if key in speeds and device.type == "cpu":
            _check(
                f"{MODELS[key].label} training, kit / slides",
                *speed_target(speeds[key], need, ceilings[key]),
            )
    for key, c in runs.items():
        within = c.within(1)
        _check(
            f"{MODELS[key].label} accuracy, fast vs fp32",
            within,
            f"{abs(c.diff):.1f} ± {c.standard_error:.1f} points apart, {_seeds(args.seeds)} "
            "(at most 1"
            + ("; the error is too wide to tell: more seeds or data)" if within is None else ")"),
        )
    if device.type == "cuda" and "resnet18-slides" in totals:
        name = torch.cuda.get_device_name(device)
        seconds = totals["resnet18-slides"]
        _check(
            f"slides' ResNet-18, 2 full epochs on {name}",
            seconds < 15,
            f"{seconds:.1f} s (under 15 s on an H100)",
        )
    else:
        print("  - slides' ResNet-18, 2 full epochs under 15 s on an H100: not measured (no GPU)")


def main(argv: list[str] | None = None) -> None:
    """Each section in turn, as the module docstring lists them."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    args = parse_args(argv, device)
    if args.threads:
        torch.set_num_threads(args.threads)
    print_setup(args, device)
    data = load_data(args)
    speeds = print_throughput(args, data, device)
    ceilings = print_ceiling(speeds, device)
    print_optimizer_steps(args, device)
    runs = {} if args.no_accuracy else print_accuracy(args, data, device)
    totals = print_full_runs(speeds, runs)
    print_targets(args, device, speeds, ceilings, runs, totals)
    if not args.no_day04:
        day04()


def day04() -> None:
    """The autograder's seconds for one correct Day 4 submission (bench_grading's)."""
    sys.path.insert(0, str(ROOT / "scripts"))
    from bench_grading import bench_day04

    from autograder.grading import sandbox

    why_not = sandbox.available()
    if why_not:
        print(f"\n== Day 4: skipped, the grading sandbox cannot run here: {why_not}")
        return
    if not os.environ.get("LABKIT_CIFAR10") and (ROOT / "data" / "cifar10").is_dir():
        os.environ["LABKIT_CIFAR10"] = str(ROOT / "data" / "cifar10")
    print(f"({load_average()})")
    bench_day04(timeout=900)
    print(f"({load_average()})")


if __name__ == "__main__":
    main()
