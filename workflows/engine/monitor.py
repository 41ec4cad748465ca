"""The training monitor: what an optimizer does to the weights, every k steps.

Per parameter group (as the optimizer holds them): gradient norm, update norm ‖θ_t − θ_{t−1}‖,
weight norm, and their ratio update/weight (the quantity learning-rate heuristics reason about);
the optimizer's first and second moments, as the mean absolute value over the elements of the
group's parameters that keep one (`m_abs_mean`, `v_abs_mean`), with what each was read from
(`m_from`, `v_from`); and the optimizer's state bytes.

Optimizers keep their moments under many names and forms; `moments` reads each one it knows:

- first moment m (an average of gradients): ``exp_avg`` (the Adam family, Lion, Sophia, SOAP,
  MARS, AdEMAMix's fast EMA; Prodigy's and D-Adaptation's are scaled by their step-size estimate),
  ``momentum_buffer`` (SGD with momentum, Muon, Kron), bitsandbytes' ``state1``;
- second moment v (an average of squared gradients): ``exp_avg_sq``, ``square_avg`` (RMSprop),
  ``sum`` (AdaGrad: accumulated, not averaged), bitsandbytes' ``state2``; Adafactor's factored
  statistics, whose reconstruction :math:`\\hat v_{ij} = r_i c_j / \\bar r` has mean :math:`\\bar c`
  (torch's ``row_var``/``col_var``, Hugging Face's ``exp_avg_sq_row``/``exp_avg_sq_col``; a 1-D
  parameter's unfactored ``variance`` or ``exp_avg_sq``); Shampoo's statistic
  :math:`L = \\sum_t G_t G_t^\\top` (``pre_cond_0``), whose trace is :math:`\\sum_t \\lVert G_t\\rVert_F^2`,
  so trace / numel is the mean of the AdaGrad accumulator over the tensor's elements. (SOAP's
  ``exp_avg_sq`` lives in its rotated basis; a rotation keeps the sum of squares, so its mean is
  comparable.)

8-bit state (bitsandbytes' uint8 ``state1``/``state2``) is dequantised first: code[q] × absmax of
its block of ``BNB_BLOCK`` = 256 elements (fixed in bitsandbytes' ``init_state``). A moment the
optimizer does not keep is NaN, and its ``*_from`` says why, starting ``"not available: "``: plain
SGD keeps no state; Lion, Muon and Kron keep no second moment (Kron's factors Q whiten the
gradient, they are not an average of its square); Sophia's second statistic is a Hessian-diagonal
EMA; Shampoo at momentum 0 and schedule-free AdamW keep no gradient average.

The snapshot for the update norm is taken only on monitored steps, so the cost away from them is
one integer comparison. The rows are plain data: the harness's checkpoints save them and a resumed
run starts from them, so its rows are the uninterrupted run's.
"""
from __future__ import annotations

import math

import torch

import optimizers

NOT_AVAILABLE = "not available: "
BNB_BLOCK = 256   # bitsandbytes' blockwise 8-bit optimizers: one absmax per 256 elements

FIRST = ("exp_avg", "state1", "momentum_buffer")                     # full-size, in this order
SECOND = ("exp_avg_sq", "square_avg", "variance", "state2")

# Why a moment is absent, by a state key that identifies the optimizer's kind of state.
ABSENT = {
    "m": {"pre_cond_0": "Shampoo at momentum 0 keeps no gradient average (its momentum_buffer holds "
                        "the last preconditioned gradient)",
          "z": "schedule-free AdamW keeps no gradient average (z is the sequence its iterate averages)"},
    "v": {"hessian": "Sophia's second statistic is an EMA of a Hessian-diagonal estimate (curvature), "
                     "not of squared gradients",
          "Q": "Kron's preconditioner factors Q whiten the gradient; they are not an average of its square"},
}


