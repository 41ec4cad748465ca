r"""Lion (pytorch_optimizer.Lion): the sign of an interpolated momentum, found by program search.

.. math::
    c_t &= \beta_1 m_{t-1} + (1-\beta_1) g_t \\
    \theta_t &= \theta_{t-1}(1 - \eta\lambda) - \eta\,\mathrm{sign}(c_t) \\
    m_t &= \beta_2 m_{t-1} + (1-\beta_2) g_t

Every coordinate moves by exactly :math:`\eta` (plus decay), so Lion needs a learning rate 3-10x
smaller than AdamW's and, for the same effective decay, a :math:`\lambda` 3-10x larger (the
paper's advice); the defaults here are lr 1e-4 and :math:`\lambda` = 0.1 (AdamW: 1e-3, 0.01).

Paper: Chen et al., "Symbolic Discovery of Optimization Algorithms", NeurIPS 2023.
Implementation: pytorch_optimizer.Lion (decoupled decay, scaled by lr, as in the paper).
The seed notes do not cover Lion.

State per parameter: ``exp_avg`` (the parameter's dtype and shape) -- half of Adam's. The step
counter lives in the param group.
"""
from optimizers import Moment, OptimizerSpec, itemsize, numel, register


def lion_state_bytes(shape, dtype):
    return numel(shape) * itemsize(dtype)


def build_lion(params, **hp):
    from pytorch_optimizer import Lion  # imported when used: pytorch_optimizer takes seconds to import
    return Lion(params, **hp)


register(OptimizerSpec(
    name="lion", family="lion", paper="Chen et al. 2023",
    moments={"m": (Moment("exp_avg"),), "v": ()},
    implementation="pytorch_optimizer.Lion", build=build_lion,
    defaults=dict(lr=1e-4, betas=(0.9, 0.99), weight_decay=0.1),
    lr_range=(1e-6, 1e-1),
    search=dict(weight_decay=(1e-2, 10.0)),   # decoupled decay: tuned with lr (protocol)
    package="pytorch_optimizer",
    state_bytes=lion_state_bytes,
))
