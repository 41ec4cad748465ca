r"""Adam and AdamW (torch.optim), the baselines every other entry is measured against.

.. math::
    m_t &= \beta_1 m_{t-1} + (1-\beta_1) g_t, \qquad v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2 \\
    \hat m_t &= m_t / (1-\beta_1^t), \qquad \hat v_t = v_t / (1-\beta_2^t) \\
    \theta_t &= \theta_{t-1} - \eta\,\hat m_t / (\sqrt{\hat v_t} + \epsilon)
    \;[-\ \eta\lambda\theta_{t-1}\ \text{(AdamW, decoupled)}]

Papers: Kingma & Ba, ICLR 2015; Loshchilov & Hutter, ICLR 2019 (AdamW). Seed 004 puts
:math:`\epsilon` inside the square root and seed 003 writes AdamW without bias correction: both
are variants; torch, and this entry, use the form above. Adam's ``weight_decay`` is L2 added to
the gradient, AdamW's is decoupled and scaled by lr.

State per parameter: ``exp_avg`` and ``exp_avg_sq`` (the parameter's dtype and shape) and a 0-d
``step`` tensor.
"""
import torch

from optimizers import OptimizerSpec, itemsize, numel, register, scalar_bytes


def adam_state_bytes(shape, dtype):
    return 2 * numel(shape) * itemsize(dtype) + scalar_bytes()


register(OptimizerSpec(
    name="adam", family="adam", paper="Kingma & Ba 2015",
    implementation="torch.optim.Adam", build=torch.optim.Adam,
    defaults=dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0),
    lr_range=(1e-5, 1.0),
    state_bytes=adam_state_bytes,
))

register(OptimizerSpec(
    name="adamw", family="adam", paper="Loshchilov & Hutter 2019",
    implementation="torch.optim.AdamW", build=torch.optim.AdamW,
    defaults=dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01),
    lr_range=(1e-5, 1.0),
    search=dict(weight_decay=(1e-3, 1.0)),   # decoupled decay: tuned with lr (protocol)
    state_bytes=adam_state_bytes,
))