def dequantised(state: dict, key: str) -> tuple[torch.Tensor, str] | None:
    """bitsandbytes' ``state1``/``state2`` as real numbers, with a label: as stored when 32-bit
    (parameters below its min_8bit_size), else code[q] × absmax of the element's block; None for a
    block layout other than BNB_BLOCK's."""
    t = state[key]
    if t.dtype != torch.uint8:
        return t, key
    i = key[-1]
    code, absmax = state.get(f"qmap{i}"), state.get(f"absmax{i}")
    if code is None or absmax is None or absmax.numel() != -(-t.numel() // BNB_BLOCK):
        return None
    block = torch.arange(t.numel(), device=t.device) // BNB_BLOCK
    return code[t.flatten().long()] * absmax[block], f"{key} (8-bit, dequantised)"


def _full(state: dict, keys, n: int):
    """The first of `keys` that holds a tensor of n real (or 8-bit) numbers, as (tensor, label)."""
    for key in keys:
        t = state.get(key)
        if not isinstance(t, torch.Tensor) or t.numel() != n:
            continue
        if key in ("state1", "state2"):
            got = dequantised(state, key)
            if got:
                return got
        elif t.is_floating_point():
            return t, key
    return None


def moments(state: dict, p: torch.Tensor) -> dict:
    """{"m": (sum of |m| over the parameter's elements, label) or None, "v": likewise} from one
    parameter's optimizer state."""
    n = p.numel()
    # Shampoo keeps a momentum_buffer at momentum 0: the last preconditioned gradient, not an average
    first = _full(state, [k for k in FIRST if not (k == "momentum_buffer" and "pre_cond_0" in state)], n)
    second = _full(state, SECOND, n)
    out = {"m": first and (float(first[0].float().abs().sum()), first[1]),
           "v": second and (float(second[0].float().abs().sum()), second[1])}
    if second is None:
        if isinstance(state.get("sum"), torch.Tensor) and state["sum"].numel() == n:
            out["v"] = (float(state["sum"].float().abs().sum()), "sum (accumulated, not averaged)")
        elif isinstance(state.get("col_var"), torch.Tensor):
            out["v"] = (float(state["col_var"].float().mean()) * n, "row_var/col_var (factored: mean of col_var)")
        elif isinstance(state.get("exp_avg_sq_col"), torch.Tensor):
            out["v"] = (float(state["exp_avg_sq_col"].float().mean()) * n,
                        "exp_avg_sq_row/col (factored: mean of the column factor)")
        elif isinstance(state.get("pre_cond_0"), torch.Tensor):
            out["v"] = (float(torch.trace(state["pre_cond_0"].float())), "pre_cond_0 (sum of G Gᵀ: trace / numel)")
    return out


def absent(kind: str, keys: set) -> str:
    """Why no parameter of a group has moment `kind` ("m" or "v"), from the state keys it does have."""
    for key, why in ABSENT[kind].items():
        if key in keys:
            return NOT_AVAILABLE + why
    if not keys:
        return NOT_AVAILABLE + "the optimizer keeps no state (its update uses the gradient alone)"
    what = "first moment (gradient average)" if kind == "m" else "second moment (squared-gradient average)"
    return NOT_AVAILABLE + f"the optimizer keeps no {what}; its state: {', '.join(sorted(keys))}"


class Monitor:
    def __init__(self, every: int):
        if every < 0:
            raise ValueError(f"monitor every={every!r}: must be >= 0 (0 switches the monitor off)")
        self.every = every
        self.rows: list[dict] = []
        self._before = None

    def due(self, step: int) -> bool:
        return self.every > 0 and step % self.every == 0

    @torch.no_grad()
    def before_step(self, step: int, opt) -> None:
        if self.due(step):
            self._before = [[p.detach().clone() for p in g["params"]] for g in opt.param_groups]

    @torch.no_grad()
    def after_step(self, step: int, opt) -> None:
        if not self.due(step) or self._before is None:
            return
        state = opt.state
        for gi, (group, before) in enumerate(zip(opt.param_groups, self._before)):
            sq = {"grad": 0.0, "update": 0.0, "weight": 0.0}
            sums = {"m": [0.0, 0, set()], "v": [0.0, 0, set()]}   # sum of |moment|, elements, labels
            keys = set()
            for p, p0 in zip(group["params"], before):
                if p.grad is not None and not p.grad.is_sparse:
                    sq["grad"] += float(p.grad.float().pow(2).sum())
                sq["update"] += float((p - p0).float().pow(2).sum())
                sq["weight"] += float(p.float().pow(2).sum())
                st = state.get(p, {})
                keys |= {k for k in st if k != "step"}
                for kind, got in moments(st, p).items():
                    if got:
                        sums[kind][0] += got[0]
                        sums[kind][1] += p.numel()
                        sums[kind][2].add(got[1])
            norms = {k: math.sqrt(v) for k, v in sq.items()}
            summary = {}
            for kind, (total, n, labels) in sums.items():
                summary[f"{kind}_abs_mean"] = total / n if n else math.nan
                summary[f"{kind}_from"] = "; ".join(sorted(labels)) if n else absent(kind, keys)
            self.rows.append({
                "step": step, "group": gi, "grad_norm": norms["grad"], "update_norm": norms["update"],
                "weight_norm": norms["weight"],
                "update_to_weight": norms["update"] / norms["weight"] if norms["weight"] else math.nan,
                **summary,
                "state_bytes": optimizers.state_bytes(opt) if gi == 0 else None,
            })
        self._before = None
