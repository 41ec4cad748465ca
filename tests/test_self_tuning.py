"""The self-tuning track: entries declared self-tuning are never tuned, and the defaults track runs
every entry at its defaults; its records carry their track and are checked against their place."""
import pytest

import optimizers
from workflows.engine import protocol, records
from workflows.engine.measurements import final


def test_a_self_tuning_entry_runs_at_its_default_lr_only():
    tuned = [n for n in optimizers.names() if optimizers.get(n).self_tuning]
    assert {"prodigy", "dadapt-adam"} <= set(tuned)
    tuning = {"trials": 4, "seeds": [100, 101]}
    for name in tuned:
        assert protocol.proposal("quadratic-k1e2", name, tuning, []) == ({"lr": optimizers.get(name).defaults["lr"]}, "defaults")
        assert protocol.runs_per_sweep("quadratic-k1e2", name, tuning) == 2   # one trial × 2 seeds
        assert protocol.search_space("quadratic-k1e2", name, tuning) == {}
    assert protocol.runs_per_sweep("quadratic-k1e2", "adam", tuning) == 4 * 2


def test_a_profile_search_space_naming_a_self_tuning_entry_is_refused():
    with pytest.raises(ValueError, match="'prodigy' is self-tuning.*valid: adam"):
        protocol.check_tuning({"trials": 4, "seeds": [1, 2], "search": {"prodigy": {"lr": [0.1, 10.0]}}},
                              ["adam", "prodigy"])


@pytest.mark.parametrize("hparams, track, expected_lr", [(None, "defaults", 1e-3), ({"lr": 0.01}, "tuned", 0.01)])
def test_the_record_says_its_track(hparams, track, expected_lr, tmp_path):
    record = final.run("quadratic-k1e2", "adam", "smoke", seed=0, hparams=hparams)
    assert record["track"] == track
    assert record["optimizer"]["hparams"]["lr"] == expected_lr   # adam's default lr is torch's 1e-3
    runs = tmp_path / "runs"
    right = runs / ("defaults" if track == "defaults" else "final") / "quadratic-k1e2" / "adam" / "seed0.json"
    records.write(record, right)
    records.check_place(right, records.read(right), runs)
    wrong = runs / ("final" if track == "defaults" else "defaults") / "quadratic-k1e2" / "adam" / "seed0.json"
    with pytest.raises(records.RecordError, match="track"):
        records.check_place(wrong, record, runs)
    row = final.run_row(record)
    assert row["track"] == track
