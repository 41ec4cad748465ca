r"""A small convolutional net on scikit-learn's bundled digits (8 × 8, 10 classes, 1797 images).

**Data.** Pixels scaled to :math:`[0, 1]` and standardised with the training set's mean and
standard deviation. The split, train / validation / test = 1200 / 297 / 300 disjoint images, is
fixed by the task (a permutation from stream ``digits:split`` of seed 0: validation its first 297,
test the next 300, train the rest), the same for every seed (the 1797 images hold no duplicate).
Tuning selects on the validation images (the curves, time to target); the test images are evaluated
once, at the end of a final run (``Problem.test``), and give every reported number. Why 300: at the
accuracies reached (p = 0.97-0.99) the test's standard error :math:`\sqrt{p(1-p)/n}` is 0.98-0.57
pp at n = 300 and 0.76-0.44 pp at n = 500, so 200 more test images would cut it by a fifth while
taking a sixth of the 1200 training images; one test image is 1/300 = 0.33 pp. The validation set
keeps its 297 images (the first 297 of the permutation, as before the test split existed). Training
batches are drawn with replacement from the training set and augmented by a random translation of
up to one pixel in each direction (zero padding); batch ``k`` of seed ``s`` comes from its own
stream ``cnn:batch:k`` of ``s``, so every optimizer sees the same images.

**Model.** ``[Upsample(u)] → conv3×3(w1) → [BN] → ReLU → conv3×3(w2) → [BN] → ReLU → maxpool2 →
conv3×3(w3) → [BN] → ReLU → maxpool2 → linear(10)``, the classifier named ``head`` (name-based
parameter policies such as Muon's treat it as the output layer), widths per size (the GPU size upsamples to
32 × 32 and is wider). ``cnn-digits-bn`` adds BatchNorm after each convolution; evaluation runs in
eval mode (running statistics).

**Loss** cross-entropy; **metric** accuracy (max; named ``val_accuracy``: the validation split's
in the curves, the test split's in ``Problem.test``, with ``se`` = :math:`\sqrt{p(1-p)/n}`, the
standard error of the mean of the per-image 0/1 values), with the cross-entropy as an extra key.
``hessian_loss`` is the cross-entropy against labels sampled from the model's own softmax
(Sophia's Gauss–Newton–Bartlett estimator); it leaves BatchNorm's running statistics untouched
(momentum 0 during that forward pass), so an optimizer that asks for Hessian estimates does not
change what its model evaluates with.

**Data hash**: the shipped pixels (integers 0-16) and labels, the split's sizes and permutation
(which fix the test images too) and the seed's first batch's image indices and shifts (integers)
— not the standardised images, whose mean and deviation round differently on different CPUs.
"""
from __future__ import annotations

import contextlib
import functools

import torch
import torch.nn.functional as F

from tasks import (
    Metric, Problem, Shipped, Task, generator, hash_data, mean_and_se, register, sampled_label_loss, seeded,
)

N_VAL = 297
N_TEST = 300


@contextlib.contextmanager
def frozen_bn_stats(model: torch.nn.Module):
    """BatchNorm in train mode (batch statistics) without updating the running statistics."""
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in bns]
    for m in bns:
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, mom in zip(bns, saved):
            m.momentum = mom


