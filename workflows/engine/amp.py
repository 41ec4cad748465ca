"""Mixed precision for the harness: autocast, loss scaling, and the underflow / overflow probe.

Precision (`PRECISIONS`): the forward runs under `torch.autocast(device, dtype)` (matmuls and
convolutions in bf16 or fp16, reductions such as the loss in fp32); parameters, gradients and
optimizer state stay fp32 (the "master weights"), so only the activations and the activation
gradients of the backward are low precision. fp16 has 5 exponent bits: normal values run from
6.1e-5 to 65504 and subnormals down to 6e-8, below which a value rounds to 0 (underflow) and above
which it becomes inf (overflow). bf16 keeps fp32's 8 exponent bits (range 1e-38 .. 3e38) with fewer
mantissa bits, so the same gradients neither underflow nor overflow.

Loss scaling (`LOSS_SCALINGS`) moves the backward's values into fp16's range:

- "none": the loss as it is;
- "static": loss × c before backward, gradients ÷ c before the step, and a step whose gradients
  are not finite is skipped (the parameters and optimizer state are left alone), as GradScaler does;
- "dynamic": `torch.amp.GradScaler`: c starts at 2^16, halves on a step with a non-finite gradient
  (which is skipped) and doubles after `growth_interval` steps in a row without one. GradScaler's
  default interval, 2000 (`GROWTH_INTERVAL`), is made for long runs: in a run shorter than it the
  scale never grows, and dynamic scaling is static 2^16 that can only halve. A study sets
  the interval of the scalers it makes with `growth_interval(n)`.
"""
from __future__ import annotations

import contextlib
import contextvars
import math

import torch

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
LOSS_SCALINGS = ("none", "static", "dynamic")
GROWTH_INTERVAL = 2000   # torch.amp.GradScaler's default
_growth_interval = contextvars.ContextVar("growth_interval", default=GROWTH_INTERVAL)


@contextlib.contextmanager
def growth_interval(steps: int):
    """Dynamic loss scalers made inside (the harness makes one a run) double their scale after
    `steps` clean steps in a row instead of GradScaler's 2000."""
    if not (isinstance(steps, int) and not isinstance(steps, bool) and steps >= 1):
        raise ValueError(f"growth_interval={steps!r}: must be an integer >= 1")
    token = _growth_interval.set(steps)
    try:
        yield
    finally:
        _growth_interval.reset(token)


def autocast(precision: str, device: torch.device):
    """The forward's context: torch.autocast to the precision's dtype; nothing for fp32."""
    dtype = PRECISIONS[precision]
    return contextlib.nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)


class LossScaler:
    """One interface over the three scalings: `scale(loss)` before backward, `unscale(opt)` after
    it, `update()` after the step (taken or skipped). `factor()` is the c of the step. A dynamic
    scaler's growth interval is the enclosing `growth_interval`'s, else GradScaler's 2000."""

    def __init__(self, mode: str, static_scale: float, device: torch.device):
        self.mode = mode
        self.static = static_scale if mode == "static" else 1.0
        self.grad_scaler = (torch.amp.GradScaler(device.type, growth_interval=_growth_interval.get())
                            if mode == "dynamic" else None)

    def factor(self) -> float:
        return self.grad_scaler.get_scale() if self.grad_scaler else self.static

    def scale(self, loss: torch.Tensor) -> torch.Tensor:
        if self.grad_scaler:
            return self.grad_scaler.scale(loss)
        return loss * self.static if self.mode == "static" else loss

    def unscale(self, opt: torch.optim.Optimizer) -> None:
        """Gradients ÷ c (GradScaler: × 1/c, exact for its powers of 2). A non-finite entry stays
        non-finite, so the caller's finiteness check after this call decides the skip."""
        if self.grad_scaler:
            self.grad_scaler.unscale_(opt)
        elif self.mode == "static":
            for group in opt.param_groups:
                for p in group["params"]:
                    if p.grad is not None:
                        p.grad.div_(self.static)

    def update(self) -> None:
        """GradScaler's halving or growth, from the inf check its unscale_ recorded."""
        if self.grad_scaler:
            self.grad_scaler.update()

    def state_dict(self) -> dict:
        return self.grad_scaler.state_dict() if self.grad_scaler else {}

    def load_state_dict(self, state: dict) -> None:
        if self.grad_scaler:
            self.grad_scaler.load_state_dict(state)


def gradient_shares(low: list[torch.Tensor | None], reference: list[torch.Tensor | None]) -> dict:
    """Counts over every gradient entry of the parameters (exact integers):

    - underflow: entries exactly 0 in the low-precision gradient `low` where the fp32 `reference`
      gradient of the same batch is not 0 (the value was lost to fp16's range, not zero by nature);
    - overflow: entries of `low` that are inf or NaN;

    and their shares of `entries`. A parameter without a low-precision gradient counts as all zero."""
    entries = underflow = overflow = 0
    for g, r in zip(low, reference):
        if r is None:
            continue
        entries += r.numel()
        nonzero = r != 0
        if g is None:
            underflow += int(nonzero.sum())
            continue
        underflow += int(((g == 0) & nonzero).sum())
        overflow += int((~torch.isfinite(g)).sum())
    share = (lambda n: n / entries) if entries else (lambda n: math.nan)
    return {"entries": entries, "underflow": underflow, "overflow": overflow,
            "underflow_share": share(underflow), "overflow_share": share(overflow)}
