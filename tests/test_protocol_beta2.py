"""β2 as a tuned hyperparameter: on a task that tunes it (the LM), every entry whose update keeps
Adam's second moment searches lr, weight decay (where it applies) and beta2 on the decade lattice
of 1 − β2 inside its hard limits, within the budget the stages need; no other entry and no other
task has it; and the value reaches the library as betas[1], β1 the entry's or the task's."""
import math

import pytest

import optimizers
import tasks
from workflows.engine import pairs, protocol
from workflows.engine.harness import RunConfig, setup, task_defaults

from test_search_space import ON_LATTICE, coordinate_decades, decades, drive, on_lattice

LM = "lm-stdlib"
BUDGET = protocol.min_trials(3)   # 12: what the profiles give
# the entries whose update has Adam's second-moment EMA with beta2 = betas[1]
FAMILY = ["adam", "adamw", "nadam", "adam8bit", "adamw8bit", "lamb", "schedulefree-adamw", "mars",
          "adam-ref", "adamw-ref"]
# beta2 is Lion's momentum interpolation, Sophia's Hessian EMA; Muon keeps no second moment
NOT_FAMILY = ["lion", "sophia", "muon", "muonclip"]


def tunable(task: str) -> list[str]:
    return [n for n in optimizers.names() if not optimizers.get(n).self_tuning
            and pairs.compatible(tasks.get(task), optimizers.get(n)) is None]


def beta2_entries() -> list[str]:
    return [n for n in tunable(LM) if optimizers.get(n).tunes_beta2]


def test_the_family_declares_beta2_and_the_others_do_not():
    assert all(optimizers.get(n).tunes_beta2 for n in FAMILY)
    assert not any(optimizers.get(n).tunes_beta2 for n in NOT_FAMILY)
    assert set(FAMILY) - {"adam8bit", "adamw8bit"} <= set(beta2_entries())   # bitsandbytes may be absent
    assert tasks.get(LM).tunes_beta2 and all(tasks.get(t).tunes_beta2 for t in tasks.names() if t.startswith(LM))
    assert not tasks.get("gan-ring8").tunes_beta2


@pytest.mark.parametrize("name", beta2_entries())
def test_every_beta2_entry_on_the_lm_searches_lr_decay_and_beta2_on_the_lattice_within_the_budget(name):
    space = protocol.search_space(LM, name)
    decayed = "weight_decay" in optimizers.get(name).search
    assert list(space) == ["lr"] + ["weight_decay"] * decayed + ["beta2"], (name, space)
    assert space["beta2"] == optimizers.BETA2_RANGE == (0.9, 0.999)
    first = protocol.next_trial(space, [], BUDGET)
    assert first["beta2"] == pytest.approx(0.99)   # the centre of 1 - beta2 in [1e-3, 1e-1]
    # lr 0.3 decade above its centre, decay 0.8 below, 1 - beta2 at 0.02: the first stage's 0.99 is best
    optimum = {"lr": first["lr"] * 10 ** 1.3, "beta2": 0.98,
               **({"weight_decay": first["weight_decay"] / 10 ** 0.8} if decayed else {})}
    tried, stages, sel = drive(space, optimum, BUDGET)
    assert len(tried) == BUDGET, name
    points = [tuple(sorted(h.items())) for h, _ in tried]
    assert len(set(points)) == len(points), f"{name}: a point run twice"
    lo, hi = protocol.HARD_LIMITS["beta2"]
    for h, _ in tried:   # every beta2 on the decade lattice of 1 - beta2, inside the limits
        assert on_lattice(1 - h["beta2"], 1) and lo * (1 - ON_LATTICE) <= h["beta2"] <= hi * (1 + ON_LATTICE), (name, h)
    beta2_tried = sorted({round(h["beta2"], 9) for h, _ in tried})
    assert beta2_tried == [0.9, 0.99, 0.999], (name, beta2_tried)   # the first stage, at the best lr
    first = stages.index("beta2")   # after lr's and weight decay's stages, before lr again
    assert stages.count("beta2") == 2, (name, stages)
    assert set(stages[:first]) <= {"lr", "lr-extension", "weight_decay", "weight_decay-extension"}, (name, stages)
    assert not set(stages[first:]) & {"lr", "weight_decay", "weight_decay-extension"}, (name, stages)
    # lr again only where a coordinate moved from its centre (the decay, 0.8 decade off); beta2 stays at
    # 0.99, where the lr stage ran both lr neighbours already
    assert ("lr-again" in stages) == decayed, (name, stages)
    assert decades(sel["hparams"]["lr"], optimum["lr"]) <= 0.25, (name, sel)
    assert abs(coordinate_decades("beta2", sel["hparams"]["beta2"], optimum["beta2"])) <= 0.5, (name, sel)
    assert not any(sel["at_edge"].values()), (name, sel)


