"""Turn a registry entry into an optimizer over a model's parameters, and count its state."""
from __future__ import annotations

import torch

import optimizers
from optimizers.routing import plan, split_parameters, torch_groups


class Composite(torch.optim.Optimizer):
    """Several optimizers over disjoint parameter sets, stepped together.

    Muon-style entries take only some parameters (2-D hidden matrices) and hand the rest to a
    fallback such as AdamW; the training loop still sees one optimizer.
    """

    def __init__(self, parts: dict[str, torch.optim.Optimizer]):
        self.parts = parts
        self.defaults = {}
        self._step_hooks = {}

    @property
    def param_groups(self):
        return [g for opt in self.parts.values() for g in opt.param_groups]

    @property
    def state(self):
        merged = {}
        for opt in self.parts.values():
            merged.update(opt.state)
        return merged

    def step(self, closure=None):
        loss = None
        for opt in self.parts.values():
            out = opt.step(closure)
            loss = out if loss is None else loss
            closure = None  # evaluate the closure once
        return loss

    def zero_grad(self, set_to_none: bool = True):
        for opt in self.parts.values():
            opt.zero_grad(set_to_none=set_to_none)

    def state_dict(self):
        return {name: opt.state_dict() for name, opt in self.parts.items()}

    def load_state_dict(self, state_dict):
        for name, opt in self.parts.items():
            opt.load_state_dict(state_dict[name])

    def __getattr__(self, name):
        # Training-loop hooks (update_hessian, qk_clip) live on the part that defines them.
        for opt in self.__dict__.get("parts", {}).values():
            if hasattr(opt, name):
                return getattr(opt, name)
        raise AttributeError(name)

    def __repr__(self):
        return f"Composite({', '.join(self.parts)})"


def build_optimizer(name: str, named_params, hparams: dict | None = None,
                    decay: str | None = None, parts: list | None = None) -> torch.optim.Optimizer:
    """Build registry entry `name` over `named_params` ((name, tensor) pairs, as model.named_parameters()).

    The parts and their parameter groups are `optimizers.routing.plan`'s: the fallback, if any,
    gets the entry's lr and weight_decay and its own other defaults, and under the `decay` policy
    (None: the entry's `decay`, "matrices" unless it says otherwise) tensors of fewer than two
    dimensions get weight_decay 0 in every part.
    """
    parts = plan(name, named_params, hparams, decay) if parts is None else parts   # parts: a plan made already
    built = {p["entry"]: optimizers.get(p["entry"]).build(torch_groups(p), **p["hparams"]) for p in parts}
    for entry, opt in built.items():
        opt.registry_entry = entry   # which entry's declarations (moments) describe its state
    if not any(p["fallback"] for p in parts):
        return built[name]
    return Composite(built)


def group_entries(optimizer: torch.optim.Optimizer) -> list[str]:
    """The registry entry that updates each of the optimizer's parameter groups, in their order
    (an optimizer `build_optimizer` made)."""
    parts = optimizer.parts.values() if isinstance(optimizer, Composite) else [optimizer]
    try:
        return [opt.registry_entry for opt in parts for _ in opt.param_groups]
    except AttributeError:
        raise TypeError(f"{optimizer!r} was not made by optimizers.build_optimizer: its groups belong "
                        f"to no registry entry") from None


def state_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Exact bytes of every tensor in the optimizer's state, each storage counted once."""
    seen, total = set(), 0

    def visit(x):
        nonlocal total
        if isinstance(x, torch.Tensor):
            storage = x.untyped_storage()
            key = (storage.data_ptr(), x.device)
            if key not in seen:
                seen.add(key)
                total += storage.nbytes()
        elif isinstance(x, dict):
            for v in x.values():
                visit(v)
        elif isinstance(x, (list, tuple)):
            for v in x:
                visit(v)
        elif hasattr(x, "__dict__") and not isinstance(x, type):
            visit(vars(x))  # e.g. bitsandbytes keeps quantisation state in small objects

    for state in optimizer.state.values():
        visit(state)
    return total


def model_state_bytes(name: str, named_params, hparams: dict | None = None) -> int:
    """The registry's analytic state bytes for these parameters, the fallback's share included."""
    spec = optimizers.get(name)
    taken, rest = split_parameters(spec, list(named_params))
    total = 0
    for entry, params in ((spec, taken), (optimizers.get(spec.fallback) if rest else None, rest)):
        if params:
            total += sum(entry.state_bytes(tuple(p.shape), p.dtype) for _, p in params)
            if entry.shared_state_bytes:
                total += entry.shared_state_bytes([(tuple(p.shape), p.dtype) for _, p in params])
    return total
