"""What the report reads: every table of results/tables/<profile>/ by name, and nothing else."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

TABLES = ("runs", "curves", "tuning", "stability", "steptime", "loop_options", "monitor", "samples", "skipped",
          "memory_model", "precision", "precision_scale", "routing", "cost", "cost_summary", "plan")


def read(tables: Path) -> dict:
    """Every table of the directory by name; the ones a section reads are there, empty, if absent.
    The self-tuning track's runs are "defaults", apart from the tuned "runs": they have a section
    of their own."""
    out = {name: pd.DataFrame() for name in TABLES}
    for path in sorted(Path(tables).glob("*.csv")):
        try:
            out[path.stem] = pd.read_csv(path)
        except pd.errors.EmptyDataError:
            pass
    for name in ("environment", "figures"):
        path = Path(tables) / f"{name}.json"
        out[name] = json.loads(path.read_text()) if path.exists() else {}
    if "track" in out["runs"]:
        out["defaults"] = out["runs"][out["runs"].track == "defaults"]
        out["runs"] = out["runs"][out["runs"].track != "defaults"]
    return out
