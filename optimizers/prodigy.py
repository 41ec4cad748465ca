r"""Prodigy (prodigyopt.Prodigy, the authors' package): Adam whose step size :math:`d` estimates the
distance to the solution online -- learning-rate-free.

With :math:`\gamma` = ``lr`` (a multiplier, 1 by default), :math:`\beta_3 = \sqrt{\beta_2}` unless
given, :math:`x_0` the parameters at the first step and :math:`d_0` = 1e-6:

.. math::
    m_{k+1} &= \beta_1 m_k + (1-\beta_1)\, d_k g_k, \qquad
    v_{k+1} = \beta_2 v_k + (1-\beta_2)\, d_k^2 g_k^2 \\
    r_{k+1} &= \beta_3 r_k + (1-\beta_3)\,\gamma d_k^2 \langle g_k, x_0 - x_k\rangle, \qquad
    s_{k+1} = \beta_3 s_k + (1-\beta_3)\,\gamma d_k^2 g_k \\
    d_{k+1} &= \max\big(d_k,\ c\, r_{k+1} / \lVert s_{k+1}\rVert_1\big) \qquad (c = \texttt{d\_coef}) \\
    x_{k+1} &= x_k(1 - \gamma d_k\lambda) - \gamma d_k\, m_{k+1} / (\sqrt{v_{k+1}} + d_{k+1}\epsilon)

(:math:`\langle\cdot,\cdot\rangle` and :math:`\lVert\cdot\rVert_1` are over all parameters together;
decoupled decay :math:`\lambda`, the default form.)

Paper: Mishchenko & Defazio, "Prodigy: An Expeditiously Adaptive Parameter-Free Learner", ICML 2024
(Algorithm for the Adam version). Implementation: prodigyopt.Prodigy (konstmish/prodigy). What the
library does differently from the equations as printed, none of which changes the estimate: it
accumulates :math:`r` and :math:`s` without the :math:`(1-\beta_3)` factor and with an extra
:math:`1/d_0` (both cancel in :math:`r/\lVert s\rVert_1`); and it adds :math:`\epsilon` times the
*new* :math:`d_{k+1}` in the denominator where the paper has :math:`d_k` (an :math:`\epsilon`-sized
difference). ``growth_rate`` is left at the library's :math:`\infty` (not exposed), ``slice_p`` at 1
(the exact method), bias correction off (the library's default).

Self-tuning. Prodigy is meant to run at lr 1.0 (the authors: "leave LR set to 1"; tune
``d_coef`` if anything), so the entry is declared ``self_tuning``: the tuning protocol runs it at
its default lr 1.0 only. ``lr_range`` (0.1, 10) exists because the registry requires one (a sweep
over it would measure sensitivity to a multiplier the method is designed not to need).

How it was checked: ``tests/test_update_rules.py`` computes four steps on a 4-parameter quadratic
by hand in float64 from the equations above (with the factors the library drops, decoupled decay
on) and compares the parameters with this entry's optimizer to 1e-12 relative and :math:`d` to 1e-9
(its numerator holds :math:`x_0 - x_k`, a cancelling difference); and checks that this entry
follows the unmodified library bit for bit, also for a parameter that is zero at its first step.

One change, for the memory measurement only: the library keeps :math:`x_0` as a 0-d tensor for a
parameter that is all zero at its first step (a zero-initialised bias) and as a full copy
otherwise, so its state depends on the parameter's *values*, which the registry's
``state_bytes(shape, dtype)`` cannot see. This entry's subclass initialises the state exactly as
the library does but always keeps the full copy; the update is bit-identical
(:math:`x_0 - x` with a zero vector or a broadcast zero is the same), and the cost is
(numel - 1) elements for each zero-initialised parameter.

Defaults (the library's): lr 1.0, betas (0.9, 0.999), beta3 None (:math:`\sqrt{\beta_2}`), eps 1e-8,
weight_decay 0, decouple True, use_bias_correction False, safeguard_warmup False, d0 1e-6, d_coef 1.

State per parameter: ``s``, ``p0`` (:math:`x_0`), ``exp_avg``, ``exp_avg_sq`` (the parameter's dtype
and shape) and a Python-int ``step``; :math:`d`, :math:`r` live in the param group. ``exp_avg`` is
not kept when betas[0] = 0 (then 3 tensors, not 4): ``state_bytes`` assumes the default betas[0] > 0.
"""
import torch

from optimizers import OptimizerSpec, Rule, above, itemsize, numel, register


def prodigy_state_bytes(shape, dtype):
    return 4 * numel(shape) * itemsize(dtype)


def _prodigy_class():
    from prodigyopt import Prodigy

    class ProdigyFullP0(Prodigy):
        """prodigyopt.Prodigy whose ``p0`` is always a full copy (see the module docstring)."""

        @torch.no_grad()
        def step(self, closure=None):
            for group in self.param_groups:
                beta1 = group["betas"][0]
                for p in group["params"]:
                    state = self.state[p]
                    if p.grad is None or "step" in state:
                        continue
                    # The library's initialisation (prodigyopt 1.1.2, slice_p = 1), p0 always full.
                    state["step"] = 0
                    state["s"] = torch.zeros_like(p.data.flatten()).detach()
                    state["p0"] = p.flatten().detach().clone()
                    if beta1 > 0:
                        state["exp_avg"] = torch.zeros_like(p.data).detach()
                    state["exp_avg_sq"] = torch.zeros_like(p.data).detach()
            return super().step(closure)

    return ProdigyFullP0


def build_prodigy(params, **hp):
    return _prodigy_class()(params, **hp)


register(OptimizerSpec(
    name="prodigy", family="learning-rate-free", paper="Mishchenko & Defazio 2024",
    implementation="prodigyopt.Prodigy (p0 always a full copy)", build=build_prodigy,
    defaults=dict(lr=1.0, betas=(0.9, 0.999), beta3=None, eps=1e-8, weight_decay=0.0, decouple=True,
                  use_bias_correction=False, safeguard_warmup=False, d0=1e-6, d_coef=1.0),
    lr_range=(0.1, 10.0),
    hparam_rules=dict(beta3=Rule("in [0, 1)", lambda v: 0 <= v < 1, kind="real", none=True),
                      d0=above(0), d_coef=above(0)),
    package="prodigyopt",
    self_tuning=True,
    state_bytes=prodigy_state_bytes,
))