def test_beta2_past_its_first_points_is_extended_by_decades_to_its_hard_limit():
    space = {"lr": (1e-5, 1.0), "beta2": (0.9, 0.999)}
    tried, stages, sel = drive(space, {"lr": 3e-3, "beta2": 0.99995}, BUDGET)   # 1 - beta2 = 5e-5
    assert "beta2-extension" in stages and sel["hparams"]["beta2"] == pytest.approx(0.9999)
    assert sel["at_edge"]["beta2"] and sel["edge_reason"]["beta2"] == "hard limit"
    assert max(h["beta2"] for h, _ in tried) <= protocol.HARD_LIMITS["beta2"][1] * (1 + ON_LATTICE)
    tried, stages, sel = drive(space, {"lr": 3e-3, "beta2": 0.5}, BUDGET)   # below the lowest limit, 0.9
    assert sel["hparams"]["beta2"] == pytest.approx(0.9) and sel["edge_reason"]["beta2"] == "hard limit"
    assert "beta2-extension" not in stages   # 1 - beta2 = 1 is outside: nothing to extend to
    tried, stages, sel = drive(space, {"lr": 3e-3, "beta2": 0.9996}, BUDGET)   # 1 - beta2 = 4e-4: 0.999 nearest
    assert "beta2-extension" in stages and not sel["at_edge"]["beta2"]


def test_no_other_entry_on_the_lm_and_no_entry_elsewhere_has_beta2():
    for name in tunable(LM):
        if not optimizers.get(name).tunes_beta2:
            assert "beta2" not in protocol.search_space(LM, name), name
    assert set(NOT_FAMILY) <= set(tunable(LM))
    for task in tasks.names():
        if tasks.get(task).tunes_beta2:
            continue
        for name in tunable(task):
            assert "beta2" not in protocol.search_space(task, name), (task, name)


def test_the_space_without_beta2_is_what_it_was():
    # no task but the LM changes its trials: the first grids of the CNN and the quadratic as before
    assert protocol.search_space("cnn-digits", "adamw") == {"lr": (1e-5, 1.0), "weight_decay": (1e-3, 1.0)}
    assert [round(math.log10(protocol.next_trial({"lr": (1e-5, 1.0)}, [], 5)["lr"]), 9)] == [-3.5]


def test_beta2_reaches_the_library_as_betas_with_the_entrys_beta1():
    for name in FAMILY:
        spec = optimizers.get(name)
        beta1, *rest = spec.defaults["betas"][:1] + spec.defaults["betas"][2:]
        assert spec.hparams({"beta2": 0.95})["betas"] == (beta1, 0.95, *rest), name
        assert "beta2" not in spec.hparams({"beta2": 0.95}), name   # the library never sees the name
    assert optimizers.get("mars").hparams({"beta2": 0.9})["betas"] == (0.95, 0.9)   # MARS's own beta1


def test_a_run_on_the_lm_builds_its_optimizer_with_the_tuned_beta2():
    run = setup(RunConfig(LM, "adamw", hparams={"lr": 1e-3, "weight_decay": 0.1, "beta2": 0.99}))
    assert run.cfg.to_dict()["hparams"] == {"beta2": 0.99, "lr": 1e-3, "weight_decay": 0.1}   # the record's key
    assert {tuple(g["betas"]) for g in run.opt.param_groups} == {(0.9, 0.99)}


