"""The result record: one JSON file per job, written atomically, refused when of another schema.

A record is a plain dict; `REQUIRED` lists the keys every record has. `write` goes through a
temporary file in the same directory and `os.replace`, so a killed job leaves either the old
file or the new one, never a partial one.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path

SCHEMA_VERSION = 1
REQUIRED = ("schema_version", "kind", "config", "config_hash", "environment")
KINDS = ("run", "sweep", "steptime", "stability", "loop_options")


class RecordError(ValueError):
    pass


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


def write(record: dict, path) -> Path:
    validate(record, path)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
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
        record = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise RecordError(f"{path}: corrupt result file ({e.msg} at line {e.lineno}); "
                          f"delete it and rerun the pipeline to recompute it") from None
    validate(record, path)
    return _restore(record)


def validate(record, path="<record>") -> None:
    if not isinstance(record, dict):
        raise RecordError(f"{path}: a result record is a JSON object, not {type(record).__name__}")
    missing = [k for k in REQUIRED if k not in record]
    if missing:
        raise RecordError(f"{path}: not a result record, missing {missing}")
    if record["schema_version"] != SCHEMA_VERSION:
        raise RecordError(f"{path}: schema_version {record['schema_version']!r}, this optbench reads "
                          f"{SCHEMA_VERSION}; rerun the pipeline to recompute it")
    if record["kind"] not in KINDS:
        raise RecordError(f"{path}: unknown kind {record['kind']!r}; valid: {', '.join(KINDS)}")
