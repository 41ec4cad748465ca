"""The training monitor: what an optimizer does to the weights, every k steps.

Per parameter group (as the optimizer holds them): gradient norm, update norm ‖θ_t − θ_{t−1}‖,
weight norm, and their ratio update/weight (the quantity learning-rate heuristics reason about);
the optimizer's first and second moments, as the mean absolute value over the elements of the
group's parameters that keep one (`m_abs_mean`, `v_abs_mean`), with what each was read from
(`m_from`, `v_from`); and the optimizer's state bytes.

Optimizers keep their moments under many names and forms; each registry entry declares where it
keeps its own (``OptimizerSpec.moments``: for m and for v, the state keys to try and how each is
read, or why it keeps none), and `moments` reads any declaration:

- ``full``: a tensor of the parameter's size (``exp_avg``, ``momentum_buffer``, ``square_avg``,
  AdaGrad's accumulated ``sum``);
- ``8bit``: bitsandbytes' ``state1``/``state2``, dequantised (below);
- ``factor``: a factor of a factored statistic whose reconstruction has the factor's mean:
  Adafactor's :math:`\\hat v_{ij} = r_i c_j / \\bar r` has mean :math:`\\bar c` (torch's ``col_var``,
  Hugging Face's ``exp_avg_sq_col``), so the sum over the elements is mean × numel;
- ``trace``: Shampoo's statistic :math:`L = \\sum_t G_t G_t^\\top` (``pre_cond_0``), whose trace is
  :math:`\\sum_t \\lVert G_t\\rVert_F^2`, so trace / numel is the mean of the AdaGrad accumulator over
  the tensor's elements. (SOAP's ``exp_avg_sq`` lives in its rotated basis; a rotation keeps the
  sum of squares, so its mean is comparable.)

8-bit state (bitsandbytes' uint8 ``state1``/``state2``) is dequantised first: code[q] × absmax of
its block of ``BNB_BLOCK`` = 256 elements (fixed in bitsandbytes' ``init_state``). A moment the
optimizer does not keep is NaN, and its ``*_from`` says why, starting ``"not available: "``: the
entry's declared reason (Shampoo at momentum 0, Kron, Sophia, schedule-free AdamW), else that it
keeps no state (plain SGD), else the state it does keep (Lion, Muon: no second moment).

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


def read(state: dict, moment: optimizers.Moment, n: int) -> tuple[float, str] | None:
    """(sum of |moment| over a parameter's n elements, label) as `moment` declares, or None where
    this parameter's state does not hold it so."""
    t = state.get(moment.key)
    if not isinstance(t, torch.Tensor):
        return None
    label = moment.label or moment.key
    if moment.read == "factor":
        return float(t.float().mean()) * n, label
    if moment.read == "trace":
        return float(torch.trace(t.float())), label
    if t.numel() != n:
        return None
    if moment.read == "8bit":
        got = dequantised(state, moment.key)
        return got and (float(got[0].float().abs().sum()), got[1])
    return (float(t.float().abs().sum()), label) if t.is_floating_point() else None


def moments(state: dict, p: torch.Tensor, entry: str) -> dict:
    """{"m": (sum of |m| over the parameter's elements, label) or None, "v": likewise} from one
    parameter's state under registry entry `entry`: the first of its declared Moments it holds."""
    out = {}
    for kind, declared in optimizers.get(entry).moments.items():
        got = None
        for moment in () if isinstance(declared, str) else declared:
            got = read(state, moment, p.numel())
            if got:
                break
        out[kind] = got
    return out


def absent(kind: str, keys: set, declared) -> str:
    """Why no parameter of a group has moment `kind` ("m" or "v"), from the entry's declaration
    (a str: its reason) and the state keys the group has."""
    if not keys:
        return NOT_AVAILABLE + "the optimizer keeps no state (its update uses the gradient alone)"
    if isinstance(declared, str):
        return NOT_AVAILABLE + declared
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
        entries = optimizers.group_entries(opt)
        for gi, (group, before, entry) in enumerate(zip(opt.param_groups, self._before, entries)):
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
                for kind, got in moments(st, p, entry).items():
                    if got:
                        sums[kind][0] += got[0]
                        sums[kind][1] += p.numel()
                        sums[kind][2].add(got[1])
            norms = {k: math.sqrt(v) for k, v in sq.items()}
            summary = {}
            for kind, (total, n, labels) in sums.items():
                summary[f"{kind}_abs_mean"] = total / n if n else math.nan
                summary[f"{kind}_from"] = "; ".join(sorted(labels)) if n else absent(kind, keys, optimizers.get(entry).moments[kind])
            self.rows.append({
                "step": step, "group": gi, "grad_norm": norms["grad"], "update_norm": norms["update"],
                "weight_norm": norms["weight"],
                "update_to_weight": norms["update"] / norms["weight"] if norms["weight"] else math.nan,
                **summary,
                "state_bytes": optimizers.state_bytes(opt) if gi == 0 else None,
            })
        self._before = None
