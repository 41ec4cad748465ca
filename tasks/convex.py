r"""Deterministic problems with a known minimum: logistic regression, Rosenbrock, a quartic toy.

All three are full-batch and noise-free, so the metric is the exact suboptimality
:math:`f(\theta) - f^*`, computed in float64 from the parameters whatever the run's dtype.
``Problem.optimum`` is :math:`f^*` (the minimum of the training loss) and ``extras["argmin"]``
the minimiser as a flat list in ``model.parameters()`` order.

**logreg-cancer** — L2-regularised logistic regression on scikit-learn's bundled breast-cancer
set (569 × 30, no download), features standardised to zero mean and unit variance:

.. math::  f(w, b) = \frac1n \sum_i \log\bigl(1 + e^{-s_i (x_i^\top w + b)}\bigr)
           + \frac\lambda2 \lVert w\rVert^2, \qquad s_i = \pm 1,\ \lambda = 10^{-3}

(the bias is not regularised). The data are nearly separable and the standardised features
strongly correlated, so the Hessian at the optimum is ill-conditioned (its condition number is in
``extras``). :math:`f^*` comes from Newton's method with a backtracking line search in float64,
run to a gradient norm of 1e-13 (so :math:`f^*` is exact to far better than 1e-10), once per
process (``functools.cache``). The seed draws the start :math:`\theta_0 \sim \mathcal N(0, 1)`.

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

import functools

import numpy as np
import torch

from tasks import Metric, Problem, Shipped, Task, generator, hash_data, register

LOGREG_L2 = 1e-3


class Point(torch.nn.Module):
    def __init__(self, x0):
        super().__init__()
        self.x = torch.nn.Parameter(x0.clone())


def _flat64(model) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1).to("cpu", torch.float64) for p in model.parameters()])


# --- logistic regression on breast cancer -------------------------------------------------------

@functools.cache
def cancer_raw() -> tuple[np.ndarray, np.ndarray]:
    """(X, y) as scikit-learn ships them: float64 features [569, 30] parsed from its CSV, labels 0/1."""
    from sklearn.datasets import load_breast_cancer
    return load_breast_cancer(return_X_y=True)


@functools.cache
def cancer_data() -> tuple[torch.Tensor, torch.Tensor]:
    """(X, s): standardised float64 features [569, 30] and labels in {-1, +1}."""
    x, y = cancer_raw()
    x = (x - x.mean(0)) / x.std(0)
    return torch.from_numpy(x), torch.from_numpy(2.0 * y - 1.0)


def logreg_objective(theta: torch.Tensor, x: torch.Tensor, s: torch.Tensor, l2: float) -> torch.Tensor:
    """f(theta), theta = (w, b) flat: mean logistic loss + l2/2 |w|^2 (bias unregularised)."""
    w, b = theta[:-1], theta[-1]
    margins = s * (x @ w + b)
    return torch.nn.functional.softplus(-margins).mean() + 0.5 * l2 * (w @ w)


@functools.cache
def logreg_solution(l2: float = LOGREG_L2) -> tuple[np.ndarray, float, float, int]:
    """Newton with backtracking in float64: (theta*, f*, condition number of the Hessian, iterations)."""
    x, s = cancer_data()
    n, d = x.shape
    xb = torch.cat([x, torch.ones(n, 1, dtype=torch.float64)], 1)
    reg = torch.full((d + 1,), l2, dtype=torch.float64)
    reg[-1] = 0.0
    theta = torch.zeros(d + 1, dtype=torch.float64)
    f = lambda t: float(logreg_objective(t, x, s, l2))  # noqa: E731
    it = 0
    for it in range(1, 101):
        m = s * (xb @ theta)
        sig = torch.sigmoid(-m)                       # = 1 - sigma(m)
        grad = -(xb * (s * sig)[:, None]).mean(0) + reg * theta
        if float(grad.norm()) < 1e-13:
            break
        hess = (xb.T * (sig * (1 - sig))) @ xb / n + torch.diag(reg)
        step = torch.linalg.solve(hess, grad)
        decrement = float(grad @ step)           # ~ 2 (f - f*) near the optimum
        t, f0 = 1.0, f(theta)
        # Backtrack far from the optimum only: near it, f's rounding (1e-17) hides the decrease.
        while decrement > 1e-8 and f(theta - t * step) > f0 - 0.25 * t * decrement and t > 1e-10:
            t *= 0.5
        theta = theta - t * step
    else:
        raise RuntimeError("Newton did not converge on logreg-cancer")
    m = s * (xb @ theta)
    sig = torch.sigmoid(-m)
    hess = (xb.T * (sig * (1 - sig))) @ xb / n + torch.diag(reg)
    ev = torch.linalg.eigvalsh(hess)
    return theta.numpy(), f(theta), float(ev[-1] / ev[0]), it


class Linear(torch.nn.Module):
    def __init__(self, w0, b0):
        super().__init__()
        self.weight = torch.nn.Parameter(w0.clone())
        self.bias = torch.nn.Parameter(b0.clone())


def build_logreg(size, seed, device, dtype):
    x64, s64 = cancer_data()
    theta_star, f_star, cond, iters = logreg_solution(LOGREG_L2)
    d = x64.shape[1]
    theta0 = torch.randn(d + 1, generator=generator(seed, "logreg:start"), dtype=torch.float64)
    model = Linear(theta0[:-1].to(device, dtype), theta0[-1:].to(device, dtype))
    x, s = x64.to(device, dtype), s64.to(device, dtype)

    def loss(model, batch):
        margins = s * (x @ model.weight + model.bias)
        w = model.weight
        return torch.nn.functional.softplus(-margins).mean() + 0.5 * LOGREG_L2 * (w @ w)

    def evaluate(model):
        with torch.no_grad():
            f = float(logreg_objective(_flat64(model), x64, s64, LOGREG_L2))
        return {"suboptimality": max(f - f_star, 0.0), "objective": f}

    return Problem(model=model, batch=lambda step: step, loss=loss, evaluate=evaluate,
                   # the shipped features and labels (not the standardised ones: means and
                   # deviations round differently on different CPUs), the l2 weight, the start's stream
                   data_hash=hash_data("logreg", Shipped(torch.from_numpy(cancer_raw()[0])),
                                       torch.from_numpy(cancer_raw()[1]), LOGREG_L2,
                                       generator(seed, "logreg:start")), optimum=f_star,
                   extras={"n": int(x64.shape[0]), "dim": d, "l2": LOGREG_L2, "f_star": f_star,
                           "condition_at_optimum": cond, "newton_iterations": iters,
                           "argmin": [float(v) for v in theta_star]})


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
            p = _flat64(model)
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
            x = _flat64(model)
            return {"suboptimality": float(quartic(x)[0]) - QUARTIC_MIN, "x": float(x[0])}

    return Problem(model=Point(x0.to(device, dtype)), batch=lambda step: step,
                   loss=lambda model, batch: quartic(model.x).sum(), evaluate=evaluate,
                   data_hash=hash_data("toy-quartic", QUARTIC_START), optimum=QUARTIC_MIN,
                   extras={"start": QUARTIC_START, "argmin": [QUARTIC_ARGMIN], "inflection_point": 0.0})


register(Task(
    name="logreg-cancer", family="convex",
    description="L2-regularised (1e-3) logistic regression on breast cancer (569 x 30, standardised), "
                "full batch; f* by Newton in float64",
    metric=Metric("suboptimality", "min", target=1e-3),
    sizes={"smoke": dict(steps=50), "cpu": dict(steps=300), "gpu": dict(steps=3000)},
    build=build_logreg, eval_every=10,
))

register(Task(
    name="rosenbrock", family="convex",
    description="2-D Rosenbrock (1-x)^2 + 100(y-x^2)^2 from (-1.5, 2) + 0.1 N(0, I); f* = 0 at (1, 1)",
    metric=Metric("suboptimality", "min", target=1e-3),
    sizes={"smoke": dict(steps=100), "cpu": dict(steps=1000), "gpu": dict(steps=10000)},
    build=build_rosenbrock, eval_every=10, figure=rosenbrock_figure,
))

register(Task(
    name="toy-quartic", family="convex",
    description="seed 003's toy: x^4 + 3x^3 + 2 from x = 3; inflection point at 0, minimum at -9/4",
    metric=Metric("suboptimality", "min", target=1e-2),
    sizes={"smoke": dict(steps=100), "cpu": dict(steps=100), "gpu": dict(steps=100)},
    build=build_quartic, eval_every=1, fixed_lr=0.1, figure=quartic_figure,
))
