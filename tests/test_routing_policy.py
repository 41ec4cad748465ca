"""An entry is what its name says on a task, or it does not run there.

An entry with a parameter policy (`OptimizerSpec.takes`: Muon's hidden matrices, Shampoo's
preconditionable tensors, SparseAdam's embeddings) hands what it refuses to its fallback. On a model
where it takes nothing, every tensor is the fallback's and the pair is the fallback under another
name: no profile may run it. Generic over the profiles, the measurements and the registries, so a
new profile, task or entry is checked without a new test. The models are built at smoke size: which
tensors a model has (their names and number of dimensions) does not depend on its size.
"""
from __future__ import annotations

from pathlib import Path

import pytest

import optimizers
from workflows.engine import config as configs
from workflows.engine import measurements
from workflows.engine.pairs import named_parameters, takes_any

PROFILES = sorted(p.stem for p in (Path(__file__).parents[1] / "workflows" / "config").glob("*.yaml"))


@pytest.mark.parametrize("profile", PROFILES)
def test_no_profile_runs_an_entry_that_updates_nothing_with_its_own_rule(profile):
    config = configs.load(Path("workflows/config") / f"{profile}.yaml")
    pairs = sorted({(t, o) for m in measurements.table() for t, o in m.jobs(config)})
    hollow = [f"{t}/{o}" for t, o in pairs if not takes_any(t, o)]
    assert not hollow, (f"profile {profile}: these pairs update no tensor with the entry's own rule "
                        f"(everything goes to its fallback): {hollow}")


def test_the_check_can_fail():
    # Muon on the quadratic: its one tensor is 1-D, Muon's policy takes none (the pair would be AdamW)
    assert not takes_any("quadratic-k1e2", "muon")
    # ... and on the CNN it takes the conv filters, flattened to 2-D (Jordan's speedrun)
    taken = [n for n, p in named_parameters("cnn-digits") if optimizers.get("muon").takes(n, p)]
    assert taken and all(p.ndim == 4 for n, p in named_parameters("cnn-digits") if n in taken)
