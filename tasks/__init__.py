"""The task registry.

Every file in this package defines one task family: it registers its base task with
`register(Task(...))` and each variant of it (the same problem with some fields changed: another
build option, size, schedule or optimizer default) with `base.variant(name, description, **changes)`.
The registry is filled by importing every module, so adding a task is adding a file.

A task has sizes per profile (smoke / cpu / gpu), a metric with a direction and a target, and a
`build(size, seed, device, dtype)` that returns a `Problem`: the model, the batches (the same
order for every optimizer at a seed), the loss, the evaluation (the validation split: what tuning
selects on), the held-out test split (`Problem.test`: what the report shows; none where the metric
is the objective itself), a hash of its data (`hash_data`: what defines the data, the test split
included, in bits that are the same on every machine) and optional hooks (known optimum, Hessian
sample for Sophia, attention max-logit probe for MuonClip).

Randomness during training is a function of (seed, step): batches come from the stream of their
step, and the Hessian loss draws from a generator the harness derives from (seed, step) and passes
in, so a run resumed from a checkpoint draws what the uninterrupted run draws.
"""
from __future__ import annotations

import contextlib
import hashlib
import dataclasses
import importlib
import os
import pkgutil
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, NamedTuple


SIZES = ("smoke", "cpu", "gpu")
DIRECTIONS = ("min", "max")

# What a task's Problem may provide to the training loop (`Task.provides`); the engine pairs these
# with what an optimizer needs (optimizers.NEEDS) and with the run's options.
PROVIDES = frozenset({
    "hessian",                   # Problem.hessian_loss: Sophia's Gauss-Newton-Bartlett loss
    "attention_logits",          # Problem.attention_logits and qk_weights: MuonClip's QK-clip
    "activation_checkpointing",  # Problem.activation_checkpointing: recompute activations in backward
    "autocast",                  # the model runs under torch.autocast (mixed precision)
})
# What a task may require of an optimizer's entry (`Task.requires`), a subset of optimizers.NEEDS.
REQUIRES = frozenset({
    "sparse",                    # its gradients include sparse tensors (nn.Embedding(sparse=True))
})


def invalid(owner: str, what: str, value, valid) -> ValueError:
    """The one shape of a refused value in this package: who refuses it, what it is, the value, and
    the valid ones."""
    return ValueError(f"{owner}: {what} {value!r} is not valid; valid: {', '.join(map(str, valid))}")


@dataclass(frozen=True)
class Metric:
    name: str
    direction: str          # "min" or "max"
    target: float           # time-to-target threshold

    def __post_init__(self):
        if self.direction not in DIRECTIONS:
            raise invalid(f"metric {self.name!r}", "direction", self.direction, DIRECTIONS)

    def reached(self, value: float) -> bool:
        return value <= self.target if self.direction == "min" else value >= self.target

    def better(self, a: float, b: float) -> bool:
        return a < b if self.direction == "min" else a > b


