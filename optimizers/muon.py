r"""Muon and MuonClip (torch.optim.Muon): orthogonalised momentum for 2-D hidden weight matrices.

Muon, for a weight matrix :math:`W \in \mathbb{R}^{A\times B}` with momentum :math:`\mu`:

.. math::
    B_t &= \mu B_{t-1} + (1-\mu) G_t, \qquad
    \tilde B_t = (1-\mu) G_t + \mu B_t \ \ \text{(Nesterov)} \\
    O_t &= \mathrm{NS}_5(\tilde B_t) \approx U V^\top \quad (\tilde B_t = U\Sigma V^\top) \\
    W_t &= W_{t-1}(1 - \eta\lambda) - \eta\, s(A, B)\, O_t

:math:`\mathrm{NS}_5` is five steps of the quintic Newton-Schulz iteration :math:`X \leftarrow aX
+ (bXX^\top + c(XX^\top)^2)X`, :math:`(a,b,c) = (3.4445, -4.7750, 2.0315)`, run in bfloat16 from
:math:`X_0 = \tilde B/\lVert\tilde B\rVert_F`: it maps every singular value of the momentum to
roughly 1 (into about [0.5, 1.5], by design of the coefficients), so each step is an approximately
orthogonal matrix. The scale :math:`s` is ``adjust_lr_fn``: ``"match_rms_adamw"`` (default here,
Moonshot's :math:`0.2\sqrt{\max(A,B)}`, which gives the update AdamW's RMS so that one lr and
weight decay serve both Muon and the AdamW fallback) or ``"original"`` (Keller Jordan's
:math:`\sqrt{\max(1, A/B)}`).

Paper: K. Jordan et al., "Muon: An optimizer for hidden layers in neural networks" (blog, 2024);
J. Liu et al., "Muon is Scalable for LLM Training" (Moonshot, 2025) for the decay and the RMS
matching. Implementation: torch.optim.Muon.

Parameter policy: Muon is defined for 2-D hidden matrices. The entry takes parameters that are
2-D or more and are not an embedding or an output head, decided by name: a name containing
``embed``, ``wte`` or ``wpe``, or with a dotted component ``head``/``lm_head``/``..._head``/``head...``
(``head.weight``, ``lm_head.weight``, ``heads.0.weight``) is refused -- so ``multihead_attn``'s
projections stay with Muon. Everything refused (embeddings, the head, biases, norms, scalars) goes
to the registry's ``adamw`` with the entry's lr and weight decay. Convolution filters
(out x in x kh x kw) are Muon's, flattened to the out x (in kh kw) matrix, as in Jordan's CIFAR-10
speedrun (``g.view(len(g), -1)`` before Newton-Schulz): torch.optim.Muon refuses tensors that are
not 2-D, so `Muon` below hands it 2-D views of them (for a 2-D tensor the view is the tensor: its
numbers are torch.optim.Muon's, bit for bit). The lr adjustment sees the flattened shape. A task
whose model has no such tensor does not run this entry (every tensor would be AdamW's: the pair
would be AdamW under another name); tests/test_routing_policy.py checks every profile for it.

MuonClip (Kimi K2 technical report, Moonshot AI, 2025) is Muon plus QK-clip: after each
optimizer step, for each attention layer and head :math:`h` whose largest pre-softmax logit
:math:`S^h_{\max}` exceeds :math:`\tau`, the head's query and key projections are rescaled

.. math::
    W_q^h \leftarrow W_q^h\sqrt{\gamma_h}, \qquad W_k^h \leftarrow W_k^h\sqrt{\gamma_h}, \qquad
    \gamma_h = \tau / S^h_{\max},

so that every logit :math:`q\cdot k` of that head is multiplied by :math:`\gamma_h` and the largest
returns to :math:`\tau`; heads at or below :math:`\tau` are untouched. This is the multi-head
attention form (the report splits the scaling differently for MLA's shared rotary key). Biases of
the projections, if any, are not scaled, so with biases the logit scales only approximately.
Default :math:`\tau` = 100, the report's value. QK-clip is ours (``qk_clip_`` below, a few lines
on the weights): torch.optim.Muon has no such hook, and the clip needs the per-head max logits,
which only the task's model can measure (the harness passes them in).

Seed 004 describes Muon as "Adam for important parameters, SGD for the rest" and MuonClip as
Muon with adaptive gradient clipping: both are wrong. Muon orthogonalises the momentum of each
2-D hidden matrix (the rest goes to AdamW), and QK-clip rescales weights, not gradients.

State per Muon parameter: ``momentum_buffer`` (the parameter's dtype and shape), no step
counter. The fallback's share is AdamW's. QK-clip keeps no state.
"""
from __future__ import annotations

import torch

