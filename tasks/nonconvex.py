r"""Two non-convex test functions with a known minimum: Rosenbrock's valley and seed note 003's quartic.

Both are full-batch and noise-free, so the metric is the exact suboptimality
:math:`f(\theta) - f^*`, computed in float64 from the parameters whatever the run's dtype.
``Problem.optimum`` is :math:`f^*` and ``extras["argmin"]`` the minimiser. Their ``family``
is ``"convex"``, as it was when they shared a file with logistic regression: it is in every
record and table (``task_family``), and the tables stay as they are.

**rosenbrock** — the banana valley, :math:`f(x, y) = (1 - x)^2 + 100\,(y - x^2)^2`, with
:math:`f^* = 0` at :math:`(1, 1)`, from :math:`(-1.5, 2) + 0.1\,\xi`, :math:`\xi \sim
\mathcal N(0, I)` drawn from the seed.

**toy-quartic** — seed note 003's toy: minimise :math:`f(x) = x^4 + 3x^3 + 2` from
:math:`x_0 = 3` (the seed is not used: every seed is the same run). With
:math:`f'(x) = x^2 (4x + 9)` the critical points are :math:`x = 0`, an inflection point
(:math:`f''(0) = 0`, :math:`f'''(0) = 18`), not a minimum, and :math:`x^* = -9/4`, the global
minimum, :math:`f^* = f(-9/4) = -6.54296875`. Plain gradient descent from the right never crosses
0: the step :math:`\eta\,9x^2` shrinks faster than :math:`x`, so it creeps towards the inflection
point (:math:`x_t \sim 1/(9\eta t)`). Adam does no better here at lr 0.1: its first step is
:math:`\eta\,\hat m_1/(\sqrt{\hat v_1}+\epsilon) = \eta\,\mathrm{sign}(g_1)`, so
:math:`x_1 \approx 2.9` (note 003 prints 2.7272), but :math:`\hat v` (β2 = 0.999) keeps the first
gradients (:math:`f'(3) = 189`) while the gradient shrinks, so the steps shrink with it and after
100 steps x is still near the inflection point, about 0.25, not near -2.25 as the note prints.
At lr 0.1, SGD and heavy-ball momentum diverge at once (:math:`\eta f'(3) = 18.9`). The task
fixes lr = 0.1 (no tuning), the note's setting, so the report can set the note's printed
trajectory beside ours; 100 steps at every size.
"""
from __future__ import annotations

import numpy as np
import torch

from tasks import Metric, Problem, Task, flat64, generator, hash_data, register


class Point(torch.nn.Module):
    def __init__(self, x0):
        super().__init__()
        self.x = torch.nn.Parameter(x0.clone())


# --- Rosenbrock -----------------------------------------------------------------------------------

ROSENBROCK_START = (-1.5, 2.0)
ROSENBROCK_JITTER = 0.1   # the start is ROSENBROCK_START + ROSENBROCK_JITTER * N(0, I)


def rosenbrock(p: torch.Tensor) -> torch.Tensor:
    return (1 - p[0]) ** 2 + 100 * (p[1] - p[0] ** 2) ** 2


def build_rosenbrock(size, seed, device, dtype):
    start = generator(seed, "rosenbrock:start")
    jitter = torch.randn(2, generator=start, dtype=torch.float64) * ROSENBROCK_JITTER
    x0 = torch.tensor(ROSENBROCK_START, dtype=torch.float64) + jitter

    def evaluate(model):
        with torch.no_grad():
            p = flat64(model)
            # the position too: the report draws each optimizer's path through the valley
            return {"suboptimality": float(rosenbrock(p)), "x": float(p[0]), "y": float(p[1])}

    return Problem(model=Point(x0.to(device, dtype)), batch=lambda step: step,
                   loss=lambda model, batch: rosenbrock(model.x), evaluate=evaluate,
                   data_hash=hash_data("rosenbrock", ROSENBROCK_START, ROSENBROCK_JITTER, start),
                   optimum=0.0, extras={"start": [float(v) for v in x0], "argmin": [1.0, 1.0]})


