"""The result record: one JSON file per job, written atomically, refused when of another schema.

A record is a plain dict; `REQUIRED` lists the keys every record has, and its kind is one the
measurements write (workflows.engine.measurements). A profile's records lie at
`record_path(results/runs/<profile>, measurement, task, optimizer[, seed])`. `write` goes through a
temporary file in the same directory and `os.replace`, so a killed job leaves either the old
file or the new one, never a partial one; the file gets the mode the umask gives (0666 & ~umask),
as any other file its user writes. `read` refuses anything that is not a whole record of this
schema with a RecordError naming the path and what to do, and `check_place` one whose place says
another task, optimizer, seed, kind or size than it holds (a file copied over another). In the
pipeline, `read_input` makes both checks on a job's input before its use, and `set_aside` moves a
refused file out of the way (results/runs/<profile>/refused/) so that the next Snakemake
invocation sees it missing and recomputes it.
"""
from __future__ import annotations

import json
import math
import os
import sys
import tempfile
import threading
from pathlib import Path

SCHEMA_VERSION = 1
REQUIRED = ("schema_version", "kind", "config", "config_hash", "environment")


def record_path(runs_dir, measurement: str, task: str, optimizer: str, seed=None) -> str:
    """The one layout of the records: <runs_dir>/<measurement>/<task>/<optimizer>.json, or
    .../<optimizer>/seed<seed>.json for a measurement with one record per seed. Any argument may be
    a Snakemake wildcard ("{task}")."""
    tail = f"/seed{seed}.json" if seed is not None else ".json"
    return f"{runs_dir}/{measurement}/{task}/{optimizer}{tail}"


def path_parts(path, runs_dir) -> dict | None:
    """`record_path`'s inverse: {"measurement", "task", "optimizer"[, "seed"]} (a seed that is not a
    whole number stays text); None for a path outside the layout."""
    try:
        parts = Path(path).resolve().relative_to(Path(runs_dir).resolve()).parts
    except ValueError:
        return None
    if len(parts) == 4 and parts[3].startswith("seed") and parts[3].endswith(".json"):
        seed = parts[3][len("seed"):-len(".json")]
        return {"measurement": parts[0], "task": parts[1], "optimizer": parts[2],
                "seed": int(seed) if seed.isdigit() else seed}
    if len(parts) == 3 and parts[2].endswith(".json"):
        return {"measurement": parts[0], "task": parts[1], "optimizer": parts[2][:-len(".json")]}
    return None


class RecordError(ValueError):
    """`problem`: what is wrong with the file at `path`; the message adds `advice`, what to do.
    (RecordError("a whole message") works too.)"""
    def __init__(self, path, problem: str | None = None, advice: str = ""):
        if problem is None:
            super().__init__(path)
            self.path, self.problem = None, str(path)
            return
        self.path, self.problem = path, problem
        super().__init__(f"{path}: {problem}" + (f"; {advice}" if advice else ""))


def _clean(x):
    """JSON without NaN/inf tokens (strict parsers refuse them): non-finite floats become strings."""
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    return x