from optimizers import Moment, OptimizerSpec, above, check_hparam, itemsize, numel, one_of, register, within

EMBEDDING_KEYS = ("embed", "wte", "wpe")


def _is_head_component(component: str) -> bool:
    return component in ("head", "lm_head") or component.endswith("_head") or component.startswith("head")


def is_hidden_matrix(name: str, p: torch.Tensor) -> bool:
    """Muon's parameter policy: 2-D or more (any tensor of 3 or more dimensions, a conv filter, is
    seen as out x the rest), and not an embedding table or an output head (by name)."""
    if p.ndim < 2:
        return False
    if any(key in name for key in EMBEDDING_KEYS):
        return False
    return not any(_is_head_component(c) for c in name.split("."))


def as_matrix(shape) -> tuple[int, int]:
    """The 2-D shape Muon orthogonalises: (out, everything else), a conv filter's out x (in kh kw)."""
    return int(shape[0]), numel(shape[1:])


def muon_state_bytes(shape, dtype):
    return numel(shape) * itemsize(dtype)


def muon_step_flops(shape, hp):
    """``ns_steps`` Newton-Schulz iterations on the a×b momentum (a <= b: torch transposes a tall one),
    each three bfloat16 products: X Xᵀ (2·a²·b), the Gram matrix's b·A + c·A² (2·a³), and its
    product with X (2·a²·b)."""
    a, b = sorted(as_matrix(shape))
    return {"bf16": hp["ns_steps"] * (4 * a * a * b + 2 * a ** 3)}


def _check_tau(tau) -> None:
    check_hparam("muonclip", "tau", tau, 100.0, above(0))   # the QK-clip threshold


