r"""Sophia-G (sophia-opt's SophiaG): clipped, diagonally preconditioned momentum with a cheap Hessian.

With :math:`\hat g` the gradient of the loss on labels *sampled from the model* (the
Gauss-Newton-Bartlett estimator, computed by the training loop every :math:`k` steps and handed
over through ``update_hessian()``, which reads ``.grad``), batch size :math:`B` (``bs``):

.. math::
    m_t &= \beta_1 m_{t-1} + (1-\beta_1) g_t \\
    h_t &= \beta_2 h_{t-k} + (1-\beta_2)\,\hat g\odot\hat g
        \quad\text{every } k \text{ steps, else } h_t = h_{t-1} \\
    \theta &\leftarrow \theta_{t-1}(1 - \eta\lambda) \\
    \theta_t &= \theta - \eta\,\mathrm{sign}(m_t)\,
        \min\!\Big(\frac{|m_t|}{\rho B h_t + 10^{-15}},\ 1\Big)

i.e. the paper's :math:`\theta - \eta\,\mathrm{clip}(m_t / \max(\gamma \hat h_t, \epsilon), 1)` with the GNB
estimate :math:`\hat h = B\,\hat g\odot\hat g` and :math:`\gamma = \rho`. Before the first estimate
:math:`h = 0` and every coordinate moves by :math:`\eta\,\mathrm{sign}(m)` (sign momentum).

Paper: Liu, Li, Hall, Liang & Ma, "Sophia: A Scalable Stochastic Second-order Optimizer for
Language Model Pre-training", ICLR 2024 (Algorithm 3, k = 10). Implementation: sophia-opt's
SophiaG (the authors' code, packaged). One change: SophiaG takes the batch size as an argument
of ``step(closure, bs=5120)``, and the training loop calls ``step()``; this entry's subclass
takes ``bs`` at construction and passes it on. ``bs`` should be the number of samples (tokens)
the Hessian loss averages over; its default is the library's 5120, and the tasks that provide
the Hessian hook set it to their batch (tokens for the LM) through ``Problem.hparam_defaults``.

Seed 003 writes Sophia as ``h = clip(∇²L, [1/γ, γ]); θ -= η ∇L / h``: Sophia clips the
*update* coordinate-wise to :math:`[-\eta, \eta]`, divides an EMA of gradients (not the gradient)
by an EMA of a diagonal Hessian *estimate* refreshed every k steps, and never clips the Hessian.
Its "2x faster than Adam" is the paper's step-count result on GPT-2 pre-training; its "LLaMA-2"
claim has no source.

State per parameter: ``exp_avg``, ``hessian`` (the parameter's dtype and shape) and a 0-d
``step`` tensor.
"""
import sophia_opt

from optimizers import Moment, OptimizerSpec, above, at_least, itemsize, numel, register, scalar_bytes


class SophiaG(sophia_opt.SophiaG):
    """sophia_opt.SophiaG with the batch size given at construction (``step()`` takes no ``bs``)."""

    def __init__(self, params, lr=1e-4, betas=(0.965, 0.99), rho=0.04, weight_decay=1e-1, bs=5120):
        super().__init__(params, lr=lr, betas=betas, rho=rho, weight_decay=weight_decay)
        self.bs = bs

    def step(self, closure=None):
        return super().step(closure, bs=self.bs)


def sophia_state_bytes(shape, dtype):
    return 2 * numel(shape) * itemsize(dtype) + scalar_bytes()


register(OptimizerSpec(
    name="sophia", family="sophia", paper="Liu et al. 2024",
    moments={"m": (Moment("exp_avg"),),
             "v": "Sophia's second statistic is an EMA of a Hessian-diagonal estimate (curvature), not of "
                  "squared gradients"},
    implementation="sophia_opt.SophiaG", build=SophiaG,
    defaults=dict(lr=1e-4, betas=(0.965, 0.99), rho=0.04, weight_decay=0.1, bs=5120),
    lr_range=(1e-6, 1e-1),
    search=dict(weight_decay=(1e-3, 1.0)),   # decoupled decay: tuned with lr (protocol)
    needs=frozenset({"hessian"}),
    hessian_every=10,
    hparam_rules=dict(rho=above(0), bs=at_least(1)),
    package="sophia-opt",
    state_bytes=sophia_state_bytes,
))