def _restore(x):
    if isinstance(x, str) and x in ("nan", "inf", "-inf"):
        return float(x)
    if isinstance(x, dict):
        return {k: _restore(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_restore(v) for v in x]
    return x


RECOMPUTE = "delete it and run the pipeline again: Snakemake recomputes a missing record"
_umask_lock = threading.Lock()


def _umask() -> int:
    try:   # Linux >= 4.7 shows it; setting it to read it would change it for every thread a moment
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _umask_lock:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def write(record: dict, path) -> Path:
    validate(record, path)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())   # mkstemp makes 0600: colleagues could not read it
        with os.fdopen(fd, "w") as f:
            json.dump(_clean(record), f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read(path) -> dict:
    path = Path(path)
    try:
        record = json.loads(path.read_bytes().decode("utf-8"))
    except json.JSONDecodeError as e:
        raise RecordError(path, f"corrupt result file ({e.msg} at line {e.lineno})", RECOMPUTE) from None
    except UnicodeDecodeError as e:
        raise RecordError(path, f"corrupt result file (not UTF-8 text at byte {e.start})", RECOMPUTE) from None
    except FileNotFoundError:
        raise RecordError(path, "no such result file", "run the pipeline again: Snakemake recomputes a "
                          "missing record") from None
    except IsADirectoryError:
        raise RecordError(path, "a directory, not a result file", "remove it and run the pipeline again") from None
    except OSError as e:
        raise RecordError(path, f"unreadable result file ({e.strerror})",
                          f"fix its permissions, or {RECOMPUTE}") from None
    validate(record, path)
    return _restore(record)


def path_says(path, runs_dir) -> dict | None:
    """What a record's place under `runs_dir` (`record_path`) says it holds: kind, task, optimizer,
    and for a per-seed measurement the seed and the track; None for a path outside the layout."""
    from workflows.engine import measurements   # here: its modules import this one
    parts = path_parts(path, runs_dir)
    if parts is None or parts["measurement"] not in measurements.names():
        return None
    m = measurements.get(parts.pop("measurement"))
    if m.per_seed != ("seed" in parts):
        return None
    return {"kind": m.kind, **({"track": m.track} if m.track else {}), **parts}


def record_says(r: dict) -> dict:
    c = r["config"]
    return {"kind": r["kind"], "task": c.get("task"), "optimizer": c.get("optimizer"), "seed": c.get("seed"),
            "size": c.get("size"), "track": r.get("track", "tuned")}


def check_place(path, r: dict, runs_dir, size=None) -> None:
    """Refuses a record whose place says another task, optimizer, seed or kind than the record
    (seed 0's file copied as seed 1's), or another size than the profile's."""
    expected = path_says(path, runs_dir) or {}
    if size is not None:
        expected["size"] = size
    held = record_says(r)
    if r["kind"] == "sweep" and r.get("measurement", "tune") != "tune":
        held["kind"] = f"sweep of {r['measurement']!r}"
    wrong = [k for k in expected if held.get(k) != expected[k]]
    if wrong:
        raise RecordError(
            path, "the path says " + ", ".join(f"{k} {expected[k]!r}" for k in wrong)
            + " but the record holds " + ", ".join(f"{k} {held.get(k)!r}" for k in wrong)
            + " (a record copied or moved over another?)", RECOMPUTE)


def set_aside(path, runs_dir) -> Path:
    """Move a refused record from <runs_dir>/<rel> to <runs_dir>/refused/<rel> (kept for a look,
    never read): the next Snakemake invocation finds it missing and recomputes it."""
    path, runs_dir = Path(path), Path(runs_dir)
    try:
        rel = path.resolve().relative_to(runs_dir.resolve())
    except ValueError:
        rel = Path(path.name)
    dest = runs_dir / "refused" / rel
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(path, dest)
    except FileNotFoundError:
        pass   # another job (a final run of another seed) moved the same input a moment ago
    return dest


AGAIN = ("run the same snakemake command again: it recomputes what is missing, then the tables "
         "and the report")


def read_selection(path, runs_dir, size, job: str) -> dict:
    """The tune record's selection a job (final, stability, precision) runs at, read with
    `read_input`; a refusal is also printed on the terminal (`job`: the rule), not only in the log."""
    try:
        return read_input(path, runs_dir, size)["selection"]
    except RecordError as e:
        print(f"{job}: {e}", file=sys.__stderr__)
        raise


def read_input(path, runs_dir, size=None) -> dict:
    """`read` for a pipeline job's input record (the tune record a final, stability or precision job
    reads its hyperparameters from), with its place under `runs_dir` and its size (the profile's)
    checked before any use (`check_place`): a record copied over another's would otherwise run
    this job at that one's hyperparameters. A refused one is set aside, and the error says so."""
    try:
        record = read(path)
        check_place(path, record, runs_dir, size)
        return record
    except RecordError as e:
        dest = set_aside(path, runs_dir)
        raise RecordError(path, f"{e.problem}; moved to {dest}", AGAIN) from None


def validate(record, path="<record>") -> None:
    if not isinstance(record, dict):
        raise RecordError(path, f"a result record is a JSON object, not {type(record).__name__}", RECOMPUTE)
    missing = [k for k in REQUIRED if k not in record]
    if missing:
        raise RecordError(path, f"not a result record, missing {missing}", RECOMPUTE)
    if record["schema_version"] != SCHEMA_VERSION:
        raise RecordError(path, f"schema_version {record['schema_version']!r}, this optbench reads "
                          f"{SCHEMA_VERSION}", RECOMPUTE)
    from workflows.engine import measurements   # here: its modules import this one
    kinds = measurements.kinds()
    if record["kind"] not in kinds:
        raise RecordError(path, f"unknown kind {record['kind']!r}; valid: {', '.join(kinds)}", RECOMPUTE)
