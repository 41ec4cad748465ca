r"""L2-regularised logistic regression on breast cancer: a convex problem whose minimum is known.

Full-batch and noise-free, so the metric is the exact suboptimality :math:`f(\theta) - f^*`,
computed in float64 from the parameters whatever the run's dtype. ``Problem.optimum`` is
:math:`f^*` (the minimum of the training loss) and ``extras["argmin"]`` the minimiser as a flat
list in ``model.parameters()`` order.

**logreg-cancer** — L2-regularised logistic regression on scikit-learn's bundled breast-cancer
set (569 × 30, no download), features standardised to zero mean and unit variance:

.. math::  f(w, b) = \frac1n \sum_i \log\bigl(1 + e^{-s_i (x_i^\top w + b)}\bigr)
           + \frac\lambda2 \lVert w\rVert^2, \qquad s_i = \pm 1,\ \lambda = 10^{-3}

(the bias is not regularised). The data are nearly separable and the standardised features
strongly correlated, so the Hessian at the optimum is ill-conditioned (its condition number is in
``extras``). :math:`f^*` comes from Newton's method with a backtracking line search in float64,
run to a gradient norm of 1e-13 (so :math:`f^*` is exact to far better than 1e-10), once per
process (``functools.cache``). The seed draws the start :math:`\theta_0 \sim \mathcal N(0, 1)`.

**No test split** (``Problem.test`` None, like the quadratics and Rosenbrock): the task measures
optimisation, not generalisation. Its metric is the exact suboptimality of one fixed finite sum,
computed from the parameters with nothing sampled, so selecting on it over-fits no evaluation
sample, and holding examples out would only change the sum being minimised (and :math:`f^*`).
"""
from __future__ import annotations

import functools

import numpy as np
import torch

from tasks import Metric, Problem, Shipped, Task, flat64, generator, hash_data, register

LOGREG_L2 = 1e-3


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
            f = float(logreg_objective(flat64(model), x64, s64, LOGREG_L2))
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


register(Task(
    name="logreg-cancer", family="convex",
    description="L2-regularised (1e-3) logistic regression on breast cancer (569 x 30, standardised), "
                "full batch; f* by Newton in float64",
    metric=Metric("suboptimality", "min", target=1e-3),
    sizes={"smoke": dict(steps=50), "cpu": dict(steps=300), "gpu": dict(steps=3000)},
    build=build_logreg, eval_every=10,
))
