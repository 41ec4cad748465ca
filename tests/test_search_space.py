"""The search space and the coordinate-wise protocol over it: every tuned entry gets exactly the
budget, on one lattice, no point twice, landing near a synthetic optimum wherever it lies inside
the hard limits (by extension beyond the first grid) and saying why where it cannot; bad profile
input refused, by the schema where it says what is valid, by the registry where only it knows."""
import math
from pathlib import Path

import pytest
import yaml

import optimizers
import tasks
from workflows.engine import config as profile_config
from workflows.engine import pairs, protocol

TUNING = {"trials": 10, "seeds": [100, 101]}
SMOKE = Path(__file__).resolve().parent.parent / "workflows/config/smoke.yaml"
MIN_TASK = "quadratic-k1e2"   # a metric to minimise: the synthetic score is the metric
# a lattice point's log10 is k / 2**m exactly up to the float of 10**x and its log10: 1e-9 is far
# above that rounding (~1e-15) and far below the finest step any test here reaches (1/16 decade)
ON_LATTICE = 1e-9


def smoke() -> dict:
    """The smoke profile, fresh (the check fills defaults in place)."""
    return yaml.safe_load(SMOKE.read_text())


def tunable(task):
    return [n for n in optimizers.names() if not optimizers.get(n).self_tuning
            and pairs.compatible(tasks.get(task), optimizers.get(n)) is None]


def drive(space: dict, optimum: dict, budget: int, diverge_above: float = math.inf):
    """The protocol run to its end on a synthetic score: a quadratic in the decades of each
    coordinate (lr, weight decay, 1 - beta2) from `optimum` (the others' at half lr's weight), +inf
    where lr > `diverge_above`. Returns the trials as (hparams, score), their stages, and the selection."""
    tried, stages = [], []
    while len(tried) < budget and (found := protocol.next_step(space, tried)) is not None:
        hparams, stage = found
        assert protocol.next_trial(space, tried, budget) == hparams   # the pure function's answer
        score = sum((1 if k == "lr" else 0.5) * coordinate_decades(k, hparams[k], v) ** 2 for k, v in optimum.items())
        tried.append((hparams, math.inf if hparams["lr"] > diverge_above else score))
        stages.append(stage)
    assert protocol.next_trial(space, tried, budget) is None
    runs = [{"trial": i, "tuned": h, "final_metric": s, "diverged": math.isinf(s)} for i, (h, s) in enumerate(tried)]
    return tried, stages, protocol.select(runs, MIN_TASK, space)


def decades(x: float, y: float) -> float:
    return abs(math.log10(x / y))


def coordinate_decades(key: str, x: float, y: float) -> float:
    """Signed decades from y to x in the coordinate the protocol's lattice is on (1 - x for beta2)."""
    c = protocol.COORDINATES[key]
    return c.log(x) - c.log(y)


def on_lattice(value: float, per_decade: int) -> bool:
    k = math.log10(value) * per_decade
    return abs(k - round(k)) < ON_LATTICE


def tuned_entries():
    return [n for n in optimizers.names() if not optimizers.get(n).self_tuning]


@pytest.mark.parametrize("name", tuned_entries())
def test_every_tuned_entry_gets_exactly_the_budget_on_one_lattice_and_lands_near_the_optimum(name):
    space = optimizers.get(name).search_space()
    first = protocol.next_trial(space, [], TUNING["trials"])   # the grid's lowest lr at the decay's centre
    # off the lattice inside the first grid: lr 0.3 decade above its centre, weight decay 0.8 below
    # its centre (the decay moves, so lr is tried again at the new one)
    optimum = {"lr": first["lr"] * 10 ** 1.3, **({"weight_decay": first["weight_decay"] / 10 ** 0.8}
                                                 if "weight_decay" in space else {})}
    tried, stages, sel = drive(space, optimum, TUNING["trials"])
    assert len(tried) == TUNING["trials"], name
    points = [tuple(sorted(h.items())) for h, _ in tried]
    assert len(set(points)) == len(points), f"{name}: a point run twice"
    assert decades(sel["hparams"]["lr"], optimum["lr"]) <= 0.25, (name, sel["hparams"])
    assert not any(sel["at_edge"].values()) and set(sel["edge_reason"].values()) == {""}, (name, sel)
    for (h, _), stage in zip(tried, stages):   # the stages' lr on the half-decade lattice, the rest finer
        assert on_lattice(h["lr"], 2 if stage != "refine" else 16), (name, stage, h)
        assert "weight_decay" not in h or on_lattice(h["weight_decay"], 1), (name, h)
    assert stages[:5] == ["lr"] * 5 and set(stages) <= set(protocol.STAGES)
    assert "refine" in stages or len(space) > 1   # lr alone: 5 grid points leave 5 to refine
    if "weight_decay" in space:
        assert decades(sel["hparams"]["weight_decay"], optimum["weight_decay"]) <= 0.5, (name, sel["hparams"])
        assert "weight_decay" in stages and "lr-again" in stages


