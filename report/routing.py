"""The report's parameter-groups section, from routing.csv."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from report.output import fmt, md_table


def section(tables: dict, out: Path) -> list[str]:
    """Which optimizer updates which parameters, and which of them decay (one seed per pair: the
    routing depends on the model and the entry, not the seed)."""
    routing = tables["routing"]
    if not len(routing):
        return []
    first = routing[routing.seed == routing.groupby(["task", "optimizer"]).seed.transform("min")]
    rows = []
    for (task, opt), g in first.groupby(["task", "optimizer"], sort=True):
        parts = [f"{r.part}{' (fallback)' if r.fallback else ''}: {int(r.tensors)} tensors, {int(r.numel)} params, "
                 f"lr {fmt(r.lr, 3)}, decay {fmt(r.weight_decay, 3) if pd.notna(r.weight_decay) else 'none'}"
                 for r in g.itertuples()]
        rows.append({"task": task, "optimizer": opt, "policy": g.decay.iloc[0], "groups": " · ".join(parts)})
    return ["## Parameter groups", "",
            "Weight decay reaches tensors of two or more dimensions (weights and embeddings, as nanoGPT "
            "does); biases, norm gains and scalars get none, in every part of an entry (Muon's and "
            "Shampoo's fallback too). An entry or a task can choose `all` instead. Each row: the "
            "optimizer that updates a group, its tensors and parameters, its peak lr (before the "
            "schedule) and its weight decay, from the first final seed.", "",
            "<details><summary>Routing of every task × optimizer</summary>", "",
            md_table(pd.DataFrame(rows)), "", "</details>", ""]
