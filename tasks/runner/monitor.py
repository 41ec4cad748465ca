"""The training monitor: what an optimizer does to the weights, every k steps.

Per parameter group (as the optimizer holds them): gradient norm, update norm ‖θ_t − θ_{t−1}‖,
weight norm, and their ratio update/weight (the quantity learning-rate heuristics reason about);
for the first and second moments where the optimizer keeps them (`exp_avg`, `exp_avg_sq`, or any
state tensor shaped like its parameter), their mean absolute value; and the optimizer's state bytes.

The snapshot for the update norm is taken only on monitored steps, so the cost away from them is
one integer comparison. The rows are plain data: the harness's checkpoints save them and a resumed
run starts from them, so its rows are the uninterrupted run's.
"""
from __future__ import annotations

import math

import torch

import optimizers

MOMENT_KEYS = {"exp_avg": "m", "exp_avg_sq": "v", "momentum_buffer": "m", "square_avg": "v", "sum": "v"}


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
            moments = {"m": [], "v": []}
            for p, p0 in zip(group["params"], before):
                if p.grad is not None and not p.grad.is_sparse:
                    sq["grad"] += float(p.grad.float().pow(2).sum())
                sq["update"] += float((p - p0).float().pow(2).sum())
                sq["weight"] += float(p.float().pow(2).sum())
                for key, t in state.get(p, {}).items():
                    kind = MOMENT_KEYS.get(key)
                    if kind and isinstance(t, torch.Tensor) and t.is_floating_point() and t.numel() > 1:
                        moments[kind].append(float(t.float().abs().mean()))
            norms = {k: math.sqrt(v) for k, v in sq.items()}
            self.rows.append({
                "step": step, "group": gi, "grad_norm": norms["grad"], "update_norm": norms["update"],
                "weight_norm": norms["weight"],
                "update_to_weight": norms["update"] / norms["weight"] if norms["weight"] else math.nan,
                "m_abs_mean": sum(moments["m"]) / len(moments["m"]) if moments["m"] else math.nan,
                "v_abs_mean": sum(moments["v"]) / len(moments["v"]) if moments["v"] else math.nan,
                "state_bytes": optimizers.state_bytes(opt) if gi == 0 else None,
            })
        self._before = None
