r"""AdEMAMix (pytorch_optimizer.AdEMAMix): Adam plus a second, slow gradient EMA that keeps old
gradients relevant for tens of thousands of steps.

.. math::
    m_1 &\leftarrow \beta_1 m_1 + (1-\beta_1) g_t, \qquad
    m_2 \leftarrow \beta_3(t)\, m_2 + (1-\beta_3(t))\, g_t, \qquad
    v \leftarrow \beta_2 v + (1-\beta_2) g_t^2 \\
    \hat m_1 &= m_1/(1-\beta_1^t), \qquad \hat v = v/(1-\beta_2^t) \\
    \theta_t &= \theta_{t-1}(1 - \eta\lambda) - \eta\,\frac{\hat m_1 + \alpha(t)\, m_2}{\sqrt{\hat v} + \epsilon}

with the paper's warm-up schedulers over :math:`T` = ``t_alpha_beta3`` steps,
:math:`\alpha(t) = \min(t\alpha/T, \alpha)` and
:math:`\beta_3(t) = \min\big(\exp\big(\frac{\ln\beta_1 \ln\beta_3}{(1-t/T)\ln\beta_3 + (t/T)\ln\beta_1}\big), \beta_3\big)`
(linear in the EMA's half-life), or :math:`\alpha(t) = \alpha`, :math:`\beta_3(t) = \beta_3` when
``t_alpha_beta3`` is None. :math:`m_2` has no bias correction (as in the paper).

Paper: Pagliardini, Ablin & Grangier, "The AdEMAMix Optimizer: Better, Faster, Older", 2024
(Algorithm 1). Implementation: pytorch_optimizer.AdEMAMix with ``weight_decouple=True``, which makes
the decay the paper's decoupled, lr-scaled :math:`\eta\lambda\theta` (the library's default is L2
added to the gradient). The paper warms :math:`\alpha` and :math:`\beta_3` up over the whole run
(:math:`T_\alpha = T_{\beta_3}` = the number of training steps) to avoid early instability with a
large :math:`\beta_3`; the registry does not know a run's length, so ``t_alpha_beta3`` defaults to
None (no warm-up, the library's default) and is exposed -- a task or the harness that knows the
step budget should set it (the registry/harness has no field for "the run's step count" yet).

How it was checked: ``tests/test_update_rules.py`` computes three steps on a 5-parameter problem by
hand in float64 from the equations above (with the warm-up schedulers at T = 4 and decay on) and
compares with this entry's optimizer to 1e-12 relative.

Defaults (the library's): lr 1e-3, betas (0.9, 0.999, 0.9999) (:math:`\beta_1, \beta_2, \beta_3`),
alpha 5, t_alpha_beta3 None, eps 1e-8, weight_decay 0.

State per parameter: ``exp_avg``, ``exp_avg_sq``, ``exp_avg_slow`` (the parameter's dtype and
shape): three moments, 1.5x Adam's. The step counter lives in the param group.
"""
from optimizers import OptimizerSpec, above, at_least, itemsize, numel, register


def ademamix_state_bytes(shape, dtype):
    return 3 * numel(shape) * itemsize(dtype)


def build_ademamix(params, **hp):
    from pytorch_optimizer import AdEMAMix  # imported when used: pytorch_optimizer takes seconds to import
    return AdEMAMix(params, weight_decouple=True, **hp)


register(OptimizerSpec(
    name="ademamix", family="adam", paper="Pagliardini et al. 2024",
    implementation="pytorch_optimizer.AdEMAMix(weight_decouple=True)", build=build_ademamix,
    defaults=dict(lr=1e-3, betas=(0.9, 0.999, 0.9999), alpha=5.0, t_alpha_beta3=None, eps=1e-8,
                  weight_decay=0.0),
    lr_range=(1e-5, 1.0),
    tunes_beta2=True,   # betas[1] is Adam's second-moment EMA (betas[2] the slow momentum's, kept)
    hparam_rules=dict(alpha=at_least(0), t_alpha_beta3=above(0, kind="real", none=True)),
    package="pytorch_optimizer",
    state_bytes=ademamix_state_bytes,
))
