r"""Reference implementations, written from the equations: Adam, AdamW and Adafactor (ours).

They exist to be read and to be checked: the tests hold each to its torch.optim counterpart to
a relative 1e-6 over 100 float64 steps. Each is a ``torch.optim.Optimizer`` with one loop over
parameters and no fused, foreach or capturable paths, and each validates every hyperparameter
when built by its entry's rules (``optimizers.check_hparams``), naming it, the bad value and the valid ones.

Adam and AdamW (Kingma & Ba, ICLR 2015; Loshchilov & Hutter, ICLR 2019):

.. math::
    g_t &\leftarrow g_t + \lambda\theta_{t-1} \quad\text{(Adam: L2 in the gradient)} \\
    \theta_{t-1} &\leftarrow \theta_{t-1}(1 - \eta\lambda) \quad\text{(AdamW: decoupled, scaled by lr)} \\
    m_t &= \beta_1 m_{t-1} + (1-\beta_1) g_t, \qquad v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2 \\
    \hat m_t &= m_t/(1-\beta_1^t), \qquad \hat v_t = v_t/(1-\beta_2^t) \\
    \theta_t &= \theta_{t-1} - \eta\,\hat m_t / (\sqrt{\hat v_t} + \epsilon)

:math:`\epsilon` is outside the root and both moments are bias-corrected. Seed 004 puts
:math:`\epsilon` inside the root, seed 003 writes AdamW without bias correction and with
:math:`\lambda\theta` inside the parenthesis multiplied by :math:`\eta` -- the last is the same as
:math:`\eta\lambda\theta` here; the first two are variants, not the papers' algorithms. Seed 003's
toy run (lr 0.1, :math:`x^4 + 3x^3 + 2` from :math:`x = 3`) prints :math:`x = 2.7272` after one step;
Adam's first step is :math:`\eta\,\mathrm{sign}(g)` up to :math:`\epsilon`, so :math:`x_1 = 2.9`.

Adafactor (Shazeer & Stern, ICML 2018) in the form torch.optim.Adafactor implements (so that
the two can be compared): for a tensor of two or more dimensions the second moment of the last
two is factored, rows :math:`R` and columns :math:`C`; vectors keep a full :math:`V`:

.. math::
    \hat\beta_{2,t} &= 1 - t^{c}, \qquad \rho_t = \min(\gamma, 1/\sqrt t), \qquad
    \alpha_t = \max(\epsilon_2, \mathrm{RMS}(\theta_{t-1}))\,\rho_t \\
    \theta &\leftarrow \theta_{t-1}(1 - \gamma\lambda) \\
    R_t &= \hat\beta_{2,t} R_{t-1} + (1-\hat\beta_{2,t})\,\mathrm{mean}_{\text{last dim}}(g_t^2), \quad
    C_t = \hat\beta_{2,t} C_{t-1} + (1-\hat\beta_{2,t})\,\mathrm{mean}_{\text{second-last dim}}(g_t^2) \\
    \hat V_t &= R_t C_t / \max(\mathrm{mean}(R_t), \epsilon_1)
       \quad\text{or}\quad \hat V_t = \hat\beta_{2,t} \hat V_{t-1} + (1-\hat\beta_{2,t}) g_t^2 \\
    U_t &= g_t / \sqrt{\max(\hat V_t, \epsilon_1^2)}, \qquad
    \theta_t = \theta - \alpha_t\,U_t / \max(1, \mathrm{RMS}(U_t)/d)

with :math:`\epsilon_1` (default: the dtype's machine epsilon) guarding the estimate rather than
added to :math:`g^2` as in the paper, lr :math:`\gamma` capping the relative step (the paper's 0.01),
means instead of sums (the ratio is the same), decay decoupled and scaled by :math:`\gamma`, and no
first moment. See ``optimizers/adafactor.py`` for the paper's form (transformers).

State: Adam/AdamW -- ``exp_avg``, ``exp_avg_sq`` and a 0-d ``step`` tensor (the default float
dtype, as torch keeps it); Adafactor -- ``step`` plus ``row_var`` and ``col_var`` (:math:`n/b + n/a`
elements for last dimensions :math:`(a, b)`) or ``variance`` (:math:`n`).
"""
from __future__ import annotations

import math

import torch

from optimizers import OptimizerSpec, check_hparams, register
from optimizers.adafactor import TORCH_ADAFACTOR, TORCH_ADAFACTOR_DEFAULTS, TORCH_ADAFACTOR_RULES
from optimizers.adam import ADAM_DEFAULTS, adam_spec, adam_state_bytes


class _Reference(torch.optim.Optimizer):
    """What the references share: every hyperparameter checked by the registry's rules when the
    optimizer is built (as its entry's), and one loop over the parameters with a dense gradient,
    each updated by `_update`."""

    def __init__(self, params, entry: str, hp: dict, defaults: dict, rules: dict | None = None):
        super().__init__(params, check_hparams(entry, hp, defaults, rules))

    def _update(self, group: dict, p: torch.Tensor, g: torch.Tensor, state: dict) -> None:
        raise NotImplementedError

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError(f"{type(self).__name__} (reference) does not support sparse gradients")
                self._update(group, p, p.grad, self.state[p])
        return loss


