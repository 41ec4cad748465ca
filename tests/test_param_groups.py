"""Parameter groups: no weight decay reaches a tensor of fewer than two dimensions by default, in
every registry entry that has a weight_decay (its fallback included), and `routing` states it.

The check is behavioural, not a read of param_groups: a library that kept its own decay for
biases (MARS's fixed 1-D branch does, unless the entry passes the group's) must fail it.
"""
import pytest
import torch

import optimizers
from optimizers import build_optimizer
from optimizers.routing import DECAY_POLICIES, routing

WITH_DECAY = [n for n in optimizers.names() if "weight_decay" in optimizers.get(n).defaults]
WD = 0.5


class Net(torch.nn.Module):
    """A hidden matrix (Muon's), its bias, a norm gain and bias, an embedding table and a head."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.embed = torch.nn.Parameter(torch.randn(10, 6, generator=g))
        self.hidden = torch.nn.Linear(6, 6)
        self.norm = torch.nn.LayerNorm(6)
        self.head = torch.nn.Linear(6, 3)
        with torch.no_grad():
            for p in (self.hidden.bias, self.norm.weight, self.norm.bias, self.head.bias):
                p.copy_(1.0 + torch.rand(p.shape, generator=g))   # far from 0: decay would show


def one_step(name, decay="matrices"):
    """Every tensor of 2+ dimensions gets a random gradient, every 1-D one a zero gradient, then one
    step at weight_decay WD; returns {name: (before, after)}."""
    net = Net()
    named = list(net.named_parameters())
    before = {n: p.detach().clone() for n, p in named}
    opt = build_optimizer(name, named, {"weight_decay": WD}, decay=decay)
    g = torch.Generator().manual_seed(1)
    for n, p in named:
        p.grad = torch.randn(p.shape, generator=g) if p.ndim >= 2 else torch.zeros_like(p)
    opt.step()
    return {n: (before[n], p.detach()) for n, p in named}


@pytest.mark.parametrize("name", WITH_DECAY)
def test_no_decay_reaches_a_1d_parameter_by_default(name):
    moved = {n: float((a - b).abs().max()) for n, (b, a) in one_step(name).items() if b.ndim < 2}
    # A zero gradient from a zero state moves a parameter only through decay, which here would be
    # lr·WD·|θ| ≥ lr·0.5·1 (1e-6 or more at any entry's default lr); 1e-9 leaves room for rounding
    # of an update that is 0 up to an eps-sized term and nothing else.
    assert all(v <= 1e-9 for v in moved.values()), moved
    assert all(r["weight_decay"] in (0.0, None) for r in routing(name, Net().named_parameters(), {"weight_decay": WD})
               if any(n.endswith("bias") or n.startswith("norm") for n in r["names"]))


@pytest.mark.parametrize("name", ["adamw", "lion", "muon", "shampoo", "adamw8bit", "sophia", "mars"])
def test_decay_all_decays_1d_parameters_too(name):
    """The control: with policy "all", the same zero-gradient 1-D parameters shrink (so the test
    above can fail), for entries whose libraries decay directly and in the fallback of Muon."""
    for n, (b, a) in one_step(name, decay="all").items():
        if b.ndim < 2:
            assert float(a.abs().sum()) < float(b.abs().sum()), n


def test_routing_muon_states_parts_decay_and_lr():
    rows = routing("muon", Net().named_parameters(), {"lr": 0.02, "weight_decay": 0.1})
    by = {(r["part"], r["weight_decay"]): r for r in rows}
    assert by[("muon", 0.1)]["names"] == ["hidden.weight"]
    assert by[("adamw", 0.1)]["names"] == ["embed", "head.weight"]          # embeddings decay (nanoGPT)
    assert by[("adamw", 0.0)]["names"] == ["hidden.bias", "norm.weight", "norm.bias", "head.bias"]
    assert all(r["lr"] == 0.02 for r in rows)
    assert [r["fallback"] for r in rows] == [False, True, True]
    assert sum(r["numel"] for r in rows) == sum(p.numel() for p in Net().parameters())
    assert sum(r["tensors"] for r in rows) == len(list(Net().parameters()))


def test_routing_without_decay_is_one_group_per_part():
    rows = routing("adam", Net().named_parameters())          # Adam's L2 weight_decay is 0 by default
    assert len(rows) == 1 and rows[0]["weight_decay"] == 0.0 and rows[0]["tensors"] == 7
    rows = routing("sgd", Net().named_parameters(), decay="all")
    assert len(rows) == 1 and rows[0]["decay"] == "all"


def test_routing_of_an_entry_without_weight_decay_says_none():
    rows = routing("sparse-adam", [("embed", torch.nn.Parameter(torch.ones(10, 4))),
                                   ("bias", torch.nn.Parameter(torch.ones(4)))])
    assert [(r["part"], r["weight_decay"]) for r in rows] == [("sparse-adam", None), ("adam", 0.0)]


def test_unknown_decay_policy_is_refused_naming_the_valid_ones():
    with pytest.raises(ValueError, match="decay policy 'biases'; valid: " + ", ".join(DECAY_POLICIES)):
        build_optimizer("adamw", Net().named_parameters(), decay="biases")


@pytest.mark.parametrize("name", WITH_DECAY)
def test_routing_states_what_the_built_optimizer_holds(name):
    """The table the report prints is the optimizer's own param_groups: each parameter's lr and
    weight_decay as routed equal those of the group that holds it."""
    net = Net()
    named = list(net.named_parameters())
    hp = {"weight_decay": WD}
    opt = build_optimizer(name, named, hp)
    held = {id(p): g for g in opt.param_groups for p in g["params"]}
    by_name = dict(named)
    for row in routing(name, named, hp):
        for n in row["names"]:
            g = held[id(by_name[n])]
            assert (g["lr"], g["weight_decay"]) == (row["lr"], row["weight_decay"]), (n, row)