def test_every_declared_range_lies_inside_the_hard_limits():
    for name in tuned_entries():
        for key, (lo, hi) in optimizers.get(name).search_space(beta2=True).items():
            limits = protocol.HARD_LIMITS[key]   # a KeyError: a tuned key the protocol has no lattice for
            assert limits[0] <= lo < hi <= limits[1], (name, key, (lo, hi), limits)


def test_entries_with_the_same_range_centre_share_their_grid_and_every_grid_is_on_one_lattice():
    firsts = {}
    for name in tuned_entries():
        space = optimizers.get(name).search_space()
        first = protocol.next_trial(space, [], 10)
        assert on_lattice(first["lr"], 2), name
        firsts.setdefault(space["lr"], set()).add(first["lr"])
    assert all(len(v) == 1 for v in firsts.values())
    assert protocol.next_trial({"lr": (1e-5, 1.0)}, [], 10) == {"lr": 10 ** -3.5}   # centre 10**-2.5, 2 below


def test_an_optimum_beyond_the_first_grid_is_reached_by_extension():
    space = {"lr": (1e-5, 1.0)}                    # first grid 10**-3.5 … 10**-1.5
    tried, stages, sel = drive(space, {"lr": 10 ** -0.2}, 10)
    assert stages.count("lr-extension") >= 3
    assert decades(sel["hparams"]["lr"], 10 ** -0.2) <= 0.25 and not sel["at_edge"]["lr"]
    below, stages2, sel2 = drive(space, {"lr": 3e-6}, 10)   # below it, the same rule
    assert "lr-extension" in stages2 and decades(sel2["hparams"]["lr"], 3e-6) <= 0.25 and not sel2["at_edge"]["lr"]


def test_weight_decay_beyond_its_first_points_is_reached_by_decades():
    space = {"lr": (1e-5, 1.0), "weight_decay": (1e-3, 1.0)}   # decay grid 0.01, 0.1, 1
    tried, stages, sel = drive(space, {"lr": 3e-3, "weight_decay": 1e-4}, 12)
    assert "weight_decay-extension" in stages and sel["hparams"]["weight_decay"] == pytest.approx(1e-4)
    assert not sel["at_edge"]["weight_decay"]


def test_an_optimum_beyond_the_hard_limit_is_flagged_as_such():
    assert protocol.HARD_LIMITS["lr"] == (1e-7, 1e3)
    space = {"lr": (1.0, 100.0)}   # first grid 1 … 100, extended by 10**2.5 to the limit 1e3
    tried, stages, sel = drive(space, {"lr": 1e4}, 10)
    assert stages[:7] == ["lr"] * 5 + ["lr-extension"] * 2
    assert sel["hparams"]["lr"] == pytest.approx(1e3)
    assert max(h["lr"] for h, _ in tried) <= protocol.HARD_LIMITS["lr"][1] * (1 + ON_LATTICE)
    assert sel["at_edge"] == {"lr": True} and sel["edge_reason"] == {"lr": "hard limit"}
    assert len(tried) == 10   # the budget left goes to refinement below the limit


def test_an_lr_above_the_old_limit_of_10_is_reached_and_interior():
    # the published convex selections that stopped at 10: with the limit at 1e3 the extension goes
    # on past 10 and the selection is interior (31.6 best, 100 tried and worse)
    tried, stages, sel = drive({"lr": (1e-3, 3.0)}, {"lr": 31.6}, 14)
    assert sel["hparams"]["lr"] == pytest.approx(10 ** 1.5) and not sel["at_edge"]["lr"]
    assert max(h["lr"] for h, _ in tried) == pytest.approx(100.0)