class Adam(_Reference):
    r"""Adam; with ``decoupled=True``, AdamW. See the module docstring for the update."""

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, decoupled: bool = False):
        super().__init__(params, "adamw-ref" if decoupled is True else "adam-ref",
                         dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, decoupled=decoupled),
                         dict(ADAM_DEFAULTS, decoupled=False))

    def _update(self, group, p, g, state):
        lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
        decay, decoupled = group["weight_decay"], group["decoupled"]
        if not state:
            state["step"] = torch.tensor(0.0)
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        state["step"] += 1
        t = state["step"].item()
        m, v = state["exp_avg"], state["exp_avg_sq"]

        if decay != 0:
            if decoupled:
                p.mul_(1 - lr * decay)              # AdamW: theta <- theta (1 - lr lambda)
            else:
                g = g.add(p, alpha=decay)           # Adam: g <- g + lambda theta
        m.mul_(beta1).add_(g, alpha=1 - beta1)      # m_t = b1 m + (1 - b1) g
        v.mul_(beta2).addcmul_(g, g, value=1 - beta2)  # v_t = b2 v + (1 - b2) g^2
        m_hat = m / (1 - beta1 ** t)
        v_hat = v / (1 - beta2 ** t)
        p.addcdiv_(m_hat, v_hat.sqrt().add_(eps), value=-lr)  # eps outside the root


class AdamW(Adam):
    """AdamW: Adam with decoupled weight decay (default 0.01, as torch.optim.AdamW)."""

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, decoupled=True)


def _rms(x: torch.Tensor) -> float:
    return x.norm(2).item() / math.sqrt(x.numel())


class Adafactor(_Reference):
    r"""Adafactor in torch.optim.Adafactor's form. See the module docstring for the update."""

    def __init__(self, params, lr: float = 1e-2, beta2_decay: float = -0.8, eps1: float | None = None,
                 eps2: float = 1e-3, d: float = 1.0, weight_decay: float = 0.0):
        super().__init__(params, "adafactor-ref",
                         dict(lr=lr, beta2_decay=beta2_decay, eps1=eps1, eps2=eps2, d=d, weight_decay=weight_decay),
                         TORCH_ADAFACTOR_DEFAULTS, TORCH_ADAFACTOR_RULES)

    def _update(self, group, p, g, state):
        lr, c, d, decay = group["lr"], group["beta2_decay"], group["d"], group["weight_decay"]
        eps1 = group["eps1"] if group["eps1"] is not None else torch.finfo(p.dtype).eps
        factored = g.dim() > 1
        if not state:
            state["step"] = torch.tensor(0.0)
            if factored:
                state["row_var"] = g.new_zeros(g.shape[:-1] + (1,))           # R: [..., a, 1]
                state["col_var"] = g.new_zeros(g.shape[:-2] + (1, g.shape[-1]))  # C: [..., 1, b]
            else:
                state["variance"] = torch.zeros_like(g, memory_format=torch.preserve_format)
        state["step"] += 1
        t = state["step"].item()

        one_minus_beta2 = t ** c                          # 1 - beta2_t
        rho = min(lr, 1 / math.sqrt(t))                   # relative step, capped by lr
        alpha = max(group["eps2"], _rms(p)) * rho         # scaled by RMS(theta_{t-1})
        if decay != 0:
            p.mul_(1 - lr * decay)

        g2 = g * g
        if factored:
            R, C = state["row_var"], state["col_var"]
            R.lerp_(g2.mean(dim=-1, keepdim=True), one_minus_beta2)
            C.lerp_(g2.mean(dim=-2, keepdim=True), one_minus_beta2)
            v_hat = (R @ C) / R.mean(dim=-2, keepdim=True).clamp(min=eps1)
        else:
            V = state["variance"]
            V.lerp_(g2, one_minus_beta2)
            v_hat = V.clone()
        u = g / v_hat.clamp(min=eps1 * eps1).sqrt()
        p.add_(u, alpha=-alpha / max(1.0, _rms(u) / d))  # update clipping at RMS d


REFERENCE = dict(package="optbench", state_bytes=adam_state_bytes)

register(adam_spec("adam-ref", "Kingma & Ba 2015", "ours (optimizers.reference.Adam)", Adam, **REFERENCE))
register(adam_spec("adamw-ref", "Loshchilov & Hutter 2019", "ours (optimizers.reference.AdamW)", AdamW,
                   decoupled=True, **REFERENCE))

register(OptimizerSpec(name="adafactor-ref", implementation="ours (optimizers.reference.Adafactor)", build=Adafactor,
                       defaults=dict(TORCH_ADAFACTOR_DEFAULTS), package="optbench", **TORCH_ADAFACTOR))
