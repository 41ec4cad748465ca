r"""D-Adapt Adam (dadaptation.DAdaptAdam, the authors' package): Adam whose step size :math:`d`
is a running lower bound on the distance to the solution -- learning-rate-free.

With :math:`\gamma` = ``lr`` (a multiplier, 1 by default), :math:`\lambda_k = \gamma d_k`,
:math:`d_0` = 1e-6 and all sums over every parameter together:

.. math::
    r_{k+1} &= \sqrt{\beta_2}\, r_k + (1-\sqrt{\beta_2})\,\lambda_k
        \big\langle g_k,\ s_k / (\sqrt{v_k} + \epsilon)\big\rangle \\
    m_{k+1} &= \beta_1 m_k + (1-\beta_1)\,\lambda_k g_k, \qquad
    v_{k+1} = \beta_2 v_k + (1-\beta_2)\, g_k^2 \\
    s_{k+1} &= \sqrt{\beta_2}\, s_k + (1-\sqrt{\beta_2})\,\lambda_k g_k \\
    d_{k+1} &= \max\Big(d_k,\ \frac{r_{k+1}}{(1-\sqrt{\beta_2})\,\lVert s_{k+1}\rVert_1}\Big) \\
    x_{k+1} &= x_k - m_{k+1} / (\sqrt{v_{k+1}} + \epsilon)

(the weighted inner product uses :math:`v_k` and :math:`s_k` from *before* this step's update;
``weight_decay`` is L2, :math:`g_k \leftarrow g_k + \lambda_{wd} x_k`, unless ``decouple``, then
:math:`x \leftarrow x(1 - \lambda_k\lambda_{wd})` before the step.)

Paper: Defazio & Mishchenko, "Learning-Rate-Free Learning by D-Adaptation", ICML 2023 (the Adam
variant). Implementation: dadaptation.DAdaptAdam, version 3 of the authors' package. The equations
above are what version 3 computes (its README: "Major improvements to DAdaptAdam ... may behave
differently"; the version of the first preprint, which estimated :math:`d` from
:math:`\lVert s\rVert^2` and accumulated squared gradients, is kept as
dadaptation.experimental.DAdaptAdamPreprint). Growth is unbounded (``growth_rate`` = inf, not
exposed), bias correction is off and ``layer_scale`` 1 (the library's defaults).

Self-tuning. D-Adapt Adam is meant to run at lr 1.0 (the authors: "Set the LR parameter to 1.0"),
so the entry is declared ``self_tuning``: the tuning protocol runs it at its default lr 1.0 only.
``lr_range`` (0.1, 10) exists because the registry requires one.

How it was checked: ``tests/test_update_rules.py`` computes four steps on a 4- and a 2-parameter
quadratic (L2 decay on) by hand in float64 from the equations above and compares the parameters
and :math:`d` with this entry's optimizer to 1e-12 relative.

Defaults (the library's): lr 1.0, betas (0.9, 0.999), eps 1e-8, weight_decay 0, decouple False
(L2; the authors advise decouple=True where one would use AdamW), use_bias_correction False, d0
1e-6. With decouple=True the library prints "Using decoupled weight decay" at construction.

State per parameter: ``s``, ``exp_avg``, ``exp_avg_sq`` (the parameter's dtype and shape) and a
Python-int ``step``; :math:`d`, :math:`r` live in the param group.
"""
from optimizers import OptimizerSpec, above, itemsize, numel, register


def dadapt_adam_state_bytes(shape, dtype):
    return 3 * numel(shape) * itemsize(dtype)


def build_dadapt_adam(params, **hp):
    from dadaptation import DAdaptAdam
    return DAdaptAdam(params, **hp)


register(OptimizerSpec(
    name="dadapt-adam", family="learning-rate-free", paper="Defazio & Mishchenko 2023",
    implementation="dadaptation.DAdaptAdam", build=build_dadapt_adam,
    defaults=dict(lr=1.0, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, decouple=False,
                  use_bias_correction=False, d0=1e-6),
    lr_range=(0.1, 10.0),
    hparam_rules=dict(d0=above(0)),
    package="dadaptation",
    self_tuning=True,
    state_bytes=dadapt_adam_state_bytes,
))
