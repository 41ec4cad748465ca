r"""LAMB (pytorch_optimizer.Lamb): Adam's direction, rescaled per tensor by a trust ratio.

For each parameter tensor, with decay :math:`\lambda` inside the ratio (the paper's form):

.. math::
    m_t &= \beta_1 m_{t-1} + (1-\beta_1) g_t, \qquad v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2 \\
    u_t &= m_t / (\sqrt{v_t} + \epsilon) + \lambda\theta_{t-1} \\
    \theta_t &= \theta_{t-1} - \eta\,\frac{\phi(\lVert\theta_{t-1}\rVert)}{\lVert u_t\rVert + \epsilon}\,u_t,
      \qquad \phi(z) = \min(z, 10)

(the ratio is 1 when either norm is 0, e.g. for a zero-initialised bias).

Paper: You et al., "Large Batch Optimization for Deep Learning: Training BERT in 76 minutes", ICLR
2020 (Algorithm 2). Implementation: pytorch_optimizer.Lamb with two non-default flags that make it
the paper's update:

- ``weight_decouple=False`` puts :math:`\lambda\theta` inside :math:`u_t`, before the trust
  ratio, as the paper does (the library's default decays outside the ratio, AdamW-style);
- ``adam_debias=True`` stops the library from dividing the *step* by :math:`1-\beta_1^t` after
  the trust ratio (its default), which made the first step's norm
  :math:`\eta\,\phi(\lVert\theta\rVert)/(1-\beta_1)`, ten times the paper's.

What remains different from the paper: no bias correction of :math:`m` and :math:`v` inside
:math:`u_t`. With :math:`\lambda = 0` the corrections are per-tensor scalars that cancel in the
trust ratio up to :math:`\epsilon` (the tests hold the entry to the paper's update to 1e-4); with
:math:`\lambda > 0` they change the weight of the decay term in the first
:math:`\sim 1/(1-\beta_2)` steps. :math:`\epsilon` = 1e-6 also enters the ratio's denominator.

Seed 003 writes LAMB as ``ratio = ||θ|| / ||update||; θ -= η·ratio·update`` with no Adam
moments and no decay: that is LARS's layer-wise scaling; LAMB applies it to the Adam direction.

State per parameter: ``exp_avg``, ``exp_avg_sq`` (the parameter's dtype and shape) and three
diagnostic scalars the library keeps, ``weight_norm``, ``adam_norm`` and ``trust_ratio`` (the
parameter's dtype; its batched path stores them as views of one stacked tensor per group, which
is the same bytes per parameter). The step counter lives in the param group.
"""
from optimizers import itemsize, numel, register
from optimizers.adam import adam_spec


def lamb_state_bytes(shape, dtype):
    return (2 * numel(shape) + 3) * itemsize(dtype)


def build_lamb(params, **hp):
    from pytorch_optimizer import Lamb  # imported when used: pytorch_optimizer takes seconds to import
    return Lamb(params, weight_decouple=False, adam_debias=True, **hp)


register(adam_spec("lamb", "You et al. 2020", "pytorch_optimizer.Lamb(weight_decouple=False, adam_debias=True)",
                   build_lamb, decoupled=True, family="lamb", eps=1e-6, package="pytorch_optimizer",
                   state_bytes=lamb_state_bytes))
