r"""A small convolutional net on scikit-learn's bundled digits (8 × 8, 10 classes, 1797 images).

**Data.** Pixels scaled to :math:`[0, 1]` and standardised with the training set's mean and
standard deviation. The train/validation split (1500 / 297) is fixed by the task (a permutation
from stream ``digits:split`` of seed 0), the same for every seed. Training batches are drawn with
replacement from the training set and augmented by a random translation of up to one pixel in each
direction (zero padding); batch ``k`` of seed ``s`` comes from its own stream
``cnn:batch:k`` of ``s``, so every optimizer sees the same images.

**Model.** ``[Upsample(u)] → conv3×3(w1) → [BN] → ReLU → conv3×3(w2) → [BN] → ReLU → maxpool2 →
conv3×3(w3) → [BN] → ReLU → maxpool2 → linear(10)``, the classifier named ``head`` (name-based
parameter policies such as Muon's treat it as the output layer), widths per size (the GPU size upsamples to
32 × 32 and is wider). ``cnn-digits-bn`` adds BatchNorm after each convolution; evaluation runs in
eval mode (running statistics).

**Loss** cross-entropy; **metric** validation accuracy (max), with the validation loss as an extra
key. ``hessian_loss`` is the cross-entropy against labels sampled from the model's own softmax
(Sophia's Gauss–Newton–Bartlett estimator); it leaves BatchNorm's running statistics untouched
(momentum 0 during that forward pass), so an optimizer that asks for Hessian estimates does not
change what its model evaluates with.

**Data hash**: the shipped pixels (integers 0-16) and labels, the split's permutation and the
seed's first batch's image indices and shifts (integers) — not the standardised images, whose mean
and deviation round differently on different CPUs.
"""
from __future__ import annotations

import contextlib
import functools

import torch
import torch.nn.functional as F

from tasks import (
    Metric, Problem, Shipped, Task, generator, hash_data, register, sampled_label_loss, seeded,
)

N_VAL = 297


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
    split's permutation: validation = perm[:N_VAL])."""
    from sklearn.datasets import load_digits
    x, y = load_digits(return_X_y=True)
    perm = torch.randperm(len(x), generator=generator(0, "digits:split"))
    return torch.from_numpy(x), torch.tensor(y, dtype=torch.long), perm


@functools.cache
def digits_split():
    """(x_train [1500,1,8,8], y_train, x_val [297,1,8,8], y_val) as float32 / int64 CPU tensors."""
    x, y, perm = digits_raw()
    x = x.to(torch.float32).reshape(-1, 1, 8, 8) / 16.0
    val, train = perm[:N_VAL], perm[N_VAL:]
    mean, std = x[train].mean(), x[train].std()
    x = (x - mean) / std
    return x[train], y[train], x[val], y[val]


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


def build(size, seed, device, dtype, *, batchnorm):
    x_train, y_train, x_val, y_val = digits_split()
    shifted = shifted_copies(x_train).to(device, dtype)
    y_train_d, x_val_d, y_val_d = y_train.to(device), x_val.to(device, dtype), y_val.to(device)
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
        with torch.no_grad():
            logits = model(x_val_d)
            return {"val_accuracy": float((logits.argmax(1) == y_val_d).double().mean()),
                    "val_loss": float(F.cross_entropy(logits.double(), y_val_d))}

    return Problem(model=model, batch=batch, loss=loss, evaluate=evaluate, hessian_loss=hessian_loss,
                   hparam_defaults={"bs": bs},
                   data_hash=hash_data("digits", N_VAL, Shipped(digits_raw()[0]), *digits_raw()[1:], *draws(0)),
                   extras={"n_train": n, "n_val": len(x_val), "batch": bs, "widths": list(size["widths"]),
                           "upsample": size.get("upsample", 1), "batchnorm": batchnorm,
                           "augmentation": "random translation by up to 1 pixel"})


SIZES = {
    "smoke": dict(widths=(4, 8, 8), batch=32, steps=30),
    "cpu": dict(widths=(16, 32, 32), batch=64, steps=300),
    "gpu": dict(widths=(64, 128, 256), upsample=4, batch=512, steps=3000),
}

DESCRIPTION = "3-conv CNN{} on sklearn digits (8x8), 1-pixel translation augmentation; fixed 1500/297 split"

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