@functools.cache
def digits_raw() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(pixels [1797, 64] float64 as scikit-learn ships them (integers 0-16), labels int64, the
    split's permutation: `split_indices`)."""
    from sklearn.datasets import load_digits
    x, y = load_digits(return_X_y=True)
    perm = torch.randperm(len(x), generator=generator(0, "digits:split"))
    return torch.from_numpy(x), torch.tensor(y, dtype=torch.long), perm


def split_indices() -> dict[str, torch.Tensor]:
    """The images of each split, as indices into the shipped set: validation = perm[:N_VAL], test =
    the next N_TEST, train = the rest (disjoint, together every image once); `Problem.data_splits`."""
    perm = digits_raw()[2]
    return {"train_index": perm[N_VAL + N_TEST:], "validation_index": perm[:N_VAL],
            "test_index": perm[N_VAL:N_VAL + N_TEST]}


@functools.cache
def digits_split() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """{split: (x [n, 1, 8, 8] float32, y int64)} on the CPU, standardised with the training
    images' mean and deviation."""
    x, y, _ = digits_raw()
    x = x.to(torch.float32).reshape(-1, 1, 8, 8) / 16.0
    index = split_indices()
    mean, std = x[index["train_index"]].mean(), x[index["train_index"]].std()
    x = (x - mean) / std
    return {name.removesuffix("_index"): (x[i], y[i]) for name, i in index.items()}


def shifted_copies(x: torch.Tensor) -> torch.Tensor:
    """[9, N, 1, 8, 8]: x translated by (dy, dx) in {-1, 0, 1}^2, zero (=background) filled."""
    background = float(x.min())   # a standardised 0 pixel
    padded = F.pad(x, (1, 1, 1, 1), value=background)
    return torch.stack([padded[..., 1 + dy:9 + dy, 1 + dx:9 + dx]
                        for dy in (-1, 0, 1) for dx in (-1, 0, 1)])


class DigitsCNN(torch.nn.Module):
    def __init__(self, widths, batchnorm, upsample=1):
        super().__init__()
        w1, w2, w3 = widths
        norm = (lambda c: torch.nn.BatchNorm2d(c)) if batchnorm else (lambda c: torch.nn.Identity())
        layers = [torch.nn.Upsample(scale_factor=upsample, mode="bilinear")] if upsample > 1 else []
        layers += [
            torch.nn.Conv2d(1, w1, 3, padding=1), norm(w1), torch.nn.ReLU(),
            torch.nn.Conv2d(w1, w2, 3, padding=1), norm(w2), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Conv2d(w2, w3, 3, padding=1), norm(w3), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Flatten(),
        ]
        self.features = torch.nn.Sequential(*layers)
        self.head = torch.nn.Linear(w3 * (2 * upsample) ** 2, 10)

    def forward(self, x):
        return self.head(self.features(x))


def accuracy_and_loss(model, x, y) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image: 1.0 where the model's class is the label, and the cross-entropy (float64)."""
    with torch.no_grad():
        logits = model(x).double()
        return (logits.argmax(1) == y).double(), F.cross_entropy(logits, y, reduction="none")


def build(size, seed, device, dtype, *, batchnorm):
    splits = digits_split()
    (x_train, y_train), (x_val, y_val), (x_test, y_test) = (splits[k] for k in ("train", "validation", "test"))
    shifted = shifted_copies(x_train).to(device, dtype)
    y_train_d, x_val_d, y_val_d = y_train.to(device), x_val.to(device, dtype), y_val.to(device)
    x_test_d, y_test_d = x_test.to(device, dtype), y_test.to(device)
    with seeded(seed, "cnn:init"):
        model = DigitsCNN(size["widths"], batchnorm, size.get("upsample", 1))
    model = model.to(device, dtype)
    bs, n = size["batch"], len(x_train)

    def draws(step):
        """(image indices, shifts) of batch `step`: integers from the step's own stream."""
        g = generator(seed, f"cnn:batch:{step}")
        idx = torch.randint(n, (bs,), generator=g)
        shift = torch.randint(9, (bs,), generator=g)
        return idx, shift

    def batch(step):
        idx, shift = (t.to(device) for t in draws(step))
        return shifted[shift, idx], y_train_d[idx]

    def loss(model, batch):
        x, y = batch
        return F.cross_entropy(model(x), y)

    def hessian_loss(model, batch, generator):
        x, _ = batch
        with frozen_bn_stats(model):
            return sampled_label_loss(model(x), generator)

    def evaluate(model):
        correct, ce = accuracy_and_loss(model, x_val_d, y_val_d)
        return {"val_accuracy": float(correct.mean()), "val_loss": float(ce.mean())}

    def test(model):
        correct, ce = accuracy_and_loss(model, x_test_d, y_test_d)
        p, se = mean_and_se(correct)
        return {"val_accuracy": p, "n_test": len(y_test), "se": se, "loss": float(ce.mean())}

    return Problem(model=model, batch=batch, loss=loss, evaluate=evaluate, test=test, hessian_loss=hessian_loss,
                   data_splits=split_indices, hparam_defaults={"bs": bs},
                   data_hash=hash_data("digits", N_VAL, N_TEST, Shipped(digits_raw()[0]), *digits_raw()[1:],
                                       *draws(0)),
                   extras={"n_train": n, "n_val": len(x_val), "n_test": len(x_test), "batch": bs,
                           "widths": list(size["widths"]),
                           "upsample": size.get("upsample", 1), "batchnorm": batchnorm,
                           "augmentation": "random translation by up to 1 pixel"})


SIZES = {
    "smoke": dict(widths=(4, 8, 8), batch=32, steps=30),
    "cpu": dict(widths=(16, 32, 32), batch=64, steps=300),
    "gpu": dict(widths=(64, 128, 256), upsample=4, batch=512, steps=3000),
}

DESCRIPTION = ("3-conv CNN{} on sklearn digits (8x8), 1-pixel translation augmentation; "
               "fixed 1200/297/300 train/validation/test split")

CNN = register(Task(
    name="cnn-digits", family="cnn", description=DESCRIPTION.format(""),
    metric=Metric("val_accuracy", "max", target=0.95),
    sizes=SIZES,
    build=functools.partial(build, batchnorm=False),
    eval_every=20,
    provides=frozenset({"hessian", "autocast"}),
))
CNN.variant("cnn-digits-bn", DESCRIPTION.format(" with BatchNorm"), build=functools.partial(build, batchnorm=True))
# the protocol's schedule ablation: the same problem at a constant lr (after no warm-up), tuned and
# run as any task, against the profile's schedule on cnn-digits
CNN.variant("cnn-digits-constant-lr",
            DESCRIPTION.format("") + "; constant lr whatever the profile's schedule (the schedule ablation)",
            schedule={"name": "constant"})