def test_an_extension_cut_by_the_budget_says_so():
    tried, stages, sel = drive({"lr": (1e-5, 1.0)}, {"lr": 5.0}, 6)
    assert stages == ["lr"] * 5 + ["lr-extension"]
    assert sel["edge_reason"] == {"lr": "budget"} and sel["stopped_in"] == "lr-extension"


def test_diverged_trials_push_the_search_below_them():
    # every lr above 1e-3 diverges: the best finite point is at the grid's bottom, extended below
    tried, stages, sel = drive({"lr": (1e-5, 1.0)}, {"lr": 1e-5}, 10, diverge_above=1e-3)
    assert "lr-extension" in stages and sel["hparams"]["lr"] <= 1e-3 and not sel["all_diverged"]
    assert decades(sel["hparams"]["lr"], 1e-5) <= 0.25


def test_the_minimum_budget_is_what_the_stages_need():
    # 5 lr; each further hyperparameter 3 points around the point the stage before ran: 2 new; then
    # 2 lr again and 1 spare for an extension
    assert [protocol.min_trials(n) for n in (0, 1, 2, 3)] == [1, 5, 10, 12]
    assert protocol.min_trials(protocol.search_space("lm-stdlib", "adamw")) == 12
    assert protocol.min_trials(protocol.search_space("lm-stdlib", "adam")) == 10   # lr, beta2 (L2 decay untuned)
    assert protocol.min_trials(protocol.search_space("lm-stdlib", "muon")) == 10   # lr, weight_decay


def test_the_minimum_budget_is_checked_naming_the_value_and_the_minimum():
    with pytest.raises(ValueError, match=r"tuning.trials=9: adamw on cnn-digits tunes lr, weight_decay, whose "
                                         r"protocol needs at least 10 trials \(5 lr \+ 2 weight_decay \+ 2 lr "
                                         r"again \+ 1 spare for an extension: each of weight_decay has 3 points, "
                                         r"its centre run by the stage before\); valid: >= 10"):
        protocol.check_trials({"trials": 9}, [("cnn-digits", "adamw")])
    with pytest.raises(ValueError, match=r"tuning.trials=11: adamw on lm-stdlib tunes lr, weight_decay, beta2, "
                                         r"whose protocol needs at least 12 trials \(5 lr \+ 2 weight_decay \+ "
                                         r"2 beta2 \+ 2 lr again .*\); valid: >= 12"):
        protocol.check_trials({"trials": 11}, [("cnn-digits", "adamw"), ("lm-stdlib", "adamw")])
    protocol.check_trials({"trials": 12}, [("lm-stdlib", "adamw"), ("lm-stdlib", "muon")])
    with pytest.raises(ValueError, match=r"tuning.trials=4: sgd on cnn-digits .* at least 5 trials \(5 lr\)"):
        protocol.check_trials({"trials": 4}, [("cnn-digits", "sgd")])
    protocol.check_trials({"trials": 10}, [("cnn-digits", "adamw"), ("cnn-digits", "sgd")])
    protocol.check_trials({"trials": 5}, [("quadratic-k1e2", "adamw")])   # its decay reaches no tensor: lr alone
    with pytest.raises(ValueError, match=r"tuning trials=0: must be a whole number >= 1"):
        protocol.next_trial({"lr": (1e-3, 1.0)}, [], 0)


def test_decoupled_decay_is_tuned_with_lr_and_lr_alone_elsewhere():
    assert set(protocol.search_space("cnn-digits", "adamw", TUNING)) == {"lr", "weight_decay"}
    assert set(protocol.search_space("cnn-digits", "muon", TUNING)) == {"lr", "weight_decay"}
    assert set(protocol.search_space("cnn-digits", "lion", TUNING)) == {"lr", "weight_decay"}
    assert set(protocol.search_space("cnn-digits", "sgd", TUNING)) == {"lr"}
    for name in tunable("quadratic-k1e2"):   # every space's keys have a lattice and hard limits
        assert set(protocol.search_space("quadratic-k1e2", name, TUNING)) <= set(protocol.HARD_LIMITS), name


