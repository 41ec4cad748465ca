r"""AdaGrad (torch.optim.Adagrad): per-coordinate steps shrinking with the accumulated squared gradient.

With gradient :math:`g_t`, learning-rate decay :math:`\delta`, L2 decay :math:`\lambda` and
initial accumulator :math:`s_0`:

.. math::
    g_t &\leftarrow g_t + \lambda\theta_{t-1} \\
    \eta_t &= \eta / (1 + (t-1)\,\delta) \\
    s_t &= s_{t-1} + g_t^2 \\
    \theta_t &= \theta_{t-1} - \eta_t\, g_t / (\sqrt{s_t} + \epsilon)

Paper: Duchi, Hazan & Singer, "Adaptive Subgradient Methods for Online Learning and Stochastic
Optimization", JMLR 2011. Implementation: torch.optim.Adagrad. It accepts sparse gradients
(``nn.Embedding(sparse=True)``): only the rows present in the gradient update their
accumulator and parameters; ``weight_decay`` must then be 0 (torch refuses the combination).

Seed 002 writes the step as :math:`\eta/\sqrt{s_t + \epsilon}` (ε inside the root); torch and the
paper's diagonal form put ε outside the root: :math:`\eta/(\sqrt{s_t} + \epsilon)`.

State per parameter: ``sum`` (the parameter's dtype and shape) and a 0-d ``step`` tensor. Unlike
most torch optimizers, Adagrad allocates its state when it is built, not at the first step.
"""
import torch

from optimizers import Moment, OptimizerSpec, at_least, itemsize, numel, register, scalar_bytes


def adagrad_state_bytes(shape, dtype):
    return numel(shape) * itemsize(dtype) + scalar_bytes()


register(OptimizerSpec(
    name="adagrad", family="adagrad", paper="Duchi, Hazan & Singer 2011",
    moments={"m": (), "v": (Moment("sum", label="sum (accumulated, not averaged)"),)},
    implementation="torch.optim.Adagrad", build=torch.optim.Adagrad,
    defaults=dict(lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10),
    lr_range=(1e-4, 1.0),
    needs=frozenset({"sparse"}),
    hparam_rules=dict(lr_decay=at_least(0), initial_accumulator_value=at_least(0)),
    state_bytes=adagrad_state_bytes,
))
