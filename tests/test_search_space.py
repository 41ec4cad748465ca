"""The search space and its quasi-random design: the same number of trials for every optimizer,
every point inside its ranges, the same points on every call; bad profile input refused, by the
schema where it says what is valid, by the registry where only it knows."""
import math
from pathlib import Path

import pytest
import yaml

import optimizers
import tasks
from workflows.engine import config as profile_config
from workflows.engine import pairs, protocol

TUNING = {"trials": 8, "seeds": [100, 101]}
SMOKE = Path(__file__).resolve().parent.parent / "workflows/config/smoke.yaml"


def smoke() -> dict:
    """The smoke profile, fresh (the check fills defaults in place)."""
    return yaml.safe_load(SMOKE.read_text())


def tunable(task):
    return [n for n in optimizers.names() if not optimizers.get(n).self_tuning
            and pairs.compatible(tasks.get(task), optimizers.get(n)) is None]


def test_every_optimizer_gets_the_same_number_of_trials_inside_its_ranges():
    for name in tunable("quadratic-k1e2"):
        space = protocol.search_space("quadratic-k1e2", name, TUNING)
        points = protocol.trials("quadratic-k1e2", name, TUNING)
        assert len(points) == 8, name
        assert list(space)[0] == "lr" and all(list(p) == list(space) for p in points)
        for p in points:
            assert all(lo <= p[k] <= hi for k, (lo, hi) in space.items()), (name, p)


def test_decoupled_decay_is_tuned_with_lr_and_lr_alone_elsewhere():
    assert set(protocol.search_space("cnn-digits", "adamw", TUNING)) == {"lr", "weight_decay"}
    assert set(protocol.search_space("cnn-digits", "muon", TUNING)) == {"lr", "weight_decay"}
    assert set(protocol.search_space("cnn-digits", "lion", TUNING)) == {"lr", "weight_decay"}
    assert set(protocol.search_space("cnn-digits", "sgd", TUNING)) == {"lr"}


def test_the_design_is_deterministic_and_stratified_on_every_axis():
    space = {"lr": (1e-5, 1.0), "weight_decay": (1e-3, 1.0)}
    a, b = protocol.design(space, 8), protocol.design(space, 8)
    assert a == b   # the same generator output mapped by the same arithmetic
    # A scrambled Sobol sequence of 2**3 points puts one point in each eighth of every axis.
    for key, (lo, hi) in space.items():
        cells = sorted(int(8 * math.log(p[key] / lo) / math.log(hi / lo)) for p in a)
        assert cells == list(range(8)), key
    assert protocol.design({}, 8) == [{}]


def test_a_profile_replaces_an_entrys_ranges():
    tuning = TUNING | {"search": {"adamw": {"weight_decay": [0.01, 0.1], "lr": [1e-4, 1e-2]}}}
    assert protocol.search_space("quadratic-k1e2", "adamw", tuning) == {"lr": (1e-4, 1e-2), "weight_decay": (0.01, 0.1)}
    for p in protocol.trials("quadratic-k1e2", "adamw", tuning):
        assert 1e-4 <= p["lr"] <= 1e-2 and 0.01 <= p["weight_decay"] <= 0.1
    protocol.check_tuning(tuning, ["adam", "adamw"])


@pytest.mark.parametrize("tuning, message", [
    (TUNING | {"search": {"adamw": {"wd": [0.01, 0.1]}}},
     r"tuning.search.adamw.wd=\[0.01, 0.1\]: not a real-valued hyperparameter of 'adamw'; valid: eps, lr, weight_decay"),
    (TUNING | {"search": {"adamw": {"weight_decay": [0.1, 0.1]}}}, r"weight_decay=\[0.1, 0.1\]: an empty .* 0 < lo < hi"),
    (TUNING | {"search": {"adamw": {"lr": [1e-2, 1e-4]}}}, r"lr=\[0.01, 0.0001\]: an empty"),
    (TUNING | {"search": {"adamw": {"weight_decay": [0.0, 0.1]}}}, r"weight_decay=\[0.0, 0.1\]: an empty or non-positive"),
    (TUNING | {"search": {"momentum": {"momentum": [0.5, 1.5]}}}, r"1.5 is not a valid value \(a finite number in \[0, 1\)"),
    (TUNING | {"search": {"adamw": {"betas": [0.5, 0.9]}}}, r"betas=.*not a real-valued"),
    (TUNING | {"search": {"adamw": {}}}, r"tuning.search.adamw=\{\}: must map hyperparameter -> \[lo, hi\], at least one"),
    (TUNING | {"search": {"lion": {"lr": [1e-4, 1e-2]}}}, r"unknown optimizer 'lion'; valid: the profile's adamw, momentum"),
])
def test_a_search_space_the_registry_refuses_is_refused_naming_the_value_and_what_is_valid(tuning, message):
    with pytest.raises(ValueError, match=message):
        protocol.check_tuning(tuning, ["adamw", "momentum"])


@pytest.mark.parametrize("tuning, message", [
    (TUNING | {"grid_points": 4}, r"tuning: .*'grid_points' was unexpected\); valid: trials, seeds, steps_fraction, search"),
    (TUNING | {"trials": 0}, r"tuning.trials: 0 is less than the minimum of 1"),
    (TUNING | {"trials": True}, r"tuning.trials: True is not of type 'integer'"),
    (TUNING | {"seeds": [100]}, r"tuning.seeds: \[100\] is too short"),
    (TUNING | {"seeds": [100, 100]}, r"tuning.seeds: \[100, 100\] has non-unique elements"),
    (TUNING | {"steps_fraction": 1.5}, r"tuning.steps_fraction: 1.5 is greater than the maximum of 1"),
    (TUNING | {"search": [1]}, r"tuning.search: \[1\] is not of type 'object'"),
    (TUNING | {"search": {"adamw": {"lr": [1e-4]}}}, r"tuning.search.adamw.lr: \[0.0001\] is too short"),
])
def test_a_tuning_mapping_of_the_wrong_shape_is_refused_by_the_schema(tuning, message):
    with pytest.raises(profile_config.ConfigError, match=message):
        profile_config.check(smoke() | {"tuning": tuning})


def test_a_registry_refusal_reaches_the_profile_check():
    with pytest.raises(profile_config.ConfigError, match=r"config tuning.search: unknown optimizer 'kron'"):
        profile_config.check(smoke() | {"tuning": TUNING | {"search": {"kron": {"lr": [1e-4, 1e-2]}}}})


def test_an_entry_declaring_a_bad_search_range_is_refused():
    spec = optimizers.get("adamw")
    with pytest.raises(ValueError, match=r"search weight_decay=\(1.0, 0.001\): an empty"):
        optimizers.OptimizerSpec(**{**spec.__dict__, "name": "x", "search": {"weight_decay": (1.0, 1e-3)}})