def rosenbrock_figure() -> dict:
    """The valley's contours (log10 f on a grid) and the optimum, for the report's path figure."""
    gx, gy = np.meshgrid(np.linspace(-2, 2, 161), np.linspace(-1, 3, 161))
    f = rosenbrock(torch.from_numpy(np.stack([gx, gy]))).numpy()
    return {"plane": {"xlim": [-2, 2], "ylim": [-1, 3],
                      "contour": {"x": gx[0].tolist(), "y": gy[:, 0].tolist(),
                                  "z": np.round(np.log10(f + 1e-3), 4).tolist(), "label": "log10 f"},
                      "points": [{"x": 1.0, "y": 1.0, "label": "optimum (1, 1)"}]}}


# --- the quartic toy of seed 003 -------------------------------------------------------------------

QUARTIC_START = 3.0
QUARTIC_ARGMIN = -9.0 / 4.0


def quartic(x: torch.Tensor) -> torch.Tensor:
    return x ** 4 + 3 * x ** 3 + 2


QUARTIC_MIN = float(quartic(torch.tensor(QUARTIC_ARGMIN, dtype=torch.float64)))   # -6.54296875


# Note 003's printed output (Adam, lr 0.1, float32; "Epoch e" is printed after step e + 1).
SEED_003_PRINTED = {1: 2.7272, 11: 0.4854, 21: -1.2395, 31: -1.6548, 41: -1.7861, 51: -1.8323, 91: -1.8910}


def quartic_figure() -> dict:
    return {"printed": {
        "optimizer": "adam", "series": "x", "source": "note 003", "values": SEED_003_PRINTED,
        "note": "Seed note 003's printed trajectory beside ours. Adam's first step moves x by lr (the "
                "note's 2.7272 is not what its own code computes); after it, v̂ (β2 = 0.999) keeps the "
                "first, large gradients while the gradient shrinks, so the steps shrink too and x creeps "
                "towards the inflection point at 0 instead of reaching the minimum at −2.25 as the note "
                "prints:"}}


def build_quartic(size, seed, device, dtype):
    x0 = torch.tensor([QUARTIC_START], dtype=torch.float64)

    def evaluate(model):
        with torch.no_grad():
            x = flat64(model)
            return {"suboptimality": float(quartic(x)[0]) - QUARTIC_MIN, "x": float(x[0])}

    return Problem(model=Point(x0.to(device, dtype)), batch=lambda step: step,
                   loss=lambda model, batch: quartic(model.x).sum(), evaluate=evaluate,
                   data_hash=hash_data("toy-quartic", QUARTIC_START), optimum=QUARTIC_MIN,
                   extras={"start": QUARTIC_START, "argmin": [QUARTIC_ARGMIN], "inflection_point": 0.0})


register(Task(
    name="rosenbrock", family="convex",
    description="2-D Rosenbrock (1-x)^2 + 100(y-x^2)^2 from (-1.5, 2) + 0.1 N(0, I); f* = 0 at (1, 1)",
    metric=Metric("suboptimality", "min", target=1e-3),
    sizes={"smoke": dict(steps=100), "cpu": dict(steps=1000), "gpu": dict(steps=10000)},
    build=build_rosenbrock, eval_every=10, figure=rosenbrock_figure,
    # Shampoo's statistic here sums g g^T with |g|^2 ~ 3e4 a step: at the library's 1e-6 its SVD in
    # float32 loses eps and the root is infinite (NaN at step 1). 10 is the value optimizers/shampoo.py
    # measured and documents for this task (no non-finite run in 35 at the cpu size's 1000 steps; the
    # gpu size's 10000 steps are not measured). Only Shampoo has the key.
    hparam_defaults={"matrix_eps": 10.0},
))

register(Task(
    name="toy-quartic", family="convex",
    description="seed 003's toy: x^4 + 3x^3 + 2 from x = 3; inflection point at 0, minimum at -9/4",
    metric=Metric("suboptimality", "min", target=1e-2),
    sizes={"smoke": dict(steps=100), "cpu": dict(steps=100), "gpu": dict(steps=100)},
    # seed 003's setting: a constant lr of 0.1 from step 0 (no warm-up, no decay), whatever the profile's schedule
    build=build_quartic, eval_every=1, fixed_lr=0.1, schedule={"name": "constant"}, figure=quartic_figure,
))
