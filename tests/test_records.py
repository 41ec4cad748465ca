import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from workflows.engine import records
from workflows.engine.harness import RunConfig, train


@pytest.fixture(scope="module")
def record():
    return train(RunConfig("quadratic-k1e2", "adam", steps=5))


def test_roundtrip_keeps_non_finite_values(tmp_path, record):
    r = dict(record, final_metric=float("nan"), seconds_to_target=float("inf"))
    path = records.write(r, tmp_path / "a" / "r.json")
    json.loads(path.read_text())  # strict JSON: no NaN tokens
    back = records.read(path)
    assert back["final_metric"] != back["final_metric"] and back["seconds_to_target"] == float("inf")
    assert back["curves"]["loss"] == record["curves"]["loss"]


def test_other_schema_version_is_refused(tmp_path, record):
    path = tmp_path / "old.json"
    path.write_text(json.dumps(dict(record, schema_version=0)))
    with pytest.raises(records.RecordError, match="schema_version 0.*reads 1"):
        records.read(path)


def test_corrupt_file_is_refused_with_its_path(tmp_path, record):
    path = tmp_path / "cut.json"
    path.write_text(json.dumps(record)[:100])
    with pytest.raises(records.RecordError, match="cut.json: corrupt"):
        records.read(path)


def test_write_is_atomic_under_sigkill(tmp_path):
    """A writer killed mid-way leaves the old file or none, never a partial one."""
    target = tmp_path / "r.json"
    code = (
        "import os, signal, json, workflows.engine.records as r\n"
        "big = {'schema_version': 1, 'kind': 'run', 'config': {}, 'config_hash': '', 'environment': {},"
        " 'x': list(range(2_000_000))}\n"
        "real = os.fsync\n"
        "def die(fd): os.kill(os.getpid(), signal.SIGKILL)\n"
        "os.fsync = die\n"
        f"r.write(big, {str(target)!r})\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True)
    assert proc.returncode == -signal.SIGKILL
    assert not target.exists()
    leftovers = [p.name for p in tmp_path.iterdir()]
    assert all(name.startswith(".r.json.") for name in leftovers)  # temp files are hidden, never read


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_records_get_the_mode_the_umask_gives(tmp_path, record, umask):
    """Not mkstemp's 0600: colleagues on a shared file system read each other's results."""
    import os
    old = os.umask(umask)
    try:
        path = records.write(record, tmp_path / "r.json")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


@pytest.mark.parametrize("content", [bytes(range(256)) * 4, b"\xff\xfe\x00garbage", b"", b"[1, 2]"])
def test_unreadable_record_is_refused_with_its_path_and_what_to_do(tmp_path, content):
    path = tmp_path / "junk.json"
    path.write_bytes(content)
    with pytest.raises(records.RecordError, match="junk.json: .*; delete it and run the pipeline again") as e:
        records.read(path)
    assert e.value.path == path
    (tmp_path / "dir.json").mkdir()
    with pytest.raises(records.RecordError, match="dir.json: a directory"):
        records.read(tmp_path / "dir.json")


def test_a_record_in_the_wrong_place_is_refused_and_set_aside(tmp_path, record):
    """Seed 0's record copied as seed 1's: aggregation names the path, what it says and what the
    record holds, moves the file to refused/ (the next run recomputes it) and writes no table."""
    from workflows.engine import aggregate
    runs = tmp_path / "runs" / "p"
    good = records.write(dict(record, config=dict(record["config"], seed=0)),
                         runs / "final/quadratic-k1e2/adam/seed0.json")
    bad = runs / "final/quadratic-k1e2/adam/seed1.json"
    bad.write_bytes(good.read_bytes())
    other = runs / "final/quadratic-k1e2/sgd/seed0.json"
    other.parent.mkdir(parents=True)
    other.write_bytes(good.read_bytes())
    with pytest.raises(records.RecordError) as e:
        aggregate.write_tables([good, bad, other], tmp_path / "tables", runs_dir=runs, size="smoke")
    message = str(e.value)
    assert "2 record(s) refused" in message and "run the same snakemake command again" in message.lower()
    assert f"{bad}: the path says seed 1 but the record holds seed 0" in message
    assert f"{other}: the path says optimizer 'sgd' but the record holds optimizer 'adam'" in message
    assert not bad.exists() and (runs / "refused/final/quadratic-k1e2/adam/seed1.json").exists()
    assert good.exists() and not (tmp_path / "tables" / "runs.csv").exists()
    # the wrong size for the profile, or a record of another kind in this place
    with pytest.raises(records.RecordError, match="the path says size 'cpu' but the record holds size 'smoke'"):
        aggregate.write_tables([good], tmp_path / "tables", runs_dir=runs, size="cpu")
    sweep = runs / "tune/quadratic-k1e2/adam.json"
    sweep.parent.mkdir(parents=True)
    sweep.write_bytes((runs / "refused/final/quadratic-k1e2/adam/seed1.json").read_bytes())
    with pytest.raises(records.RecordError, match="the path says kind 'sweep' but the record holds kind 'run'"):
        aggregate.write_tables([sweep], tmp_path / "tables", runs_dir=runs)


def test_a_malformed_record_is_refused_not_a_traceback(tmp_path, record):
    from workflows.engine import aggregate
    path = records.write({k: v for k, v in record.items() if k != "curves"}, tmp_path / "r.json")
    with pytest.raises(records.RecordError, match=r"r.json: malformed run record \(KeyError: 'curves'\)"):
        aggregate.write_tables([path], tmp_path / "t")


def test_a_job_input_refused_is_set_aside_for_the_rerun(tmp_path):
    """A corrupt tune summary read by a final or stability job: moved to refused/, so that running
    the same command again recomputes it (and the jobs that read it)."""
    runs = tmp_path / "runs" / "p"
    path = runs / "tune/quadratic-k1e2/adam.json"
    path.parent.mkdir(parents=True)
    path.write_text('{"schema_version": 1')
    with pytest.raises(records.RecordError, match="adam.json: corrupt result file .* moved to .*refused/tune/"
                                                  "quadratic-k1e2/adam.json; run the same snakemake command again"):
        records.read_input(path, runs)
    assert not path.exists() and (runs / "refused/tune/quadratic-k1e2/adam.json").exists()
    with pytest.raises(records.RecordError, match="no such result file"):   # a sibling job moved it first
        records.read_input(path, runs)


def test_a_job_input_in_the_wrong_place_is_refused_before_use_and_set_aside(tmp_path):
    """adam's tune record copied over sgd's: the final, stability and precision jobs of sgd would run
    at adam's hyperparameters. The reader they use refuses it naming both optimizers, before any
    run, and moves it to refused/, so that the next run recomputes sgd's sweep."""
    from workflows.engine.measurements import tune
    runs = tmp_path / "runs" / "p"
    adam = records.write(tune.run("quadratic-k1e2", "adam", "smoke", {"trials": 1, "seeds": [100, 101],
                                                                       "steps_fraction": 0.1}),
                         records.record_path(runs, "tune", "quadratic-k1e2", "adam"))
    sgd = Path(records.record_path(runs, "tune", "quadratic-k1e2", "sgd"))
    sgd.write_bytes(adam.read_bytes())
    with pytest.raises(records.RecordError, match=f"{re.escape(str(sgd))}: the path says optimizer 'sgd' but the record holds "
                                                  f"optimizer 'adam' .* moved to .*refused/tune/quadratic-k1e2/"
                                                  f"sgd.json; run the same snakemake command again"):
        records.read_input(sgd, runs, "smoke")
    assert not sgd.exists() and (runs / "refused/tune/quadratic-k1e2/sgd.json").exists()
    assert records.read_input(adam, runs, "smoke")["selection"]["hparams"]["lr"] > 0
    with pytest.raises(records.RecordError, match="the path says size 'cpu' but the record holds size 'smoke'"):
        records.read_input(adam, runs, "cpu")   # a record of another size than the profile's
    assert not adam.exists()


def test_a_records_place_is_read_back_as_what_it_holds(tmp_path):
    runs = tmp_path / "runs"
    seeded = records.record_path(runs, "defaults", "quadratic-k1e2", "adam", 3)
    assert seeded == f"{runs}/defaults/quadratic-k1e2/adam/seed3.json"
    assert records.path_says(seeded, runs) == {"kind": "run", "track": "defaults", "task": "quadratic-k1e2",
                                               "optimizer": "adam", "seed": 3}
    assert records.path_says(records.record_path(runs, "tune", "t", "o"), runs) == \
        {"kind": "sweep", "task": "t", "optimizer": "o"}
    # a per-seed measurement's record without its seed, or a directory no measurement writes
    assert records.path_says(records.record_path(runs, "final", "t", "o"), runs) is None
    assert records.path_says(records.record_path(runs, "refused", "t", "o"), runs) is None


@pytest.mark.parametrize("lr, diverges", [(0.1, False), (1e6, True)])
def test_a_final_record_with_a_test_split_reads_back_into_the_same_row(tmp_path, lr, diverges):
    """The test split's keys survive the file: a number, its size and standard error; a diverged
    run's NaN (written as a string) and its Nones (null)."""
    import math
    from workflows.engine.measurements import final
    r = final.run("cnn-digits", "sgd", "smoke", seed=0, hparams={"lr": lr})
    assert r["diverged"] == diverges and r["metric_split"] == "test"
    row, back = final.run_row(r), final.run_row(records.read(records.write(r, tmp_path / "r.json")))
    same = lambda a, b: a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))  # noqa: E731
    assert row.keys() == back.keys() and all(same(row[k], back[k]) for k in row), \
        {k: (row[k], back[k]) for k in row if not same(row[k], back[k])}
    assert math.isnan(back["final_metric"]) == diverges and (back["test_n"] is None) == diverges
