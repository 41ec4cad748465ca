"""`optbench new-optimizer NAME`: a new registry file (optimizers/NAME.py by default) from a
template, the interface filled in. It lives with the command line, not in the optimizers package,
which holds entries and their machinery only."""
from __future__ import annotations

import re
from pathlib import Path

import optimizers

TEMPLATE = '''r"""{title}: replace this docstring with the update rule, its paper, and the implementation.

Written by `optbench new-optimizer {name}` as a working starting point: heavy-ball momentum from
the equations,

.. math::
    b_t = \\mu b_{{t-1}} + g_t, \\qquad \\theta_t = \\theta_{{t-1}} - \\eta\\, b_t

Replace `{cls}.step` (or `build`, to wrap a library's class instead: prefer the maintained
implementation people train with) and keep `state_bytes` exact: the tests compare it with the
bytes the optimizer really holds. The generic tests in tests/test_optimizers.py run on this entry
without a test written for it:

    python -m pytest tests/test_optimizers.py -k {name}

They check that it builds on 1-D, 2-D and 4-D parameters, lowers the loss on a quadratic and on
Rosenbrock, that measured state bytes equal `state_bytes`, that state_dict save/load continues the
same trajectory, and that bad hyperparameters are refused by name. Then add "{name}" to a profile's
`optimizers` in workflows/config/ and rerun snakemake: only its jobs run, then the report.
"""
import torch

from optimizers import OptimizerSpec, itemsize, numel, register


class {cls}(torch.optim.Optimizer):
    def __init__(self, params, lr=1e-3, momentum=0.9):
        if not lr > 0:
            raise ValueError(f"invalid lr={{lr!r}}: must be > 0")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"invalid momentum={{momentum!r}}: must lie in [0, 1)")
        super().__init__(params, dict(lr=lr, momentum=momentum))

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
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = p.grad.clone()
                else:
                    state["momentum_buffer"].mul_(group["momentum"]).add_(p.grad)
                p.add_(state["momentum_buffer"], alpha=-group["lr"])
        return loss


register(OptimizerSpec(
    name="{name}", family="{name}", paper="(cite the paper)",
    implementation="ours", build={cls},
    # lr 1e-3 (torch.optim.SGD's): the generic tests run the defaults on Rosenbrock, whose
    # curvature ~1e3 at the start makes larger momentum steps diverge.
    defaults=dict(lr=1e-3, momentum=0.9),
    lr_range=(1e-4, 1.0),
    state_bytes=lambda shape, dtype: numel(shape) * itemsize(dtype),  # one momentum buffer
))
'''


def new_optimizer(name: str, directory: Path | None = None) -> Path:
    if not re.fullmatch(r"[a-z][a-z0-9_-]*", name):
        raise ValueError(f"optimizer name {name!r}: use lower-case letters, digits, '-' or '_', starting with a letter")
    if name in optimizers.names():
        raise ValueError(f"optimizer {name!r} already exists (in {optimizers.source(name)})")
    directory = Path(directory or Path(optimizers.__file__).parent)
    path = directory / f"{name.replace('-', '_')}.py"
    if path.exists():
        raise ValueError(f"{path} already exists")
    cls = "".join(part.capitalize() for part in re.split(r"[-_]", name))
    path.write_text(TEMPLATE.format(name=name, cls=cls, title=cls))
    return path
