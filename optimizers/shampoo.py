r"""Shampoo (pytorch_optimizer.Shampoo): one Kronecker-factor preconditioner per tensor dimension.

For a parameter of order :math:`k` with dimensions :math:`d_1..d_k`, :math:`G^{(i)}_t` the
gradient unfolded along dimension :math:`i` (a :math:`d_i \times n/d_i` matrix), and L2 decay
:math:`\lambda`:

.. math::
    g_t &\leftarrow g_t + \lambda\theta_{t-1} \\
    H^{(i)}_t &= H^{(i)}_{t-1} + G^{(i)}_t G^{(i)\top}_t, \qquad H^{(i)}_0 = \epsilon I_{d_i} \\
    \tilde g_t &= g_t \times_1 (H^{(1)}_t)^{-1/2k} \times_2 \cdots \times_k (H^{(k)}_t)^{-1/2k} \\
    \theta_t &= \theta_{t-1} - \eta\,\tilde g_t

For a matrix this is :math:`\theta \leftarrow \theta - \eta\, L_t^{-1/4} G_t R_t^{-1/4}`. The inverse
roots are taken by SVD every ``preconditioning_compute_steps`` steps (default 1: every step,
the paper's algorithm).

Paper: Gupta, Koren & Singer, "Shampoo: Preconditioned Stochastic Tensor Optimization", ICML 2018
(Algorithm 2). Implementation: pytorch_optimizer.Shampoo, the paper's algorithm. The library's
ScalableShampoo (Anil et al. 2020: blocking, grafting, exponential moving statistics, delayed
roots) is a different method and is not this entry. The library's ``momentum`` (which mixes the
raw gradient with the previous *preconditioned* step, not the paper's form) is left at 0 and not
exposed. Seed 003 writes the statistics and the :math:`-1/4` root for matrices, as here; the
general exponent is :math:`-1/2k`.

Numerical caveat (measured, pytorch_optimizer 4.1.0): the roots are computed by SVD in float32
for float32 parameters. The first statistic of a tensor is :math:`\epsilon I + GG^\top`, often of
low rank, so its small singular values are :math:`\epsilon`; once :math:`\epsilon/\lVert G\rVert^2`
falls below float32's resolution (~1e-7: with the default ``matrix_eps`` = 1e-6, any unfolded
gradient with :math:`\lVert G\rVert^2 \gtrsim 10`) SVD returns noise for them -- a much too small
preconditioner in those directions, or a zero singular value, an infinite root and a NaN step.
The rosenbrock task (first gradient ~(-155, -50)) gives NaN at step 1 for every lr with
``matrix_eps`` = 1e-6, and the statistic keeps growing (it sums every :math:`GG^\top`, ~t·‖G‖²), so
ε must stay above float32's resolution of the *accumulated* statistic, not only of the first one.
Measured on rosenbrock at the cpu size (runs of 300 steps, lr 1e-4, 1e-3, 1e-2, 0.1, 1 × seeds
0-4: runs with non-finite parameters): ε = 1e-4 13 of 25, 1e-2 5, 1e-1 4, 1 1, 10 none; at 1000
steps (the task's length) and seeds 0-4, 100, 101 (the final and tuning seeds): ε = 10 and 100 none
of 35. The task's default for this entry is therefore ``matrix_eps`` = 10, which is 4e-4 of the first
statistic's scale: a regulariser of the first steps, negligible after. Neural-network gradients are
usually far smaller; on tasks with large raw gradients, tune ``matrix_eps`` (it is exposed) or run
in float64 (pytorch_optimizer takes the SVD in the parameter's dtype and has no option for another).

Default lr 1e-2 (the library's is 1e-3): Shampoo accumulates its statistics without decay, like
AdaGrad, whose usual default is 1e-2.

State per parameter with dimensions :math:`d_1..d_k` and :math:`n` elements, all in the
parameter's dtype: for each dimension the statistic ``pre_cond_i`` and its root
``inv_pre_cond_i`` (:math:`2 d_i^2`), plus ``momentum_buffer`` (:math:`n`): the library stores the
last preconditioned gradient there even with momentum 0. Total :math:`2\sum_i d_i^2 + n`
elements -- quadratic in the dimensions, so large embedding tables are costly.
"""
from optimizers import Moment, OptimizerSpec, above, at_least, itemsize, numel, register


def shampoo_state_bytes(shape, dtype):
    return (2 * sum(d * d for d in shape) + numel(shape)) * itemsize(dtype)


SVD_FLOPS = 21   # × d³: an SVD of a d×d matrix with U and V (Golub & Van Loan's R-SVD count)


def shampoo_step_flops(shape, hp):
    """Per step and dimension d of an n-element parameter: the statistic's G Gᵀ (2·d·n) and the
    preconditioning product (2·d·n); every ``preconditioning_compute_steps`` steps the root: an SVD
    of the d×d statistic and U·S^(-1/2k)·Vᵀ (2·d³): O(d³) a dimension, the step's dominant cost."""
    n, every = numel(shape), hp["preconditioning_compute_steps"]
    return {"matmul": sum(4 * d * n + 2 * d ** 3 / every for d in shape),
            "decomposition": sum(SVD_FLOPS * d ** 3 for d in shape) / every}


def build_shampoo(params, **hp):
    from pytorch_optimizer import Shampoo  # imported when used: pytorch_optimizer takes seconds to import
    return Shampoo(params, momentum=0.0, **hp)


MAX_PRECONDITIONER_DIM = 4096


def preconditionable(name, p) -> bool:
    """Shampoo keeps a d x d statistic per dimension and takes its root by SVD every step: a
    20000-row embedding costs 1.6 GB and minutes a step. Tensors with a dimension above
    MAX_PRECONDITIONER_DIM go to AdamW instead (what Distributed Shampoo's max_preconditioner_dim
    does by blocking; here by a fallback, so the entry stays the paper's algorithm)."""
    return max(p.shape, default=1) <= MAX_PRECONDITIONER_DIM


register(OptimizerSpec(
    name="shampoo", family="shampoo", paper="Gupta, Koren & Singer 2018",
    moments={"m": "Shampoo at momentum 0 keeps no gradient average (its momentum_buffer holds the last "
                  "preconditioned gradient)",
             "v": (Moment("pre_cond_0", "trace", "pre_cond_0 (sum of G Gᵀ: trace / numel)"),)},
    implementation="pytorch_optimizer.Shampoo", build=build_shampoo,
    defaults=dict(lr=1e-2, weight_decay=0.0, preconditioning_compute_steps=1, matrix_eps=1e-6),
    lr_range=(1e-4, 1.0),
    hparam_rules=dict(preconditioning_compute_steps=at_least(1), matrix_eps=above(0)),
    package="pytorch_optimizer",
    state_bytes=shampoo_state_bytes, step_flops=shampoo_step_flops,
    takes=preconditionable, fallback="adamw",
))