def test_a_profile_replaces_an_entrys_ranges_and_with_them_the_grids_centre():
    tuning = TUNING | {"search": {"adamw": {"weight_decay": [0.01, 0.1], "lr": [1e-4, 1e-2]}}}
    space = protocol.search_space("quadratic-k1e2", "adamw", tuning)
    assert space == {"lr": (1e-4, 1e-2), "weight_decay": (0.01, 0.1)}
    # centres: lr 1e-3, weight decay 10**-1.5 rounded up the decade lattice to 0.1
    assert protocol.next_trial(space, [], 10) == pytest.approx({"lr": 1e-4, "weight_decay": 0.1})
    protocol.check_tuning(tuning, ["adam", "adamw"])


@pytest.mark.parametrize("tuning, message", [
    (TUNING | {"search": {"adamw": {"wd": [0.01, 0.1]}}},
     r"tuning.search.adamw.wd=\[0.01, 0.1\]: not a real-valued hyperparameter of 'adamw'; valid: beta2, eps, lr, "
     r"weight_decay"),
    (TUNING | {"search": {"adamw": {"weight_decay": [0.1, 0.1]}}}, r"weight_decay=\[0.1, 0.1\]: an empty .* 0 < lo < hi"),
    (TUNING | {"search": {"adamw": {"lr": [1e-2, 1e-4]}}}, r"lr=\[0.01, 0.0001\]: an empty"),
    (TUNING | {"search": {"adamw": {"weight_decay": [0.0, 0.1]}}}, r"weight_decay=\[0.0, 0.1\]: an empty or non-positive"),
    (TUNING | {"search": {"momentum": {"momentum": [0.5, 1.5]}}}, r"1.5 is not a valid value \(a finite number in \[0, 1\)"),
    (TUNING | {"search": {"adamw": {"betas": [0.5, 0.9]}}}, r"betas=.*not a real-valued"),
    (TUNING | {"search": {"adamw": {}}}, r"tuning.search.adamw=\{\}: must map hyperparameter -> \[lo, hi\], at least one"),
    (TUNING | {"search": {"lion": {"lr": [1e-4, 1e-2]}}}, r"unknown optimizer 'lion'; valid: the profile's adamw, momentum"),
    (TUNING | {"search": {"adamw": {"lr": [1e-4, 1e-2], "eps": [1e-9, 1e-7]}}},
     r"tuning.search.adamw.eps: the protocol has no lattice and hard limits for 'eps'; valid: lr, weight_decay, beta2"),
    (TUNING | {"search": {"adamw": {"weight_decay": [0.01, 0.1]}}}, r"lacks lr, the protocol's first coordinate"),
    (TUNING | {"search": {"adamw": {"lr": [1e-9, 1e-2]}}},
     r"lr=\[1e-09, 0.01\]: outside the hard limits; valid: 1e-07 <= lo < hi <= 1000"),
    (TUNING | {"search": {"adamw": {"lr": [1e-4, 1e-2], "beta2": [0.5, 0.99]}}},
     r"beta2=\[0.5, 0.99\]: outside the hard limits; valid: 0.9 <= lo < hi <= 0.9999"),
    (TUNING | {"search": {"adamw": {"lr": [1e-4, 1e-2], "beta2": [0.9, 1.0]}}},
     r"beta2=\[0.9, 1.0\]: 1.0 is not a valid value \(a finite number in \[0, 1\) \(default 0.999\)\)"),
])
def test_a_search_space_the_registry_refuses_is_refused_naming_the_value_and_what_is_valid(tuning, message):
    with pytest.raises(ValueError, match=message):
        protocol.check_tuning(tuning, ["adamw", "momentum"])


@pytest.mark.parametrize("name, valid", [("lion", "lr, weight_decay"), ("sophia", "lr, rho, weight_decay"),
                                         ("muon", None)])
