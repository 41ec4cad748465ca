"""The report's large-model memory section, from memory_model.csv."""
from __future__ import annotations

from pathlib import Path

from report.output import fmt, md_table


def section(tables: dict, out: Path) -> list[str]:
    """The large-model table from the registry's analytic models (written by the aggregate job)."""
    mm = tables["memory_model"]
    if not len(mm):
        return []
    total = mm.groupby(["size", "optimizer"])["GB"].sum().unstack("size")
    total.columns = [f"{c / 1e9:g}B" if c >= 1e9 else f"{c / 1e6:g}M" for c in total.columns]
    total = total.reset_index().map(lambda x: fmt(x, 4) if isinstance(x, float) else x)
    return ["## Memory of large models", "",
            "Training memory in GB (1e9 B) for the profile's optimizers at 125M, 1.3B, 7B and 70B "
            "parameters, mixed precision: fp16/bf16 parameters and gradients, the optimizer state as "
            "the registry's memory model gives it (fp32 moments; 8-bit entries quantised), and fp32 "
            "master weights. Seed 001's 70B table (140 + 140 + 280 + 280 = 840 GB for Adam) leaves out "
            "the master weights (another 280 GB), activations, temporary buffers and fragmentation. "
            "`optbench memory --params 70e9` prints the breakdown.", "", md_table(total), ""]