@torch.no_grad()
def qk_clip_(max_logits: torch.Tensor, qk_weights, tau: float) -> torch.Tensor:
    """QK-clip, in place: scale the query and key rows of every head whose max logit exceeds tau.

    ``max_logits``: [layers, heads], the largest pre-softmax attention logit of each head (over
    the batch). ``qk_weights``: per layer ``(W_q, W_k, n_heads)`` with ``W_q``, ``W_k`` shaped
    ``[n_heads * head_dim, hidden]``, head ``h`` being rows ``h*head_dim:(h+1)*head_dim``. Each
    head with ``S_max > tau`` has both blocks multiplied by ``sqrt(tau / S_max)``, so its logits
    scale by ``tau / S_max``. Returns the per-head factor applied to the logits ([layers, heads],
    1 where untouched).
    """
    _check_tau(tau)
    max_logits = torch.as_tensor(max_logits)
    if max_logits.ndim != 2 or max_logits.shape[0] != len(qk_weights):
        raise ValueError(f"max_logits has shape {tuple(max_logits.shape)}; "
                         f"expected [layers={len(qk_weights)}, heads]")
    factors = torch.ones(max_logits.shape, dtype=torch.float64)
    for layer, (w_q, w_k, n_heads) in enumerate(qk_weights):
        if max_logits.shape[1] != n_heads:
            raise ValueError(f"layer {layer}: max_logits has {max_logits.shape[1]} heads, "
                             f"qk_weights {n_heads}")
        if w_q.shape != w_k.shape or w_q.ndim != 2 or w_q.shape[0] % n_heads:
            raise ValueError(f"layer {layer}: W_q {tuple(w_q.shape)} and W_k {tuple(w_k.shape)} must both be "
                             f"[n_heads*head_dim, hidden] with n_heads={n_heads}")
        s_max = max_logits[layer].detach().to(torch.float64).cpu()
        gamma = torch.where(s_max > tau, tau / s_max, torch.ones_like(s_max))
        factors[layer] = gamma
        if bool((gamma < 1).any()):
            scale = gamma.sqrt()
            for w in (w_q, w_k):
                heads = w.view(n_heads, w.shape[0] // n_heads, w.shape[1])
                heads.mul_(scale.to(device=w.device, dtype=w.dtype)[:, None, None])
    return factors


class Muon(torch.optim.Muon):
    """torch.optim.Muon on tensors of 2 or more dimensions, each seen as its `as_matrix` view.

    torch.optim.Muon checks `ndim == 2` at construction and in its update; everything else here is
    its code: the update (`torch.optim._muon.muon`, called by the inherited `step`) runs on 2-D views
    of the parameters, their gradients and momentum buffers, and in-place updates of a view are
    updates of the tensor. The momentum buffer keeps the parameter's shape in the state (the
    checkpoint and the memory accounting see the tensor, not the view)."""

    def __init__(self, params, **kwargs):
        # torch's own validation of every hyperparameter and its defaults, from a 1 x 1 stand-in;
        # then the optimizer over the real groups without torch.optim.Muon's 2-D check
        defaults = torch.optim.Muon([torch.zeros(1, 1, requires_grad=True)], **kwargs).defaults
        torch.optim.Optimizer.__init__(self, params, defaults)
        for group in self.param_groups:
            for p in group["params"]:
                if p.ndim < 2:
                    raise ValueError(f"Muon: a parameter of shape {tuple(p.shape)} is not valid; "
                                     "valid: tensors of 2 or more dimensions")
                if p.ndim > 2 and not p.is_contiguous():   # a view of it as out x rest needs the default layout
                    raise ValueError(f"Muon: a parameter of shape {tuple(p.shape)} in a non-contiguous layout "
                                     "(e.g. channels_last) is not valid; valid: contiguous tensors")

    def _init_group(self, group, params_with_grad, grads, muon_momentum_bufs):
        has_complex = super()._init_group(group, params_with_grad, grads, muon_momentum_bufs)
        for i, p in enumerate(params_with_grad):
            if p.ndim != 2:
                rows = p.shape[0]
                params_with_grad[i] = p.view(rows, -1)
                grads[i] = grads[i].view(rows, -1)
                muon_momentum_bufs[i] = muon_momentum_bufs[i].view(rows, -1)
        return has_complex


class MuonClip(Muon):
    """torch.optim.Muon with the QK-clip hook the training loop calls after each step.

    What the clip guarantees. The training loop measures every head's max logit S (layer l,
    head h) in one no-grad forward of the step's batch with the weights the step just produced,
    then calls ``qk_clip``. For each layer l, on the inputs layer l received in that forward,
    every logit of a clipped head is multiplied by gamma = tau / S (the rows of W_q and W_k by
    sqrt(gamma); no bias, and RoPE is linear), and an unclipped head's logits are unchanged: so
    measuring layer l again *on those inputs* with the clipped weights gives every head's max
    <= tau, up to float rounding (sqrt(gamma) rounded to the weights' dtype, each weight rounded
    after scaling, the projections and the head's dot product recomputed: an error of order
    (terms summed) x epsilon relative to the sum of the terms' magnitudes: for float32 on the
    smoke LM, 1e-5 of tau times how much the max logit's terms cancel; see
    tests/test_training_hooks.py). This holds for every layer.
    Layer 0's inputs (the embeddings) depend on no query or key weight, so for it the bound also
    holds in a fresh forward. For layers l >= 1 it does not: clipping layers below l changes their
    attention patterns, hence layer l's inputs, so a fresh forward can give layer l logits above
    tau (0.3006 at tau = 0.3 in the smoke LM), until the next step's measurement clips them. Nor
    does the clip bound the logits on another batch, or those the next update produces: it is a
    per-step correction. (A bound for every layer in a fresh forward would need measuring and
    clipping layer by layer: one forward per layer.)
    """

    def __init__(self, params, tau: float = 100.0, **kwargs):
        _check_tau(tau)
        super().__init__(params, **kwargs)
        self.tau = float(tau)

    def qk_clip(self, max_logits: torch.Tensor, qk_weights) -> torch.Tensor:
        return qk_clip_(max_logits, qk_weights, self.tau)


MUON_DEFAULTS = dict(lr=1e-3, weight_decay=0.1, momentum=0.95, nesterov=True, ns_steps=5, eps=1e-7,
                     adjust_lr_fn="match_rms_adamw")
MUON_RULES = dict(adjust_lr_fn=one_of(None, "original", "match_rms_adamw"), ns_steps=within(1, 100))

# What both entries are: Muon on the 2-D hidden matrices, the registry's AdamW on the rest.
MUON = dict(family="muon", lr_range=(1e-4, 1.0), search=dict(weight_decay=(1e-3, 1.0)),  # decoupled decay: tuned with lr
            takes=is_hidden_matrix, fallback="adamw", state_bytes=muon_state_bytes, step_flops=muon_step_flops,
            moments={"m": (Moment("momentum_buffer"),), "v": ()})   # the momentum it orthogonalises

register(OptimizerSpec(
    name="muon", paper="Jordan et al. 2024; Liu et al. 2025",
    implementation="torch.optim.Muon (hidden matrices; conv filters flattened to 2-D) + torch.optim.AdamW (rest)",
    build=Muon, defaults=dict(MUON_DEFAULTS), hparam_rules=MUON_RULES, **MUON,
))

register(OptimizerSpec(
    name="muonclip", paper="Kimi Team 2025 (Kimi K2)",
    implementation="torch.optim.Muon + QK-clip (ours) (hidden matrices) + torch.optim.AdamW (rest)",
    build=MuonClip, defaults=dict(MUON_DEFAULTS, tau=100.0),
    needs=frozenset({"attention_logits"}),
    hparam_rules=dict(MUON_RULES, tau=above(0)),   # the QK-clip threshold
    **MUON,
))