def test_a_profile_searching_beta2_of_an_entry_without_adams_second_moment_is_refused_naming_the_valid_keys(name, valid):
    # Lion's beta2 interpolates its momentum, Sophia's averages its Hessian estimate, Muon keeps none:
    # no beta2 to search; the message names the keys that are
    tuning = TUNING | {"search": {name: {"lr": [1e-4, 1e-2], "beta2": [0.9, 0.999]}}}
    with pytest.raises(ValueError, match=rf"tuning.search.{name}.beta2=\[0.9, 0.999\]: not a real-valued "
                                         rf"hyperparameter of '{name}'; valid: (?P<valid>.*)$") as raised:
        protocol.check_tuning(tuning, [name])
    names = str(raised.value).rsplit("valid: ", 1)[1].split(", ")
    assert "beta2" not in names and "lr" in names and names == optimizers.tunable_names(optimizers.get(name))
    assert valid is None or names == valid.split(", ")
    protocol.check_tuning(TUNING | {"search": {"adamw": {"lr": [1e-4, 1e-2], "beta2": [0.9, 0.999]}}}, ["adamw"])


@pytest.mark.parametrize("tuning, message", [
    (TUNING | {"grid_points": 4},
     r"tuning: .*'grid_points' was unexpected\); valid: trials, seeds, steps_fraction, full_horizon, search, horizon_check, "
     r"repeats"),
    (TUNING | {"trials": 0}, r"tuning.trials: 0 is less than the minimum of 1"),
    (TUNING | {"trials": True}, r"tuning.trials: True is not of type 'integer'"),
    (TUNING | {"seeds": []}, r"tuning.seeds: \[\] should be non-empty"),
    (TUNING | {"seeds": [100, 100]}, r"tuning.seeds: \[100, 100\] has non-unique elements"),
    (TUNING | {"steps_fraction": 1.5}, r"tuning.steps_fraction: 1.5 is greater than the maximum of 1"),
    (TUNING | {"search": [1]}, r"tuning.search: \[1\] is not of type 'object'"),
    (TUNING | {"search": {"adamw": {"lr": [1e-4]}}}, r"tuning.search.adamw.lr: \[0.0001\] is too short"),
    (TUNING | {"horizon_check": {"cnn-digits": []}}, r"tuning.horizon_check.cnn-digits: \[\] should be non-empty"),
    (TUNING | {"repeats": {"tasks": ["cnn-digits"], "seeds": [[101]]}}, r"tuning.repeats.seeds: \[\[101\]\] is too short"),
    (TUNING | {"repeats": {"seeds": [[101], [102]]}}, r"tuning.repeats: 'tasks' is a required property"),
])
def test_a_tuning_mapping_of_the_wrong_shape_is_refused_by_the_schema(tuning, message):
    with pytest.raises(profile_config.ConfigError, match=message):
        profile_config.check(smoke() | {"tuning": tuning})


def test_one_tuning_seed_and_the_default_budget_are_a_valid_profile():
    # the default budget is what the largest space needs (lr, weight decay and beta2 on the LM)
    cfg = profile_config.check(smoke() | {"tuning": {"seeds": [100]}})
    assert cfg["tuning"]["trials"] == protocol.min_trials(3) == 12 and cfg["tuning"]["horizon_check"] == {}
    assert cfg["tuning"]["repeats"] == {"tasks": [], "seeds": [[101], [102], [103]]}


def test_a_profile_under_the_protocols_budget_is_refused_before_any_job():
    with pytest.raises(profile_config.ConfigError, match=r"config tuning.trials=8: .* needs at least 10 trials"):
        profile_config.check(smoke() | {"tuning": TUNING | {"trials": 8}})


def test_a_registry_refusal_reaches_the_profile_check():
    with pytest.raises(profile_config.ConfigError, match=r"config tuning.search: unknown optimizer 'kron'"):
        profile_config.check(smoke() | {"tuning": TUNING | {"search": {"kron": {"lr": [1e-4, 1e-2]}}}})


def test_an_entry_declaring_a_bad_search_range_is_refused():
    spec = optimizers.get("adamw")
    with pytest.raises(ValueError, match=r"search weight_decay=\(1.0, 0.001\): an empty"):
        optimizers.OptimizerSpec(**{**spec.__dict__, "name": "x", "search": {"weight_decay": (1.0, 1e-3)}})
