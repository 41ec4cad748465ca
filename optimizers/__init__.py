"""The optimizer registry.

Every file in this package defines one family of optimizers and registers one
`OptimizerSpec` per optimizer with `register`. The registry is filled by
importing every module of the package, so adding an optimizer is adding a file.

An entry reads like the optimizer's definition: what it is (family, paper,
implementation), how to build it, its defaults and learning-rate range, which
parameters it takes (the rest go to `fallback`), what it needs from the
training loop, and how many bytes of state it keeps for a parameter.
"""
from __future__ import annotations

import importlib
import math
import pkgutil
import sys
from dataclasses import dataclass, field
from typing import Callable, Iterable

import torch

# What an optimizer may need from the training loop.
NEEDS = frozenset({
    "closure",           # step(closure) re-evaluates the loss (L-BFGS style)
    "hessian",           # a Hessian-diagonal estimate every k steps (Sophia)
    "attention_logits",  # per-head max pre-softmax logits after each step (MuonClip)
    "sparse",            # accepts sparse gradients (nn.Embedding(sparse=True))
    "sparse_only",       # refuses dense gradients: runs only on tasks that require "sparse"
})


def scalar_bytes() -> int:
    """Bytes of a 0-d `step` tensor as torch.optim keeps it (float32, or float64 under a float64 default)."""
    return torch.tensor(0.0).element_size()


def numel(shape: Iterable[int]) -> int:
    return math.prod(shape)


def itemsize(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()


@dataclass(frozen=True)
class OptimizerSpec:
    name: str
    family: str
    paper: str
    implementation: str          # "torch.optim.AdamW", "bitsandbytes.optim.Adam8bit", "ours"
    build: Callable[..., torch.optim.Optimizer]   # build(params, **hparams)
    defaults: dict               # every hyperparameter the entry accepts, lr included
    state_bytes: Callable[[tuple, torch.dtype], int]   # analytic state bytes of one parameter
    lr_range: tuple[float, float] = (1e-4, 1e-1)       # log-spaced tuning range
    takes: Callable[[str, torch.Tensor], bool] | None = None   # None: every parameter
    fallback: str | None = None  # registry name for the parameters `takes` refuses
    needs: frozenset = field(default_factory=frozenset)
    hessian_every: int = 10      # with needs "hessian": steps between Hessian estimates (Sophia's k)
    shared_state_bytes: Callable[[list], int] | None = None  # state shared by all the parameters it
    # takes (bitsandbytes' quantisation maps), from [(shape, dtype), ...]; none by default
    hparam_check: Callable[[dict], None] | None = None  # extra validation beyond the library's
    package: str = "torch"       # distribution whose version is reported

    def __post_init__(self):
        unknown = set(self.needs) - NEEDS
        if unknown:
            raise ValueError(f"{self.name}: unknown needs {sorted(unknown)}; valid: {sorted(NEEDS)}")
        if "lr" not in self.defaults:
            raise ValueError(f"{self.name}: defaults must include 'lr'")
        if (self.takes is None) != (self.fallback is None):
            raise ValueError(f"{self.name}: 'takes' and 'fallback' go together")

    def hparams(self, overrides: dict | None = None) -> dict:
        """Defaults updated by `overrides`; unknown keys are refused by name."""
        overrides = dict(overrides or {})
        unknown = sorted(set(overrides) - set(self.defaults))
        if unknown:
            raise ValueError(
                f"optimizer {self.name!r} has no hyperparameter {', '.join(map(repr, unknown))}; "
                f"valid: {', '.join(sorted(self.defaults))}")
        hp = {**self.defaults, **overrides}
        check_common(self.name, hp)
        if self.hparam_check:
            self.hparam_check(hp)
        return hp

    @property
    def version(self) -> str:
        from importlib.metadata import PackageNotFoundError, version
        try:
            return version(self.package)
        except PackageNotFoundError:
            return "unknown"


def check_common(name: str, hp: dict) -> None:
    """Validation every entry shares, so that the message names the value before any library sees it."""
    def bad(key, why):
        raise ValueError(f"optimizer {name!r}: invalid {key}={hp[key]!r}: {why}")
    if not (isinstance(hp["lr"], (int, float)) and math.isfinite(hp["lr"]) and hp["lr"] > 0):
        bad("lr", "must be a finite number > 0")
    for key in ("eps",):
        values = hp.get(key)
        values = values if isinstance(values, (tuple, list)) else [values]
        if any(v is not None and not v > 0 for v in values):
            bad(key, "must be > 0")
    if "betas" in hp and hp["betas"] is not None:
        if not all(0.0 <= b < 1.0 for b in hp["betas"]):
            bad("betas", "each must lie in [0, 1)")
    for key in ("momentum", "beta1", "beta2"):
        if key in hp and isinstance(hp[key], (int, float)) and not 0.0 <= hp[key] < 1.0:
            bad(key, "must lie in [0, 1)")
    if "weight_decay" in hp and not hp["weight_decay"] >= 0:
        bad("weight_decay", "must be >= 0")


_REGISTRY: dict[str, OptimizerSpec] = {}
_SOURCES: dict[str, str] = {}


def register(spec: OptimizerSpec) -> OptimizerSpec:
    if spec.name in _REGISTRY:
        raise ValueError(f"optimizer {spec.name!r} is registered twice")
    _REGISTRY[spec.name] = spec
    _SOURCES[spec.name] = sys._getframe(1).f_globals.get("__file__", "")
    return spec


def source(name: str) -> str:
    """The file that registers `name`: the pipeline reruns an optimizer's jobs when it changes."""
    get(name)
    return _SOURCES[name]


_loaded = False


def _load_all() -> None:
    """Import every module of the package on first use (modules that register nothing, such as
    `memory` and `scaffold`, are harmless), so that `import optimizers` alone stays cheap."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for mod in pkgutil.iter_modules(__path__):
        if not mod.name.startswith("_"):
            importlib.import_module(f"{__name__}.{mod.name}")


def names() -> list[str]:
    _load_all()
    return sorted(_REGISTRY)


def get(name: str) -> OptimizerSpec:
    _load_all()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown optimizer {name!r}; valid: {', '.join(names())}") from None


from optimizers._build import build_optimizer, state_bytes, model_state_bytes  # noqa: E402

__all__ = ["OptimizerSpec", "register", "get", "names", "build_optimizer", "state_bytes",
           "model_state_bytes", "NEEDS"]
