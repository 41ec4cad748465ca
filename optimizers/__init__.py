"""The optimizer registry.

Every file in this package defines one family of optimizers and registers one
`OptimizerSpec` per optimizer with `register`. The registry is filled by
importing every module of the package, so adding an optimizer is adding a file.

An entry reads like the optimizer's definition: what it is (family, paper,
implementation), how to build it, its defaults, its search space (the learning-rate range and,
where it matters, log ranges of other hyperparameters such as decoupled weight decay), which
parameters it takes (the rest go to `fallback`), what it needs from the
training loop, and how many bytes of state it keeps for a parameter.

An entry whose update keeps Adam's second-moment EMA declares `tunes_beta2`: on a task that tunes
it (`tasks.Task.tunes_beta2`, the LM's) its search space gains ``beta2`` (`BETA2_RANGE`), a
hyperparameter a user sees by that name and the entry's library sees as ``betas[1]``
(`OptimizerSpec.hparams` maps it).

Hyperparameters are checked in one place, `OptimizerSpec.hparams`, before any library sees them:
the type of each comes from its default, its range from `COMMON_RULES` and the entry's
`hparam_rules` (data: `above(0)`, `within(0, 1)`, `one_of(...)`), and a rule across
hyperparameters from `hparam_check`. Every refusal is an `HparamError` of one form,
``optimizer 'adam': invalid betas=(0.9,): 1 value, not 2; valid: 2 numbers, each in [0, 1) ...``.
"""
from __future__ import annotations

import importlib
import os
import math
import numbers
import pkgutil
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import torch

