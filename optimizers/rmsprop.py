r"""RMSProp (torch.optim.RMSprop), plain form: no momentum, not centred.

With smoothing constant :math:`\alpha` and L2 decay :math:`\lambda`:

.. math::
    g_t &\leftarrow g_t + \lambda\theta_{t-1} \\
    v_t &= \alpha v_{t-1} + (1-\alpha) g_t^2 \\
    \theta_t &= \theta_{t-1} - \eta\, g_t / (\sqrt{v_t} + \epsilon)

Source: Tieleman & Hinton, COURSERA "Neural Networks for Machine Learning", lecture 6.5 (2012);
there is no paper. Implementation: torch.optim.RMSprop. Seeds 002 and 004 write
:math:`\eta/\sqrt{v_t + \epsilon}` (ε inside the root); torch puts ε outside, as above. There is no
bias correction, so the first steps are larger than Adam's (:math:`v_1 = (1-\alpha) g_1^2`).

torch's ``momentum`` and ``centered`` options are not exposed: each adds a buffer the size of
the parameter, and the registry's ``state_bytes(shape, dtype)`` cannot see hyperparameters.
Default lr 1e-3 (Hinton's lecture and Keras) rather than torch's 1e-2.

State per parameter: ``square_avg`` (the parameter's dtype and shape) and a 0-d ``step`` tensor.
"""
import torch

from optimizers import Moment, OptimizerSpec, itemsize, numel, register, scalar_bytes, within


def rmsprop_state_bytes(shape, dtype):
    return numel(shape) * itemsize(dtype) + scalar_bytes()


register(OptimizerSpec(
    name="rmsprop", family="rmsprop", paper="Tieleman & Hinton 2012 (lecture 6.5)",
    moments={"m": (Moment("momentum_buffer"),), "v": (Moment("square_avg"),)},
    implementation="torch.optim.RMSprop", build=torch.optim.RMSprop,
    defaults=dict(lr=1e-3, alpha=0.99, eps=1e-8, weight_decay=0.0),
    lr_range=(1e-5, 1.0),
    # torch accepts alpha = 1 (v never moves from 0, steps of g/eps) and alpha > 1; alpha is a
    # decay rate and must lie in [0, 1).
    hparam_rules=dict(alpha=within(0, 1)),
    state_bytes=rmsprop_state_bytes,
))
