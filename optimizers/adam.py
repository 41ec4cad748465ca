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


ADAM_DEFAULTS = dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)


def adam_spec(name: str, paper: str, implementation: str, build, decoupled: bool = False,
              family: str = "adam", eps: float = 1e-8, **spec) -> OptimizerSpec:
    """An entry of Adam's form (this file's, the reference's, the 8-bit one, LAMB): Adam's
    hyperparameters and lr range; `decoupled` (AdamW's decay, scaled by lr): weight decay 0.01,
    as torch.optim.AdamW, tuned with lr (protocol), else 0. Every one keeps Adam's second moment with
    beta2 = betas[1], tuned where the task tunes it (`tunes_beta2`). `spec`: the entry's other fields."""
    spec.setdefault("tunes_beta2", True)
    if decoupled:
        spec.setdefault("search", dict(weight_decay=(1e-3, 1.0)))
    return OptimizerSpec(name=name, family=family, paper=paper, implementation=implementation, build=build,
                         defaults=dict(ADAM_DEFAULTS, eps=eps, weight_decay=0.01 if decoupled else 0.0),
                         lr_range=(1e-5, 1.0), **spec)


register(adam_spec("adam", "Kingma & Ba 2015", "torch.optim.Adam", torch.optim.Adam, state_bytes=adam_state_bytes))
register(adam_spec("adamw", "Loshchilov & Hutter 2019", "torch.optim.AdamW", torch.optim.AdamW, decoupled=True,
                   state_bytes=adam_state_bytes))
