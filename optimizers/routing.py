"""Which optimizer gets which parameter, and which parameters decay: the routing of an entry.

An entry whose ``takes`` refuses a parameter hands it to its ``fallback`` (Muon's 2-D hidden
matrices to Muon, the rest to AdamW; Shampoo's tensors with a dimension above its limit to AdamW).
Within each part the parameters form at most two groups, by the decay policy:

- ``"matrices"`` (the default): tensors of two or more dimensions decay -- linear and conv weights,
  and embedding tables; tensors of fewer (biases, norm gains, scalars) get ``weight_decay`` 0.
  This is nanoGPT's rule (``configure_optimizers``: ``p.dim() >= 2`` decays, embeddings included)
  and the usual LM recipe: decaying a gain or a bias pulls it toward 0, which is not a smaller
  function but a different one (a norm gain of 0 switches its features off). Embeddings decay, as
  in nanoGPT, because a tied or untied embedding table is a weight matrix like any other and
  excluding it would need a name-based rule that every task's naming would have to follow.
- ``"all"``: every parameter decays with the entry's ``weight_decay`` (torch's default, and
  what a task that reproduces a paper which decays everything asks for).

The exempt group is made only when the part has a ``weight_decay`` hyperparameter, it is not 0,
and the part holds an exempt parameter: otherwise the part gets its parameters as one plain list,
exactly as before groups existed. A group's lr is the part's; the harness's schedule scales every
group's lr by the same factor.

`plan` is the one place this is decided; `optimizers.build_optimizer` builds from it and `routing`
tabulates it for the report.
"""
from __future__ import annotations

import torch

import optimizers

DECAY_POLICIES = {
    "matrices": "tensors of 2 or more dimensions decay (weights, embeddings); biases, norm gains and "
                "scalars do not",
    "all": "every parameter decays",
}


def check_decay(policy: str) -> None:
    if policy not in DECAY_POLICIES:
        raise ValueError(f"decay policy {policy!r}; valid: {', '.join(DECAY_POLICIES)}")


def decays(policy: str, p: torch.Tensor) -> bool:
    """Whether parameter `p` decays under `policy`."""
    check_decay(policy)
    return policy == "all" or p.ndim >= 2


def split_parameters(spec, named_params):
    """(taken, rest) by the entry's parameter policy; `rest` goes to the fallback."""
    named_params = [(n, p) for n, p in named_params if p.requires_grad]
    if spec.takes is None:
        return named_params, []
    taken = [(n, p) for n, p in named_params if spec.takes(n, p)]
    rest = [(n, p) for n, p in named_params if not spec.takes(n, p)]
    return taken, rest


def decay_groups(named_params, hp: dict, policy: str) -> list[dict]:
    """One part's parameter groups: ``{"names", "params", "weight_decay"}``, where weight_decay is
    None when the group keeps the part's own (no override) and the part has none to keep."""
    wd = hp.get("weight_decay")
    exempt = [(n, p) for n, p in named_params if not decays(policy, p)]
    if not wd or not exempt:
        return [{"names": [n for n, _ in named_params], "params": [p for _, p in named_params],
                 "weight_decay": wd}]
    decayed = [(n, p) for n, p in named_params if decays(policy, p)]
    groups = [{"names": [n for n, _ in decayed], "params": [p for _, p in decayed], "weight_decay": wd}]
    groups = groups if decayed else []
    return groups + [{"names": [n for n, _ in exempt], "params": [p for _, p in exempt], "weight_decay": 0.0}]


def plan(name: str, named_params, hparams: dict | None = None, decay: str | None = None) -> list[dict]:
    """The parts of entry `name` over `named_params`: ``{"entry", "fallback", "hparams", "groups"}``,
    the entry's part first. The fallback, if any, gets the entry's lr and weight_decay and its own
    other defaults."""
    spec = optimizers.get(name)
    decay = spec.decay if decay is None else decay   # None: the entry's policy (a task may override it)
    check_decay(decay)
    hp = spec.hparams(hparams)
    taken, rest = split_parameters(spec, list(named_params))
    parts = []
    if taken or not rest:
        parts.append({"entry": name, "fallback": False, "hparams": hp, "decay": decay,
                      "groups": decay_groups(taken, hp, decay)})
    if rest:
        fb = optimizers.get(spec.fallback)
        fb_hp = fb.hparams({k: hp[k] for k in ("lr", "weight_decay") if k in hp and k in fb.defaults})
        parts.append({"entry": spec.fallback, "fallback": True, "hparams": fb_hp, "decay": decay,
                      "groups": decay_groups(rest, fb_hp, decay)})
    return parts


def torch_groups(part: dict):
    """What the part's optimizer is built on: a plain parameter list for one group that keeps the
    part's decay, else torch param-group dicts (the exempt one with ``weight_decay`` 0)."""
    groups = part["groups"]
    if len(groups) == 1 and groups[0]["weight_decay"] == part["hparams"].get("weight_decay"):
        return groups[0]["params"]
    return [{"params": g["params"], "weight_decay": g["weight_decay"]} for g in groups]


def routing(name: str, named_params, hparams: dict | None = None, decay: str | None = None,
            parts: list | None = None) -> list[dict]:
    """One row per parameter group of entry `name` over `named_params` (as ``model.named_parameters()``):
    ``part`` (the registry entry that updates it), ``fallback`` (True for the entry's fallback),
    ``tensors``, ``numel``, ``lr`` (the peak lr, before any schedule), ``weight_decay`` (None: the
    part has no such hyperparameter), ``decay`` (the policy) and ``names`` (every parameter, in order)."""
    rows = []
    for part in plan(name, named_params, hparams, decay) if parts is None else parts:   # parts: planned already
        for g in part["groups"]:
            if not g["params"]:
                continue
            rows.append({"part": part["entry"], "fallback": part["fallback"], "tensors": len(g["params"]),
                         "numel": sum(p.numel() for p in g["params"]), "lr": part["hparams"]["lr"],
                         "weight_decay": g["weight_decay"], "decay": part["decay"], "names": list(g["names"])})
    return rows
