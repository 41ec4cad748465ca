r"""SGD, heavy-ball momentum and Nesterov momentum (torch.optim.SGD).

With gradient :math:`g_t`, momentum :math:`\mu`, dampening 0 and decay :math:`\lambda`:

.. math::
    g_t &\leftarrow g_t + \lambda\theta_{t-1} \\
    b_t &= \mu b_{t-1} + g_t \qquad (b_1 = g_1) \\
    \theta_t &= \theta_{t-1} - \eta\,b_t \qquad\text{or, Nesterov,}\quad
    \theta_t = \theta_{t-1} - \eta\,(g_t + \mu b_t)

Papers: Robbins & Monro (1951); Polyak (1964); Nesterov (1983), in the form of Sutskever et al.
(2013). Seed 002 writes momentum as :math:`v = \mu v - \eta g`; torch folds :math:`\eta` out of
the buffer, which is the same trajectory at a constant learning rate and differs when lr changes.

State: nothing for plain SGD; one buffer the size of the parameter with momentum.
"""
import torch

from optimizers import Moment, OptimizerSpec, itemsize, numel, register


def momentum_buffer_bytes(shape, dtype):
    return numel(shape) * itemsize(dtype)


def _nesterov_needs_momentum(hp):
    # torch.optim.SGD refuses nesterov=True with momentum 0 ("Nesterov momentum requires a momentum").
    if hp["nesterov"] and not hp["momentum"] > 0:
        return ("momentum", "Nesterov momentum needs a momentum > 0",
                "a number in (0, 1) with nesterov=True, or nesterov=False")
    return None


# The momentum buffer is the first moment (none at momentum 0: no state); no second moment.
SGD_MOMENTS = {"m": (Moment("momentum_buffer"),), "v": ()}

register(OptimizerSpec(
    name="sgd", family="sgd", paper="Robbins & Monro 1951",
    moments=SGD_MOMENTS,
    implementation="torch.optim.SGD", build=torch.optim.SGD,
    defaults=dict(lr=0.01, weight_decay=0.0),
    lr_range=(1e-3, 3.0),
    needs=frozenset({"sparse"}),
    state_bytes=lambda shape, dtype: 0,
))

register(OptimizerSpec(
    name="momentum", family="sgd", paper="Polyak 1964",
    moments=SGD_MOMENTS,
    implementation="torch.optim.SGD(momentum=0.9)", build=torch.optim.SGD,
    defaults=dict(lr=0.01, momentum=0.9, weight_decay=0.0),
    lr_range=(1e-4, 3.0),
    state_bytes=momentum_buffer_bytes,
))

register(OptimizerSpec(
    name="nesterov", family="sgd", paper="Nesterov 1983; Sutskever et al. 2013",
    moments=SGD_MOMENTS,
    implementation="torch.optim.SGD(nesterov=True)", build=torch.optim.SGD,
    defaults=dict(lr=0.01, momentum=0.9, nesterov=True, weight_decay=0.0),
    lr_range=(1e-4, 3.0),
    hparam_check=_nesterov_needs_momentum,
    state_bytes=momentum_buffer_bytes,
))
