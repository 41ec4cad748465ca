r"""NAdam (torch.optim.NAdam): Adam with Nesterov momentum, in Dozat's form with a momentum schedule.

With :math:`\mu_t = \beta_1 (1 - \tfrac12 \cdot 0.96^{t\psi})` (:math:`\psi` = ``momentum_decay``)
and L2 decay :math:`\lambda`:

.. math::
    g_t &\leftarrow g_t + \lambda\theta_{t-1} \\
    m_t &= \beta_1 m_{t-1} + (1-\beta_1) g_t, \qquad v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2 \\
    \hat v_t &= v_t / (1-\beta_2^t) \\
    \theta_t &= \theta_{t-1}
      - \eta\,\frac{1-\mu_t}{1-\prod_{i\le t}\mu_i}\,\frac{g_t}{\sqrt{\hat v_t}+\epsilon}
      - \eta\,\frac{\mu_{t+1}}{1-\prod_{i\le t+1}\mu_i}\,\frac{m_t}{\sqrt{\hat v_t}+\epsilon}

Paper: Dozat, "Incorporating Nesterov Momentum into Adam", ICLR 2016 workshop.
Implementation: torch.optim.NAdam (``decoupled_weight_decay=False``, so ``weight_decay`` is L2
added to the gradient). Seed 000 only names NAdam as "Adam with Nesterov acceleration".

State per parameter: ``exp_avg``, ``exp_avg_sq`` (the parameter's dtype and shape) and two 0-d
tensors, ``step`` and ``mu_product``.
"""
import torch

from optimizers import OptimizerSpec, at_least, itemsize, numel, register, scalar_bytes


def nadam_state_bytes(shape, dtype):
    return 2 * numel(shape) * itemsize(dtype) + 2 * scalar_bytes()


register(OptimizerSpec(
    name="nadam", family="adam", paper="Dozat 2016",
    implementation="torch.optim.NAdam", build=torch.optim.NAdam,
    defaults=dict(lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, momentum_decay=4e-3),
    lr_range=(1e-5, 1.0),
    hparam_rules=dict(momentum_decay=at_least(0)),
    tunes_beta2=True,   # v's EMA is Adam's
    state_bytes=nadam_state_bytes,
))