@dataclass
class Problem:
    """One built instance of a task: everything the harness needs to train and evaluate."""
    model: torch.nn.Module
    batch: Callable[[int], Any]                 # batch(step) -> batch; deterministic in (seed, step)
    loss: Callable[[torch.nn.Module, Any], torch.Tensor]
    evaluate: Callable[[torch.nn.Module], dict]  # {metric.name: value, ...}; extra keys are kept
    data_hash: str
    optimum: float | None = None                 # f* where known
    hessian_loss: Callable[[torch.nn.Module, Any, torch.Generator], torch.Tensor] | None = None
    # hessian_loss(model, batch, generator): loss on labels sampled with `generator` from the model
    # (Sophia's GNB); the harness passes a generator of the step's own stream, on the run's device
    attention_logits: Callable[[torch.nn.Module, Any], torch.Tensor] | None = None  # [layers, heads] max logits
    qk_weights: list | None = None   # [(W_q, W_k, n_heads)] per layer, head h = rows h*d:(h+1)*d (MuonClip)
    extras: dict = field(default_factory=dict)  # anything a task wants in its results
    activation_checkpointing: Callable[[torch.nn.Module], None] | None = None  # turns it on for
    # the model: activations recomputed in backward, block by block (the LM; task provides it)
    hparam_defaults: dict = field(default_factory=dict)  # optimizer defaults that depend on the
    # built size, applied like Task.hparam_defaults: Sophia's bs = samples behind one Hessian estimate
    samples: Callable[[torch.nn.Module], torch.Tensor] | None = None  # [n, 2] points drawn from the
    # trained model, kept in the result for the report's pictures (a GAN's generated samples)
    test: Callable[[torch.nn.Module], dict] | None = None  # the metric on the held-out test split,
    # evaluated once at the end of a final run (the harness's `test=True`), at the evaluation point,
    # never during tuning: {metric.name: value, "n_test": examples it averages over, "se": the
    # standard error of that mean from the per-example values (`mean_and_se`), any extra keys};
    # disjoint from the training and validation data (other images of a shipped set, or draws from
    # a stream of its own, `generator(seed, "<task>:test")`), and drawing from no other stream and
    # not from torch's global RNG, so that evaluating it changes nothing in training. None where
    # the metric is the objective itself, with a known optimum (the convex and non-convex test
    # functions, and logreg-cancer's exact suboptimality of a fixed finite sum): nothing is sampled,
    # so selection has no evaluation sample to over-fit
    data_splits: Callable[[], dict] | None = None  # the raw data of the splits, for baselines that
    # need the data and not the model (the LM's byte n-gram and compressor: {"train": bytes,
    # "test_windows": [n, T+1] ids the test metric scores}); and where the splits are parts of one
    # fixed data set, their identity: "train_index", "validation_index", "test_index", 1-D integer
    # tensors of the items (images, corpus bytes) each holds, disjoint (tests/test_tasks.py checks
    # it; a task whose test split is a fresh draw shows it by its stream's name instead)


@dataclass(frozen=True)
class Task:
    name: str
    family: str
    description: str
    metric: Metric
    sizes: dict                                   # size -> kwargs for build (steps, batch, dims...)
    build: Callable[..., Problem]                 # build(size_kwargs, seed, device, dtype) -> Problem
    eval_every: int = 10
    provides: frozenset = frozenset()   # what its Problem provides, from PROVIDES (checked)
    requires: frozenset = frozenset()   # what an optimizer must declare to run it, from REQUIRES (checked)
    hparam_defaults: dict = field(default_factory=dict)  # task-specific optimizer defaults, e.g. the
    # GAN's betas=(0.5, 0.999): applied to every entry that has the key, before tuning overrides
    schedule: dict | None = None    # a task that fixes its runs' schedule (an ablation of the profile's)
    decay: str | None = None        # which tensors weight decay reaches (optimizers.routing); None: the entry's
    fixed_lr: float | None = None   # a task that reproduces a published setting (seed 003's toy at
    # lr 0.1) is not tuned: its sweep is this one value for every optimizer
    selection_of: dict = field(default_factory=dict)   # optimizer -> (task, optimizer) whose tuned
    # selection its runs take instead of a sweep of their own: an ablation of one setting (MuonClip's
    # QK-clip on lm-stdlib-qk at lm-stdlib's Muon selection) that changes nothing else
    tunes_beta2: bool = False   # beta2 is tuned with lr (and weight decay) for every entry whose update
    # keeps Adam's second moment (optimizers.OptimizerSpec.tunes_beta2): the LM, whose short runs make
    # the default 0.999's 1000-step memory a choice to search, not a given; elsewhere every entry runs at
    # its default beta2 (or the task's hparam_defaults betas: the GAN's (0.5, 0.999))
    figure: Callable[[], dict] | None = None   # what the report's generic figures draw beside the
    # runs, as plain data (aggregation writes it to figures.json; the report never imports a task):
    # "plane": {"xlim", "ylim", "contour": {"x", "y", "z", "label"}, "points": [{"x", "y", "label"}]}
    # for tasks whose evaluation or samples are 2-D points; "printed": {"optimizer", "series",
    # "source", "values": {step: value}, "note"} for a published trajectory to set beside ours

    def __post_init__(self):
        owner = f"task {self.name!r}"
        missing = [s for s in SIZES if s not in self.sizes]
        if missing:
            raise ValueError(f"{owner}: no size {', '.join(missing)}; every task needs {', '.join(SIZES)}")
        for size, kw in self.sizes.items():
            if size not in SIZES:
                raise invalid(owner, "size", size, SIZES)
            steps = kw.get("steps")
            if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
                raise invalid(f"{owner} size {size!r}", "steps", steps, ["an integer >= 1"])
        for what, given, valid in (("provides", self.provides, PROVIDES), ("requires", self.requires, REQUIRES)):
            if isinstance(given, str):     # frozenset("hessian") would be a set of letters
                raise invalid(owner, what, given, ["a frozenset of " + ", ".join(sorted(valid))])
            unknown = sorted(set(given) - valid)
            if unknown:
                raise invalid(owner, what, unknown[0], sorted(valid))
        if not isinstance(self.eval_every, int) or self.eval_every < 1:
            raise invalid(owner, "eval_every", self.eval_every, ["an integer >= 1"])
        if self.fixed_lr is not None and not self.fixed_lr > 0:
            raise invalid(owner, "fixed_lr", self.fixed_lr, ["None", "a number > 0"])

    def variant(self, name: str, description: str, **changes) -> Task:
        """Register and return a variant of this task: the same task under another `name` and
        `description`, with the fields in `changes` replaced (e.g. ``build=functools.partial(build,
        batchnorm=True)``, ``schedule={...}``, ``hparam_defaults={...}``). Its source is the file
        that calls this, like `register`'s."""
        fields = sorted(f.name for f in dataclasses.fields(self) if f.name not in ("name", "description"))
        unknown = sorted(set(changes) - set(fields))
        if unknown:
            raise invalid(f"task {name!r} (a variant of {self.name!r})", "field", unknown[0], fields)
        return _add(dataclasses.replace(self, name=name, description=description, **changes), sys._getframe(1))

    def size(self, size: str) -> dict:
        if size not in self.sizes:
            raise KeyError(f"task {self.name!r} has no size {size!r}; valid: {', '.join(self.sizes)}")
        return dict(self.sizes[size])

    def make(self, size: str, seed: int, device="cpu", dtype=None) -> Problem:
        import torch
        return self.build(self.size(size), seed=seed, device=torch.device(device), dtype=dtype or torch.float32)


