"""A broken optimizer or task file is reported by name (file and error) and the rest keeps working:
the registry, the config check and `optbench list`. Each case runs in a fresh process whose registry
finds the broken files on its package path (a tmp directory appended to `__path__` before the
registry loads, as a file in optimizers/ or tasks/ is found), leaving this process's registry alone."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

BROKEN = {
    "optimizers": {
        "zz_syntax.py": "def (:\n",
        # registers an entry, then fails: the entry is left out with its file
        "zz_halfway.py": ("import dataclasses\nimport optimizers\n"
                          "optimizers.register(dataclasses.replace(optimizers._REGISTRY['sgd'], name='zz-halfway'))\n"
                          "raise RuntimeError('after its register call')\n"),
    },
    "tasks": {"zz_missing.py": "import no_such_module_of_optbench\n"},
}

PROBE = """
import contextlib, importlib, io, json, sys
optimizers, tasks = importlib.import_module("optimizers"), importlib.import_module("tasks")
optimizers.__path__.append(sys.argv[1])
tasks.__path__.append(sys.argv[2])
from workflows.engine import cli, config
out = {"optimizers": optimizers.names(), "tasks": tasks.names(),
       "broken": optimizers.broken() + tasks.broken(), "adam": optimizers.get("adam").name}
for registry, name in ((optimizers, "zz-halfway"), (tasks, "zz-missing")):
    try:
        registry.get(name)
    except KeyError as e:
        out[f"get {name}"] = str(e)
stderr = io.StringIO()
with contextlib.redirect_stderr(stderr):
    config.load("workflows/config/smoke.yaml")
    config.load("workflows/config/smoke.yaml")   # warned once a process
out["warnings"] = stderr.getvalue()
try:
    config.load("workflows/config/smoke.yaml", ["optimizers=[adam,zz-halfway]"])
except config.ConfigError as e:
    out["refused"] = str(e)
listing = io.StringIO()
with contextlib.redirect_stdout(listing):
    cli.main(["list", "optimizers"])
out["list"] = listing.getvalue()
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def probe(tmp_path_factory) -> dict:
    dirs = []
    for package, files in BROKEN.items():
        where = tmp_path_factory.mktemp(package)
        for name, text in files.items():
            (where / name).write_text(text)
        dirs.append(str(where))
    proc = subprocess.run([sys.executable, "-c", PROBE, *dirs], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {**json.loads(proc.stdout.splitlines()[-1]), "dirs": dirs}


def test_the_other_entries_load_and_the_broken_files_are_listed_with_their_errors(probe):
    opt_dir, task_dir = probe["dirs"]
    assert probe["adam"] == "adam" and "sgd" in probe["optimizers"] and "quadratic-k1e2" in probe["tasks"]
    assert "zz-halfway" not in probe["optimizers"], "an entry of a file that failed is left out whole"
    broken = dict(map(tuple, probe["broken"]))
    assert broken[f"{opt_dir}/zz_syntax.py"].startswith("SyntaxError: ")
    assert broken[f"{opt_dir}/zz_halfway.py"] == "RuntimeError: after its register call"
    assert broken[f"{task_dir}/zz_missing.py"] == "ModuleNotFoundError: No module named 'no_such_module_of_optbench'"


def test_an_unknown_name_mentions_the_files_that_failed(probe):
    opt_dir, task_dir = probe["dirs"]
    message = probe["get zz-halfway"]
    assert message.startswith("\"unknown optimizer 'zz-halfway'; valid: ")
    assert f"({opt_dir}/zz_halfway.py failed to load: RuntimeError: after its register call)" in message
    assert f"({task_dir}/zz_missing.py failed to load: ModuleNotFoundError: " in probe["get zz-missing"]


def test_the_config_check_warns_once_and_refuses_only_a_name_that_could_not_load(probe):
    opt_dir, task_dir = probe["dirs"]
    lines = probe["warnings"].splitlines()
    assert len(lines) == 3, lines   # three broken files, one line each, once a process
    assert lines[0].startswith(f"optbench: warning: {opt_dir}/zz_") and "its entries are left out" in lines[0]
    assert any(f"{task_dir}/zz_missing.py failed to load (ModuleNotFoundError" in line for line in lines)
    assert probe["refused"].startswith("config optimizers: unknown 'zz-halfway'; valid: ")
    assert f"{opt_dir}/zz_halfway.py failed to load: RuntimeError: after its register call" in probe["refused"]


def test_optbench_list_ends_with_the_broken_files(probe):
    opt_dir, _ = probe["dirs"]
    lines = probe["list"].splitlines()
    table = [i for i, line in enumerate(lines) if line.startswith("|")]
    failed = [i for i, line in enumerate(lines) if " failed to load: " in line]
    assert any(lines[i].startswith("| adam ") for i in table)
    assert not any("zz" in lines[i] for i in table)
    assert [lines[i].split(" failed")[0] for i in failed] == [f"{opt_dir}/zz_halfway.py", f"{opt_dir}/zz_syntax.py"]
    assert min(failed) > max(table)
    assert lines[failed[0]].endswith("failed to load: RuntimeError: after its register call")
