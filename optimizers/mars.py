r"""MARS-AdamW (pytorch_optimizer.MARS): AdamW on a variance-reduced gradient -- the gradient
plus a scaled difference of consecutive gradients, clipped to norm 1.

For each parameter of two or more dimensions, with :math:`g_{t-1}` the previous step's gradient
(0 at the first step):

.. math::
    c_t &= g_t + \gamma\,\frac{\beta_1}{1-\beta_1}\,(g_t - g_{t-1}), \qquad
    \tilde c_t = c_t / \max(1, \lVert c_t\rVert_2) \\
    m_t &= \beta_1 m_{t-1} + (1-\beta_1)\tilde c_t, \qquad v_t = \beta_2 v_{t-1} + (1-\beta_2)\tilde c_t^2 \\
    \theta_t &= \theta_{t-1}(1 - \eta\lambda) - \eta\,\frac{m_t/(1-\beta_1^t)}{(\sqrt{v_t} + \epsilon)/\sqrt{1-\beta_2^t}}

(the norm is per tensor). Parameters of one dimension (biases, norms) get plain AdamW with betas
(0.9, 0.95) at the same lr, decayed by their group's weight_decay (0 by default: optimizers.routing).

Paper: Yuan, Liu, Wu, Huang & Gu, "MARS: Unleashing the Power of Variance Reduction for Training
Large Models", 2024: MARS-AdamW in its approximate form (``is_approx``: :math:`g_{t-1}` is the
previous step's gradient on the previous batch, no second gradient evaluation), the form of the
authors' experiments. Implementation: pytorch_optimizer.MARS (``mars_type='adamw'``), a port of
the authors' AGI-Arena/MARS code. Differences from the authors' code, as of this writing:

- :math:`\epsilon` is added before dividing by :math:`\sqrt{1-\beta_2^t}` (above), where the
  authors' code (and the paper) add it to :math:`\sqrt{\hat v_t}`; an :math:`\epsilon`-sized
  difference, largest in the first steps. The library also adds 1e-15 inside the square root.
- every tensor of two or more dimensions (conv filters, embeddings) gets the MARS update; the
  authors' code applies it to exactly 2-D tensors and sends 4-D conv filters to the AdamW branch.
- the 1-D AdamW branch's lr follows the entry's lr: this entry passes ``lr_1d = lr`` (the authors'
  defaults have both at 3e-3, and the library keeps the ratio under a schedule), so tuning the lr
  moves both branches, where the library's separate ``lr_1d`` would hold the 1-D lr at 3e-3.

How it was checked: ``tests/test_update_rules.py`` computes three steps for a 3x4 matrix and a
4-vector by hand in float64 from the equations above and compares with this entry's optimizer to
1e-12 relative, and bounds the paper's :math:`\epsilon` placement against it.

Defaults (the authors' and the library's): lr 3e-3, betas (0.95, 0.99), gamma 0.025, eps 1e-8,
weight_decay 0 (the library's 1-D branch has its own 0.1; this entry passes the group's instead).

State per parameter: ``exp_avg``, ``exp_avg_sq`` and ``last_grad`` (the parameter's dtype and
shape), for the 1-D parameters too (the library allocates ``last_grad`` for every parameter). The
step counter lives in the param group.
"""
from optimizers import OptimizerSpec, at_least, itemsize, numel, register


def mars_state_bytes(shape, dtype):
    return 3 * numel(shape) * itemsize(dtype)


def build_mars(params, **hp):
    from pytorch_optimizer import MARS  # imported when used: pytorch_optimizer takes seconds to import
    params = list(params)
    groups = params if params and isinstance(params[0], dict) else [{"params": params}]
    # the library decays its 1-D AdamW branch by its own weight_decay_1d (0.1); each group's
    # weight_decay instead, so optimizers.routing's groups (1-D tensors exempt by default) hold
    groups = [{**g, "weight_decay_1d": g.get("weight_decay", hp["weight_decay"])} for g in groups]
    return MARS(groups, mars_type="adamw", optimize_1d=False, lr_1d=hp["lr"], **hp)


register(OptimizerSpec(
    name="mars", family="adam", paper="Yuan et al. 2024",
    implementation="pytorch_optimizer.MARS(mars_type='adamw', lr_1d=lr)", build=build_mars,
    defaults=dict(lr=3e-3, betas=(0.95, 0.99), gamma=0.025, eps=1e-8, weight_decay=0.0),
    lr_range=(1e-5, 1.0),
    hparam_rules=dict(gamma=at_least(0)),
    tunes_beta2=True,   # v's EMA is Adam's, of the corrected gradient (the 1-D branch keeps its (0.9, 0.95))
    package="pytorch_optimizer",
    state_bytes=mars_state_bytes,
))
