import json
import signal
import subprocess
import sys

import pytest

from tasks.runner import records
from tasks.runner.harness import RunConfig, train


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
        "import os, signal, json, tasks.runner.records as r\n"
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
