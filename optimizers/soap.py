r"""SOAP (pytorch_optimizer.SOAP): Adam run in the eigenbasis of Shampoo's preconditioner.

For a matrix parameter with gradient :math:`G_t` (higher-order tensors: one factor per dimension,
the same way), :math:`\beta_s` = ``shampoo_beta`` (:math:`\beta_2` when None):

.. math::
    L_t &= \beta_s L_{t-1} + (1-\beta_s)\, G_t G_t^\top, \qquad
    R_t = \beta_s R_{t-1} + (1-\beta_s)\, G_t^\top G_t \\
    G'_t &= Q_L^\top G_t Q_R, \qquad M_t = \beta_1 M_{t-1} + (1-\beta_1) G_t, \qquad
    V_t = \beta_2 V_{t-1} + (1-\beta_2)\, G'^{\,2}_t \\
    W_t &= W_{t-1} - \eta\,\frac{\sqrt{1-\beta_2^t}}{1-\beta_1^t}\;
        Q_L\Big(\frac{Q_L^\top M_t Q_R}{\sqrt{V_t} + \epsilon}\Big)Q_R^\top, \qquad
    W_t \leftarrow W_t(1 - \eta\lambda)

:math:`Q_L, Q_R` are eigenvector bases of :math:`L, R` (eigenvalues descending): from an
eigendecomposition at the first step, then refreshed every ``precondition_frequency`` steps by one
step of power iteration and a QR decomposition, :math:`Q \leftarrow \mathrm{qr}(L\,Q)`, with the
columns sorted by the estimated eigenvalues :math:`\mathrm{diag}(Q^\top L Q)` and :math:`V`
permuted with them. The statistics are updated *after* the step, so a gradient never enters its own
projection, and the first call only initialises the statistics (the parameters move from the
second ``step()`` on, where :math:`t` = 1). A dimension larger than ``max_precondition_dim`` (10000)
gets no factor (identity), and 1-D parameters are not preconditioned at all (``precondition_1d``
False): for them SOAP is AdamW.

Paper: Vyas, Morwani, Zhao, Shapira, Brandfonbrener, Janson & Kakade, "SOAP: Improving and
Stabilizing Shampoo using Adam", 2024. Implementation: pytorch_optimizer.SOAP, a port of the
authors' nikhilvyas/SOAP code. Why this one and not HeavyBall's: its update is the authors' line by
line and its state is a plain list of tensors whose bytes can be counted exactly. HeavyBall's SOAP
is compile-first, keeps its state in float32 whatever the parameter's dtype, merges dimensions and
uses other defaults (betas (0.9, 0.95), preconditioning every 2 steps, max dimension 2048), and its
SOAP has had reported departures from the authors' update: the first moment accumulated in the
eigenbasis and not re-projected or re-ordered when the basis changes, and beta2 ignored when
``beta2_scale`` is set (HomebrewML/HeavyBall issues 40 and 42; the brief's "issue 4" I could not
find under that number). Differences of this library from the authors' code: the authors keep the
statistics :math:`L, R` in float32 and decompose them in float32; the library keeps them in the
parameter's dtype (so bfloat16 statistics for a bfloat16 model, and float64 for float64) and
decomposes in that dtype (bfloat16 falls back to float64); both compute the QR refresh in float32.
The authors' current code (December 2024) stores :math:`M` in the eigenbasis and rotates it when the
basis changes, which is the same update as keeping it in the original basis, as here (rounding
apart).

How it was checked: ``tests/test_update_rules.py`` computes four ``step()`` calls on a 2x3 matrix by
hand in float64 from the equations above (numpy's eigendecomposition, the refresh after the third
call) and compares with this entry's optimizer: to 1e-12 relative before the refresh, and to 1e-5
after it, because the library computes the refresh's QR in float32 by design.

Defaults (the authors'): lr 3e-3, betas (0.95, 0.95), shampoo_beta None (= betas[1]), weight_decay
0.01 (decoupled), precondition_frequency 10, eps 1e-8; max_precondition_dim 10000, merge_dims
False, precondition_1d False (fixed: they change the state's size).

State per parameter with dimensions :math:`d_1..d_k` and :math:`n` elements, in the parameter's
dtype: ``exp_avg`` and ``exp_avg_sq`` (:math:`2n`) and, for a parameter of two or more dimensions,
for each dimension :math:`d_i \le 10000` the statistic ``GG[i]`` and its basis ``Q[i]``
(:math:`2 d_i^2`). A 1-D parameter keeps :math:`2n`. The step counter lives in the param group.
"""
from optimizers import OptimizerSpec, Rule, at_least, itemsize, numel, register

MAX_PRECONDITION_DIM = 10000   # the library's and the authors' default; fixed (changes the state)


def soap_state_bytes(shape, dtype):
    factors = 0 if len(shape) < 2 else sum(2 * d * d for d in shape if d <= MAX_PRECONDITION_DIM)
    return (2 * numel(shape) + factors) * itemsize(dtype)


QR_FLOPS = 8 / 3   # × d³: Householder QR of a d×d matrix (4/3·d³) and forming its Q (4/3·d³)


def soap_step_flops(shape, hp):
    """Per step and preconditioned dimension d of an n-element parameter (2+ dimensions): the
    statistic's update and three projections (the gradient and M into the basis, the step back),
    2·d·n each; every ``precondition_frequency`` steps the refresh: L·Q (2·d³) and a QR of it. The
    first step's eigendecomposition, once a run, is left out. A 1-D parameter is AdamW: elementwise."""
    if len(shape) < 2:
        return {}
    n, every = numel(shape), hp["precondition_frequency"]
    dims = [d for d in shape if d <= MAX_PRECONDITION_DIM]
    return {"matmul": sum(8 * d * n + 2 * d ** 3 / every for d in dims),
            "decomposition": sum(QR_FLOPS * d ** 3 for d in dims) / every}


def build_soap(params, **hp):
    from pytorch_optimizer import SOAP  # imported when used: pytorch_optimizer takes seconds to import
    return SOAP(params, max_precondition_dim=MAX_PRECONDITION_DIM, merge_dims=False,
                precondition_1d=False, **hp)


register(OptimizerSpec(
    name="soap", family="shampoo", paper="Vyas et al. 2024",
    implementation="pytorch_optimizer.SOAP", build=build_soap,
    defaults=dict(lr=3e-3, betas=(0.95, 0.95), shampoo_beta=None, weight_decay=0.01,
                  precondition_frequency=10, eps=1e-8),
    lr_range=(1e-5, 1.0),
    search=dict(weight_decay=(1e-3, 1.0)),   # decoupled decay: tuned with lr (protocol)
    # Adam's second moment in the rotated basis (betas[1]; with shampoo_beta None also the
    # preconditioner's EMA): tuned on the LM as the Adam family's is
    tunes_beta2=True,
    hparam_rules=dict(shampoo_beta=Rule("in [0, 1)", lambda v: 0 <= v < 1, kind="real", none=True),
                      precondition_frequency=at_least(1)),
    package="pytorch_optimizer",
    state_bytes=soap_state_bytes, step_flops=soap_step_flops,
))
