r"""Ill-conditioned convex quadratics with a known optimum.

.. math::  f(x) = \tfrac12 (x - x^*)^\top A (x - x^*) + f^*,\qquad A = Q\,\mathrm{diag}(\lambda)\,Q^\top

with eigenvalues log-spaced in :math:`[1/\kappa, 1]`, a random rotation :math:`Q` (so no
optimizer gets a free diagonal preconditioner), and optionally Gaussian gradient noise of
scale ``noise``. The metric is the suboptimality :math:`f(x) - f^*`; the optimum is exact.

``data_hash`` covers what defines the problem: the dimension, condition number and noise scale
(and the number of noise draws), and the streams the rotation, :math:`x^*`, the start and the
noise are drawn from; not :math:`A` itself, whose QR factorisation and products round differently
on different CPUs.
"""
import functools
import math

import torch

from tasks import Metric, Problem, Task, generator, hash_data, register


class Point(torch.nn.Module):
    def __init__(self, x0):
        super().__init__()
        self.x = torch.nn.Parameter(x0.clone())


def build(size, seed, device, dtype, *, condition):
    dim, noise = size["dim"], size.get("noise", 0.0)
    # The problem itself is fixed by the task (stream "problem", seed 0); the seed moves the start.
    problem_stream = f"quadratic:{dim}:{condition}"
    g = generator(0, problem_stream)
    q, _ = torch.linalg.qr(torch.randn(dim, dim, generator=g, dtype=torch.float64))
    eig = torch.logspace(0, -math.log10(condition), dim, dtype=torch.float64)
    a = (q * eig) @ q.T
    x_star = torch.randn(dim, generator=g, dtype=torch.float64)
    x0 = x_star + torch.randn(dim, generator=generator(seed, "quadratic:start"), dtype=torch.float64) * 3
    a, x_star = a.to(device, dtype), x_star.to(device, dtype)
    noise_g = generator(seed, "quadratic:noise")
    noises = (torch.randn(size["steps"] + 1, dim, generator=noise_g, dtype=torch.float64) * noise).to(device, dtype)

    def f(model):
        d = model.x - x_star
        return 0.5 * d @ (a @ d)

    def loss(model, step):
        # Gradient noise enters as a linear term with zero mean: E[grad] = A(x - x*).
        return f(model) + (noises[step] @ model.x if noise else 0.0)

    def evaluate(model):
        with torch.no_grad():
            return {"suboptimality": float(f(model))}

    return Problem(model=Point(x0.to(device, dtype)), batch=lambda step: step % (size["steps"] + 1),
                   loss=loss, evaluate=evaluate, optimum=0.0,
                   data_hash=hash_data("quadratic", dim, float(condition), float(noise),
                                       generator(0, problem_stream), generator(seed, "quadratic:start"),
                                       *((noise_g, size["steps"] + 1) if noise else ())),
                   extras={"condition": condition, "dim": dim, "noise": noise})


def sizes(noise: float) -> dict:
    return {"smoke": dict(dim=20, steps=100, noise=noise),
            "cpu": dict(dim=100, steps=500, noise=noise),
            "gpu": dict(dim=1000, steps=2000, noise=noise)}


def description(condition: float, noise: float) -> str:
    return f"rotated quadratic, condition number {condition:.0e}, gradient noise {noise}"


K1E2 = register(Task(
    name="quadratic-k1e2", family="convex", description=description(1e2, 0.0),
    metric=Metric("suboptimality", "min", target=1e-3),
    sizes=sizes(0.0), build=functools.partial(build, condition=1e2), eval_every=10,
))
K1E2.variant("quadratic-k1e4", description(1e4, 0.0), build=functools.partial(build, condition=1e4))
K1E2.variant("quadratic-k1e2-noisy", description(1e2, 0.1), sizes=sizes(0.1))
