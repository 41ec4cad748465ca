"""`defaults`: the self-tuning track (AlgoPerf's term): the final runs at the entry's defaults, no
tuning (`final.run` with hparams=None), so that the report shows what tuning buys each optimizer.
Its rows are the final values alone (the runs table, beside the tuned runs), `final.run_row`'s: the
test split's metric where the task has one, as the tuned runs report."""
from __future__ import annotations

from workflows.engine.measurements import Measurement, final
from workflows.engine.pairs import pairs


def rows(r: dict) -> dict:
    return {"runs": [final.run_row(r)], "compute_seconds": r["train_seconds"]}


MEASUREMENT = Measurement(name="defaults", kind="run", run=final.run, rows=rows, tables=("runs",),
                          jobs=lambda config: pairs(config, config["defaults_track"]["tasks"], config["defaults_track"].get("optimizers")), cost=final.cost,
                          per_seed=True, track="defaults")