_REGISTRY: dict[str, Task] = {}
_SOURCES: dict[str, str] = {}


def register(task: Task) -> Task:
    """Register a task family's base task (its variants: `Task.variant`)."""
    return _add(task, sys._getframe(1))


def _add(task: Task, caller) -> Task:
    if task.name in _REGISTRY:
        raise ValueError(f"task {task.name!r} is registered twice")
    _REGISTRY[task.name] = task
    _SOURCES[task.name] = caller.f_globals.get("__file__", "")
    return task


def source(name: str) -> str:
    """The file that registers `name`: the pipeline reruns a task's jobs when it changes."""
    get(name)
    return _SOURCES[name]


def names() -> list[str]:
    _load_all()
    return sorted(_REGISTRY)


def get(name: str) -> Task:
    _load_all()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown task {name!r}; valid: {', '.join(names())}{_broken_note()}") from None


class Shipped(NamedTuple):
    """A floating-point tensor exactly as read from a data set an installed package ships (parsing a
    file is exact), before any arithmetic: `hash_data` accepts it."""
    tensor: torch.Tensor


def hash_data(*parts) -> str:
    """The data hash in every result: sha256 (16 hex digits) of what defines a task's data, in a
    form whose bits are the same on every machine.

    Float arithmetic rounds differently on different CPUs (vectorised kernels, FMA, the C
    library's log/sin/cos: even ``torch.randn``'s Box-Muller transform, which is why a normal draw
    is not hashed as a float), so a hash of computed floats would be a hash of the machine as well.
    Each part is one of:

    - an integer, bool or uint8 tensor (ids, labels, indices, a byte corpus), hashed with its
      shape and dtype; an integer computed by comparing floats (a sampled label) is stable except
      where a draw lands within a rounding error of a boundary, about 1e-16 per draw;
    - `Shipped(tensor)`: floats exactly as loaded from a shipped data set;
    - a `torch.Generator` (from `generator`): its seed, which fixes every draw of its stream;
    - numbers, strings, None, and tuples / lists / dicts of them (sizes, task constants), floats
      written exactly (`float.hex`).

    Any other floating-point tensor is refused (TypeError).
    """
    import torch
    h = hashlib.sha256()

    def value(x) -> str:
        if x is None or isinstance(x, (bool, int, str)):
            return repr(x)
        if isinstance(x, float):
            return x.hex()
        if isinstance(x, (tuple, list)):
            return "(" + ",".join(value(v) for v in x) + ")"
        if isinstance(x, dict):
            return "{" + ",".join(f"{value(k)}:{value(v)}" for k, v in sorted(x.items())) + "}"
        raise TypeError(f"hash_data: cannot hash {type(x).__name__} {x!r} bit-stably")

    for part in parts:
        if isinstance(part, Shipped):
            part = part.tensor
        elif isinstance(part, torch.Tensor) and (part.is_floating_point() or part.is_complex()):
            raise TypeError(f"hash_data: a {part.dtype} tensor is the result of float arithmetic, whose "
                            "last bits differ between CPUs; hash what defines it (integer draws, "
                            "the generator, the constants) or wrap shipped data in Shipped(...)")
        if isinstance(part, torch.Tensor):
            t = part.detach().cpu().contiguous()
            h.update(f"{tuple(t.shape)}{t.dtype}".encode())
            h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        elif isinstance(part, torch.Generator):
            h.update(f"generator:{part.initial_seed()};".encode())
        else:
            h.update(f"value:{value(part)};".encode())
    return h.hexdigest()[:16]