# What an optimizer may need from the training loop.
NEEDS = frozenset({
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


class HparamError(ValueError):
    """A hyperparameter refused by the registry, always in one form:
    ``optimizer 'adam': invalid betas=(0.9,): <why>; valid: <what>``."""

    def __init__(self, optimizer: str, key: str, value, why: str, valid: str):
        self.optimizer, self.key, self.value, self.why, self.valid = optimizer, key, value, why, valid
        super().__init__(f"optimizer {optimizer!r}: invalid {key}={value!r}: {why}; valid: {valid}")


@dataclass(frozen=True)
class Rule:
    """The valid values of one hyperparameter beyond its type, as data.

    The type comes from the entry's default (``kind`` names it where the default is None): a float
    default takes a finite real number (bool is not one), an int default a whole number, a bool
    default True or False, a tuple of n numbers n finite numbers, a str default a string. ``ok``
    is applied to the value, or to each number of a tuple; ``valid`` says in words what it accepts.
    """
    valid: str                                   # "> 0", "in [0, 1)", "'a' or 'b'"
    ok: Callable[[Any], bool] = lambda v: True
    kind: str | None = None                      # "real", "int", "bool", "str"; "choice": `ok` alone
    none: bool = False                           # None is valid too (the library picks the value)


def above(x: float, **kw) -> Rule:
    return Rule(f"> {x:g}", lambda v: v > x, **kw)


def at_least(x: float, **kw) -> Rule:
    return Rule(f">= {x:g}", lambda v: v >= x, **kw)


def at_most(x: float, **kw) -> Rule:
    return Rule(f"<= {x:g}", lambda v: v <= x, **kw)


def within(lo: float, hi: float, **kw) -> Rule:
    """lo <= v < hi."""
    return Rule(f"in [{lo:g}, {hi:g})", lambda v: lo <= v < hi, **kw)


def one_of(*choices) -> Rule:
    words = [repr(c) for c in choices]
    return Rule(", ".join(words[:-1]) + f" or {words[-1]}" if len(words) > 1 else words[0],
                lambda v: any(v is c or (type(v) is type(c) and v == c) for c in choices), kind="choice")


# Rules every entry shares, by hyperparameter name; an entry's `hparam_rules` add to them or replace them.
COMMON_RULES = {
    "lr": above(0),
    "eps": above(0), "eps1": above(0), "eps2": above(0),
    "betas": within(0, 1),
    "momentum": within(0, 1), "beta1": within(0, 1), "beta2": within(0, 1),
    "weight_decay": at_least(0),
}

# How the training monitor (workflows.engine.monitor) reads one moment from a parameter's state.
MOMENT_READS = {
    "full": "a tensor of the parameter's size, as stored",
    "8bit": "bitsandbytes' state1/state2: code[q] x absmax of its block when 8-bit, as stored when 32-bit",
    "factor": "one factor of a factored statistic whose reconstruction has the factor's mean",
    "trace": "a Kronecker-factor statistic L = sum of G G^T, whose trace is the sum of the squared gradients",
}


@dataclass(frozen=True)
class Moment:
    """Where an entry keeps a moment of a parameter (state ``key``) and how it is read (``read``,
    one of MOMENT_READS); ``label`` is what the monitor says it read (None: the key)."""
    key: str
    read: str = "full"
    label: str | None = None

    def __post_init__(self):
        if self.read not in MOMENT_READS:
            raise ValueError(f"moment {self.key!r}: read {self.read!r}; valid: {', '.join(MOMENT_READS)}")


# The first moment m (an average of gradients) and the second v (of squared gradients) of an entry
# that keeps them as the Adam family does; an entry that keeps them otherwise declares its own.
ADAM_MOMENTS = {"m": (Moment("exp_avg"),), "v": (Moment("exp_avg_sq"),)}

# The kinds of matrix work an entry's `step_flops` counts, each run at its own rate (workflows.engine.plan).
STEP_FLOP_KINDS = {
    "matmul": "matrix products in the parameter's dtype (Shampoo's and SOAP's statistics and projections)",
    "bf16": "matrix products in bfloat16 whatever the parameter's dtype (Muon's Newton-Schulz)",
    "decomposition": "SVD, eigendecomposition and QR (LAPACK, cuSOLVER): far below a product's rate",
}

_NOUNS = {"real": "a finite number", "int": "a whole number", "bool": "True or False", "str": "a string"}


def _is_real(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _a(v) -> str:
    """What a value is, in words: 'a string', 'an int', 'None'."""
    if v is None:
        return "None"
    name = {str: "string", bool: "bool", float: "float", int: "int", tuple: "tuple", list: "list",
            dict: "dict"}.get(type(v), type(v).__name__)
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}"


def _kind_of(default):
    """The type a default implies: 'bool', 'int', 'real', 'str', ('real', n) for a tuple of n numbers,
    or None (no type: a None default, whose rule must say)."""
    if isinstance(default, bool):
        return "bool"
    if isinstance(default, numbers.Integral):
        return "int"
    if _is_real(default):
        return "real"
    if isinstance(default, str):
        return "str"
    if isinstance(default, tuple) and default and all(_is_real(x) for x in default):
        return ("real", len(default))
    return None


def _fits(kind: str, v) -> str | None:
    """None if `v` is of scalar `kind`, else why not."""
    if kind == "real":
        if not _is_real(v):
            return f"{_a(v)}, not a number"
        try:
            if not math.isfinite(v):
                return "not finite"
        except OverflowError:   # an int too large for a float
            return "not finite"
    elif kind == "int":
        if not isinstance(v, numbers.Integral) or isinstance(v, bool):
            return f"{_a(v)}, not a whole number"
    elif kind == "bool":
        if not isinstance(v, bool):
            return f"{_a(v)}, not True or False"
    elif kind == "str":
        if not isinstance(v, str):
            return f"{_a(v)}, not a string"
    return None


def check_hparam(optimizer: str, key: str, value, default, rule: Rule | None = None):
    """`value` of hyperparameter `key` checked against the type of `default` and `rule`; returns it
    (a list given for a tuple default becomes a tuple) or raises HparamError."""
    kind = (rule.kind if rule and rule.kind else None) or _kind_of(default)
    if isinstance(kind, tuple):
        n = kind[1]
        valid = f"{n} numbers" + (f", each {rule.valid}" if rule else "")
    elif kind == "choice":
        valid = rule.valid
    else:
        valid = " ".join(filter(None, [_NOUNS.get(kind, "any value"), rule.valid if rule else ""]))
    if rule and rule.none and kind != "choice":
        valid += ", or None"
    valid += f" (default {default!r})"

    def bad(why):
        raise HparamError(optimizer, key, value, why, valid)

    if value is None and (rule is not None and rule.none):
        return value
    if isinstance(kind, tuple):
        if not isinstance(value, (tuple, list)):
            bad(f"{_a(value)}, not {kind[1]} numbers")
        if len(value) != kind[1]:
            bad(f"{len(value)} value{'s' * (len(value) != 1)}, not {kind[1]}")
        for i, x in enumerate(value):
            why = _fits("real", x)
            if why is None and rule and not rule.ok(x):
                why = "out of range"
            if why:
                bad(f"{key}[{i}]={x!r} is {why}")
        return tuple(value)
    if kind is None and rule is None:
        return value
    why = _fits(kind, value) if kind else None
    if why:
        bad(why)
    if rule:
        try:
            ok = bool(rule.ok(value))
        except (TypeError, ValueError):   # a rule given a value of no declared type
            ok = False
        if not ok:
            bad("not one of the choices" if kind == "choice" else "out of range")
    return value


def check_hparams(optimizer: str, values: dict, defaults: dict, rules: dict | None = None) -> dict:
    """Every one of `values` checked by `check_hparam` against its default and its rule (COMMON_RULES,
    then `rules`), in order; returns them checked. The registry's check, and that of an optimizer
    class that validates its hyperparameters when built (torch.optim's style)."""
    rules = {**{k: r for k, r in COMMON_RULES.items() if k in defaults}, **(rules or {})}
    return {k: check_hparam(optimizer, k, v, defaults[k], rules.get(k)) for k, v in values.items()}


# The search range of beta2 where an entry tunes it: 1 - beta2 in [1e-3, 1e-1], a log range of the
# EMA's horizon 1/(1 - beta2) of 10 to 1000 steps, centred on beta2 = 0.99 (the protocol's lattice is on
# log10(1 - beta2): workflows.engine.protocol)
BETA2_RANGE = (0.9, 0.999)


def tunable_names(spec: "OptimizerSpec") -> list[str]:
    """The hyperparameters a search range may name: the entry's real-valued ones, and beta2 where it
    tunes it (`OptimizerSpec.tunes_beta2`), sorted."""
    real = [k for k, v in spec.defaults.items() if _kind_of(v) == "real"]
    return sorted(real + (["beta2"] if spec.tunes_beta2 else []))


def search_range_error(spec: "OptimizerSpec", key: str, bounds) -> str | None:
    """Why (lo, hi) is not a log search range of hyperparameter `key` of `spec`, or None: the key
    must be one of `tunable_names(spec)`, 0 < lo < hi, and both ends valid values (beta2's range
    is of beta2 itself, below 1; the protocol's lattice on it is on 1 - beta2)."""
    real = tunable_names(spec)
    if key not in real:
        return f"not a real-valued hyperparameter of {spec.name!r}; valid: {', '.join(real)}"
    if not (isinstance(bounds, (tuple, list)) and len(bounds) == 2 and all(_is_real(b) for b in bounds)):
        return "must be two numbers [lo, hi]"
    lo, hi = bounds
    if not (math.isfinite(lo) and math.isfinite(hi) and 0 < lo < hi):
        return "an empty or non-positive range; valid: 0 < lo < hi (a log range)"
    for b in bounds:
        try:
            spec.hparams({key: float(b)})
        except HparamError as e:
            return f"{b!r} is not a valid value ({e.valid})"
    return None


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
    search: dict = field(default_factory=dict)   # hyperparameters tuned beyond lr: key -> (lo, hi),
    # a log range (workflows.engine.protocol samples lr_range × these); empty: lr alone matters
    takes: Callable[[str, torch.Tensor], bool] | None = None   # None: every parameter
    fallback: str | None = None  # registry name for the parameters `takes` refuses
    needs: frozenset = field(default_factory=frozenset)
    hessian_every: int = 10      # with needs "hessian": steps between Hessian estimates (Sophia's k)
    shared_state_bytes: Callable[[list], int] | None = None  # state shared by all the parameters it
    # takes (bitsandbytes' quantisation maps), from [(shape, dtype), ...]; none by default
    hparam_rules: dict = field(default_factory=dict)  # key -> Rule, beyond (or replacing) COMMON_RULES
    hparam_check: Callable[[dict], tuple[str, str, str] | None] | None = None  # a rule across
    # hyperparameters: hp -> None, or (key, why, valid) for the value it refuses
    package: str = "torch"       # distribution whose version is reported
    self_tuning: bool = False    # learning-rate-free (Prodigy, D-Adaptation): run at defaults["lr"]
    takes_schedule: bool = True  # False: brings its own (schedule-free), runs at constant lr
    decay: str = "matrices"      # which tensors weight decay reaches (optimizers.routing: "matrices" or "all")
    # as its authors intend, never tuned; its tuning sweep is that one value
    tunes_beta2: bool = False    # its update keeps Adam's second-moment EMA v = b2 v + (1 - b2) g^2 with
    # b2 = betas[1] (the Adam family, LAMB, schedule-free AdamW, MARS): on a task that tunes it, beta2 joins
    # its search space (BETA2_RANGE), and `hparams` hands it to the library as betas[1]. Not Lion (its
    # b2 interpolates the momentum it keeps, there is no second moment), not Sophia (its b2 averages the
    # Hessian estimate taken every k steps, not g^2), not Muon or MuonClip (their rule keeps no second
    # moment; a b2 would reach only the AdamW fallback's tensors, which take lr and weight decay alone)
    moments: dict = field(default_factory=lambda: dict(ADAM_MOMENTS))  # where the monitor reads the
    # first moment "m" and the second "v": Moments tried in order for each parameter; () none (the
    # monitor lists the state it has); a str: why the entry keeps none that is one
    step_flops: Callable[[tuple, dict], dict] | None = None   # (shape, hparams) -> {kind: FLOPs} of
    # one step's matrix work on a parameter (STEP_FLOP_KINDS), averaged over steps; None: elementwise
    # (its step moves bytes: the parameter, its gradient and state_bytes, workflows.engine.flops)

    def __post_init__(self):
        unknown = set(self.needs) - NEEDS
        if unknown:
            raise ValueError(f"{self.name}: unknown needs {sorted(unknown)}; valid: {sorted(NEEDS)}")
        if "lr" not in self.defaults:
            raise ValueError(f"{self.name}: defaults must include 'lr'")
        if (self.takes is None) != (self.fallback is None):
            raise ValueError(f"{self.name}: 'takes' and 'fallback' go together")
        stray = sorted(set(self.hparam_rules) - set(self.defaults))
        if stray:
            raise ValueError(f"{self.name}: hparam_rules for {stray}, which are not in its defaults")
        rules = self.rules()
        untyped = sorted(k for k, v in self.defaults.items()
                         if _kind_of(v) is None and not (k in rules and rules[k].kind))
        if untyped:
            raise ValueError(f"{self.name}: the defaults of {untyped} imply no type; give each a Rule with a kind")
        self.hparams()   # the defaults pass their own rules
        for key, bounds in self.search.items():
            why = search_range_error(self, key, bounds)
            if why:
                raise ValueError(f"{self.name}: search {key}={bounds!r}: {why}")
        if self.self_tuning and self.search:
            raise ValueError(f"{self.name}: a self-tuning entry is never tuned; its search must be empty")
        if self.tunes_beta2:
            kind = _kind_of(self.defaults.get("betas"))
            if not (isinstance(kind, tuple) and kind[1] >= 2) or "beta2" in self.defaults:
                raise ValueError(f"{self.name}: tunes_beta2 needs betas=(beta1, beta2, ...) among its defaults and "
                                 f"no beta2 of its own; its defaults: {', '.join(sorted(self.defaults))}")
            why = search_range_error(self, "beta2", BETA2_RANGE)
            if why:
                raise ValueError(f"{self.name}: beta2's range {BETA2_RANGE!r}: {why}")
        kinds = set(self.step_flops((2, 3), self.hparams())) if self.step_flops else set()
        if kinds - set(STEP_FLOP_KINDS):
            raise ValueError(f"{self.name}: step_flops kinds {sorted(kinds)}; valid: {', '.join(STEP_FLOP_KINDS)}")
        if set(self.moments) != {"m", "v"} or not all(
                isinstance(d, str) or (isinstance(d, tuple) and all(isinstance(x, Moment) for x in d))
                for d in self.moments.values()):
            raise ValueError(f"{self.name}: moments={self.moments!r}; valid: {{'m': ..., 'v': ...}}, each a "
                             f"tuple of Moment or a str (why the entry keeps none)")

    def search_space(self, beta2: bool = False) -> dict:
        """The tuned hyperparameters and their log ranges, lr first, then `search`'s, then beta2 where
        the task tunes it (`beta2`, tasks.Task.tunes_beta2) and the entry can; empty for a
        self-tuning entry."""
        if self.self_tuning:
            return {}
        tuned_beta2 = {"beta2": BETA2_RANGE} if beta2 and self.tunes_beta2 else {}
        return {"lr": tuple(self.lr_range), **{k: tuple(v) for k, v in self.search.items()}, **tuned_beta2}

    def rules(self) -> dict:
        """Every hyperparameter's Rule: the common ones for the keys it has, then its own."""
        return {**{k: r for k, r in COMMON_RULES.items() if k in self.defaults}, **self.hparam_rules}

    def hparams(self, overrides: dict | None = None) -> dict:
        """Defaults updated by `overrides`, each value checked (type from the default, range from
        the rules, then `hparam_check`) before any library sees it; HparamError names the first bad one."""
        overrides = dict(overrides or {})
        known = set(self.defaults) | ({"beta2"} if self.tunes_beta2 else set())
        unknown = sorted(set(overrides) - known, key=str)
        if unknown:
            raise HparamError(self.name, unknown[0], overrides[unknown[0]], "no such hyperparameter",
                              ", ".join(sorted(known)))
        if "beta2" in overrides:
            overrides = self._with_beta2(overrides)
        hp = check_hparams(self.name, {**self.defaults, **overrides}, self.defaults, self.hparam_rules)
        if self.hparam_check:
            refused = self.hparam_check(hp)
            if refused:
                key, why, valid = refused
                raise HparamError(self.name, key, hp[key], why, valid)
        return hp

    def _with_beta2(self, overrides: dict) -> dict:
        """`overrides` with beta2 (checked as a number in [0, 1)) put into betas: (beta1, beta2, ...)
        with beta1 and any later value from the overrides' betas (a task's, as the GAN's 0.5), else
        from the entry's defaults."""
        rule = COMMON_RULES["beta2"]
        beta2 = check_hparam(self.name, "beta2", overrides.pop("beta2"), self.defaults["betas"][1], rule)
        betas = overrides.get("betas", self.defaults["betas"])
        if isinstance(betas, (tuple, list)) and len(betas) >= 2:   # else the check of betas refuses it
            overrides["betas"] = (betas[0], beta2, *betas[2:])
        return overrides

    @property
    def version(self) -> str:
        from importlib.metadata import PackageNotFoundError, version
        try:
            return version(self.package)
        except PackageNotFoundError:
            return "unknown"


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
_BROKEN: list[tuple[str, str]] = []   # (file, error) of modules that failed to load


MACHINERY = ("_build", "memory", "routing")   # modules of the package that are not entries


def _load_all() -> None:
    """Import every entry module of the package on first use (every module but MACHINERY), so
    that `import optimizers` alone stays cheap. A module that raises (a SyntaxError, an
    ImportError, an error in its `register` call) is kept out whole, what it registered before
    raising included, with its file and error in `broken()`: the other entries and every
    command keep working, and the file is named wherever its names would be looked up."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for mod in pkgutil.iter_modules(__path__):
        if mod.name not in MACHINERY:
            before = set(_REGISTRY)
            try:
                importlib.import_module(f"{__name__}.{mod.name}")
            except Exception as e:   # noqa: BLE001 (any error of one file is that file's, reported by name)
                for name in set(_REGISTRY) - before:
                    del _REGISTRY[name], _SOURCES[name]
                _BROKEN.append((_shown(os.path.join(mod.module_finder.path, f"{mod.name}.py")),
                                f"{type(e).__name__}: {' '.join(str(e).split())}"))


def _shown(path: str) -> str:
    """A module's file as a user finds it: relative to the directory above the package when inside it."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = os.path.abspath(path)
    return os.path.relpath(path, root) if path.startswith(root + os.sep) else path


def broken() -> list[tuple[str, str]]:
    """(file, error) of every module of the package that failed to load, in the order they were tried."""
    _load_all()
    return list(_BROKEN)


def _broken_note() -> str:
    return "".join(f" ({f} failed to load: {e})" for f, e in broken())


def names() -> list[str]:
    _load_all()
    return sorted(_REGISTRY)


def get(name: str) -> OptimizerSpec:
    _load_all()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown optimizer {name!r}; valid: {', '.join(names())}{_broken_note()}") from None


from optimizers._build import build_optimizer, group_entries, state_bytes, model_state_bytes  # noqa: E402

__all__ = ["OptimizerSpec", "register", "search_range_error", "tunable_names", "BETA2_RANGE", "get", "names",
           "build_optimizer", "state_bytes", "model_state_bytes", "NEEDS", "HparamError", "Rule", "COMMON_RULES",
           "above", "at_least", "at_most", "within", "one_of", "check_hparams", "Moment", "MOMENT_READS",
           "ADAM_MOMENTS", "STEP_FLOP_KINDS", "group_entries"]