def test_the_gans_beta1_stays_and_its_beta2_is_not_tuned():
    gan = tasks.get("gan-ring8")
    for name in ("adam", "adamw"):
        assert "beta2" not in protocol.search_space("gan-ring8", name)
        spec = optimizers.get(name)
        assert spec.hparams(task_defaults(gan, spec) | {"lr": 1e-3})["betas"] == (0.5, 0.999)
        # were beta2 given on the GAN, beta1 would still be the task's
        assert spec.hparams(task_defaults(gan, spec) | {"beta2": 0.99})["betas"] == (0.5, 0.99)
    run = setup(RunConfig("gan-ring8", "adam", hparams={"lr": 1e-3}))
    assert {tuple(g["betas"]) for g in run.opt.param_groups} == {(0.5, 0.999)}


@pytest.mark.parametrize("name, hparams, message", [
    ("lion", {"beta2": 0.99}, r"optimizer 'lion': invalid beta2=0.99: no such hyperparameter; valid: betas, lr, weight_decay$"),
    ("muon", {"beta2": 0.99}, r"optimizer 'muon': invalid beta2=0.99: no such hyperparameter; valid: (?!.*beta2)"),
    ("adamw", {"beta3": 0.99}, r"invalid beta3=0.99: no such hyperparameter; valid: beta2, betas, eps, lr, weight_decay$"),
    ("adamw", {"beta2": 1.0}, r"invalid beta2=1.0: out of range; valid: a finite number in \[0, 1\) \(default 0.999\)"),
    ("adamw", {"beta2": "0.99"}, r"invalid beta2='0.99': a string, not a number"),
])
def test_beta2_is_validated_by_name(name, hparams, message):
    with pytest.raises(optimizers.HparamError, match=message):
        optimizers.get(name).hparams(hparams)


def test_the_tables_name_beta2_and_its_lattice():
    space = protocol.search_space(LM, "adamw")
    assert protocol.describe_space(space) == (
        "lr half-decade lattice from 0.00316 (range 1e-05…1), weight_decay decade lattice from 0.1 "
        "(range 0.001…1), beta2 decade lattice of 1 − beta2 from 0.99 (range 0.9…0.999)")
    assert protocol.describe_limits(space) == "lr 1e-07…1000, weight_decay 1e-06…10, beta2 0.9…0.9999"
    assert protocol.STAGES.index("beta2") > protocol.STAGES.index("weight_decay-extension")


def test_a_coordinate_that_changes_the_score_by_less_than_a_tie_stops_at_its_first_points():
    # the LM's AdamW space; the score depends on lr and beta2 only, and on weight decay by 1e-5 of it
    # per decade downward (noise far under TIE = 1e-3 of the score): without the tie rule weight decay
    # would walk to its hard limit 1e-6 and cut the beta2 stage
    space = protocol.search_space("lm-stdlib", "adamw")
    assert list(space) == ["lr", "weight_decay", "beta2"]
    tried, stages = [], []
    while (found := protocol.next_trial(space, tried, 12)) is not None:
        h = found
        score = 1.0 + math.log10(h["lr"] / 1e-2) ** 2 + math.log10((1 - h["beta2"]) / 1e-3) ** 2 \
            - 1e-5 * math.log10(10.0 / h["weight_decay"])
        tried.append((h, score))
    decays = sorted({h["weight_decay"] for h, _ in tried})
    assert len(decays) == 3   # the stage's three points, no extension
    runs = [{"trial": i, "tuned": h, "final_metric": s, "diverged": False} for i, (h, s) in enumerate(tried)]
    sel = protocol.select(runs, "lm-stdlib", space)
    assert sel["hparams"]["beta2"] == pytest.approx(0.999, rel=1e-12) and not sel["at_edge"]["weight_decay"]


def test_scores_within_a_tie_go_to_the_earlier_trial_and_beyond_it_to_the_better():
    low = 2.0
    assert protocol.best({"a": (low, 0), "b": (low * (1 - 0.5 * protocol.TIE), 1)}) == "a"
    assert protocol.best({"a": (low, 0), "b": (low * (1 - 2 * protocol.TIE), 1)}) == "b"
    assert protocol.best({"a": (-0.95, 1), "b": (-0.95 * (1 + 0.5 * protocol.TIE), 2)}) == "a"   # a metric maximised
    assert protocol.best({"a": (math.inf, 3), "b": (math.inf, 1)}) == "b"