def generator(seed: int, stream: str) -> torch.Generator:
    """A CPU generator for one named random stream of a run (data, init, noise...), so that
    changing one stream never shifts another and every optimizer sees the same data."""
    import torch
    digest = hashlib.sha256(f"{stream}:{seed}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))


def device_generator(seed: int, stream: str, device) -> torch.Generator:
    """`generator`'s stream on `device` (CUDA sampling needs a CUDA generator)."""
    import torch
    g = torch.Generator(device=device)
    g.manual_seed(generator(seed, stream).initial_seed())
    return g


def sampled_label_loss(logits: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Cross-entropy against labels drawn from the model's own softmax. Its gradient ĝ gives the
    Gauss-Newton-Bartlett estimate B·ĝ⊙ĝ of the Hessian's diagonal that Sophia needs (Liu et al.
    2024, Algorithm 2): the `hessian_loss` of every classification-shaped task."""
    import torch
    with torch.no_grad():
        if not bool(torch.isfinite(logits).all()):   # overflow: nothing to sample from (and on
            # CUDA, multinomial would stop the process with a device-side assert)
            raise FloatingPointError("non-finite logits in the Hessian loss")
        sampled = torch.multinomial(torch.softmax(logits.float(), -1), 1, generator=generator).squeeze(1)
    return torch.nn.functional.cross_entropy(logits, sampled)


def mean_and_se(values: torch.Tensor) -> tuple[float, float]:
    """The mean of per-example values and its standard error, the plug-in sqrt(mean((v - mean)²) / n)
    (float64): for 0/1 values (an accuracy p) exactly sqrt(p (1 - p) / n)."""
    import torch
    v = values.detach().to("cpu", torch.float64).reshape(-1)
    mean = v.mean()
    return float(mean), float(((v - mean) ** 2).mean().sqrt() / len(v) ** 0.5)


def flat64(model) -> torch.Tensor:
    """The model's parameters as one float64 CPU vector, in `model.parameters()` order: where an
    evaluation computes in float64 whatever the run's dtype."""
    import torch
    return torch.cat([p.detach().reshape(-1).to("cpu", torch.float64) for p in model.parameters()])


@contextlib.contextmanager
def seeded(seed: int, stream: str):
    """Module initialisation from a named stream, without touching the global RNG's state."""
    import torch
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(generator(seed, stream).initial_seed())
        yield


_loaded = False
_BROKEN: list[tuple[str, str]] = []   # (file, error) of modules that failed to load


def _load_all() -> None:
    """Import every task module on first use, so that `import tasks` alone stays cheap. A module
    that raises (a SyntaxError, an ImportError, an error in its `register` call) is kept out
    whole, what it registered before raising included, with its file and error in `broken()`:
    the other tasks and every command keep working."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for mod in pkgutil.iter_modules(__path__):
        if not mod.name.startswith("_") and not mod.ispkg:
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
