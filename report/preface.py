"""The report's head: its title, how its numbers were made, and the machine that made them."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from report.output import fmt, md_table

ENVIRONMENT = ("device", "device_name", "device_capability", "device_memory_bytes", "cuda", "cudnn", "cpu",
               "cpu_flags", "cpu_capability", "cpu_count", "threads", "platform", "python", "torch",
               "git_commit", "compute_seconds")


def environment_block(env: dict) -> list[str]:
    if not env:
        return ["_no environment recorded_"]
    pk = env.get("packages", {})
    lines = ["| | |", "|---|---|"]
    for key in ENVIRONMENT:
        if env.get(key) is not None:
            lines.append(f"| {key} | {env[key]} |")
    lines.append("| packages | " + ", ".join(f"{k} {v}" for k, v in sorted(pk.items())) + " |")
    return lines


def overrides_block(overrides, profile: str) -> list[str]:
    """What an overridden run changed from its profile's file (results/tables/<report>/overrides.csv):
    one row a key, the profile's value beside the value used. Nothing for the profile's own report."""
    if overrides is None or overrides.empty:
        return []
    source = overrides.profile_file.iloc[0]
    lines = ["## Overrides", "",
             f"This configuration is not the profile's: it differs from `{source}` in the keys below, so "
             "its report and tables are written under this name, and the profile's own are left as they "
             f"are. Its records are the profile's (`results/runs/{profile}/`, one a job), shared with every "
             "run that asks for the same job.", "",
             "| key | profile's value | value used |", "|---|---|---|"]
    for row in overrides.itertuples():
        lines.append(f"| {row.key} | `{_cell(row.profile_value)}` | `{_cell(row.value_used)}` |")
    return lines + [""]


def reuse_block(reuse, profile: str) -> list[str]:
    """A run with added entries (results/tables/<report>/reuse.csv, one row a pair): what was added,
    which pairs' rows were reused from the published tables (their commit and machine), what ran
    here, and why a published pair reran. Nothing for a run that added nothing."""
    if reuse is None or reuse.empty or not reuse.added.any():
        return []
    new, old = reuse[reuse.added], reuse[~reuse.added]
    added = sorted(set(new.optimizer) - set(old.optimizer)) + sorted(set(new.task) - set(old.task))
    lines = ["## Added to the published results", "",
             f"This report adds {', '.join(f'**{x}**' for x in added)} to the `{profile}` profile; it is written "
             f"under this name, and `report/{profile}/` and `results/tables/{profile}/` are left as they are.", ""]
    for source, g in reuse.groupby("source", sort=False):
        where = (f"reused from `results/tables/{profile}/`" if source == "published" else "ran here")
        for (commit, host), h in g.groupby(["git_commit", "machine"], dropna=False, sort=False):
            lines.append(f"- {where.capitalize()} (commit `{_cell(commit)}`, {_cell(host)}): {len(h)} pairs, "
                         + "; ".join(f"{o} on {', '.join(sorted(h[h.optimizer == o].task))}"
                                     for o in dict.fromkeys(h.optimizer)) + ".")
    for row in reuse[(reuse.source == "ran here") & reuse.why.notna() & (reuse.why != "")].itertuples():
        lines.append(f"- {row.optimizer} on {row.task} was published but reran here: {row.why}.")
    return lines + ["", "Seconds to target and step times (µs) are each of the machine its row came from "
                    "(above); a step time's ratio to AdamW is measured within one job on one machine, so "
                    "ratios compare across rows. *What this report cost* counts the jobs that ran here.", ""]


def evaluation_block(runs: pd.DataFrame) -> list[str]:
    """Where the numbers come from (the runs table's metric_split, test_n, test_se): selection on
    the validation split, every reported number on the test split, per task its size and the
    standard error it implies; nothing for tables without final runs."""
    if runs.empty or "metric_split" not in runs:
        return []
    rows = []
    for task, g in runs.groupby("task", sort=True):
        metric, split = g.metric.iloc[0], g.metric_split.iloc[0]
        if split != "test":
            rows.append({"task": task, "metric": metric, "reported on": "the objective (nothing sampled)",
                         "test examples": "–", "standard error": "–", "one example": "–"})
            continue
        n, se = g.test_n.dropna(), float(g.test_se.median())
        n = int(n.iloc[0]) if len(n) else None
        accuracy = metric.endswith("accuracy")   # 0/1 per example: its weight 1/n is the metric's step
        rows.append({"task": task, "metric": metric, "reported on": "test split", "test examples": fmt(n),
                     "standard error": f"{fmt(100 * se, 2)} pp" if accuracy else fmt(se, 2),
                     "one example": f"{fmt(100 / n, 2)} pp" if accuracy and n else "–"})
    return ["## Evaluation", "",
            "Tuning selects on each task's validation split (its curves, and the steps and seconds to "
            "target, are the validation split's). Every number reported for a final run (the final "
            "metric in the per-task and across-task tables, the ranks, the claims on final runs) is measured "
            "once, at the end of the run, on a held-out test split that no selection saw, disjoint from the training and validation "
            "data; a task whose metric is its objective with a known optimum (the test functions, "
            "logreg-cancer's exact suboptimality) has no sample to hold out and reports it. The standard "
            "error is that of one run's test value, from its test examples (median over the final runs): "
            "how far a test split of that size may sit from the population it samples. The 95 % intervals over "
            "seeds hold it where each seed draws its own test split, not where every seed is scored on "
            "the same examples (a fixed split: there a gap between optimizers is paired on them). The LM's "
            "examples are bytes, and its standard error is over the per-window means (bytes of a window are "
            "correlated). The stability and precision studies select nothing, but their runs report the "
            "validation metric, as do the tuning tables.", "",
            md_table(pd.DataFrame(rows)), ""]


def _cell(value) -> str:
    return "absent" if value != value or value == "null" else str(value).replace("|", "\\|")


def section(tables: dict, out: Path) -> list[str]:
    """The title names the report's directory (report/<report>/: the profile, or its derived name);
    an overridden configuration lists its differences from the profile's file."""
    profile = Path(out).name
    return [f"# optbench report: `{profile}` profile", "",
            f"Generated from `results/tables/{profile}/` alone (CSV files beside the figures). Each "
            "final run uses the hyperparameters selected by the tuning sweep (see Tuning) on seeds disjoint "
            "from the final seeds, under the profile's schedule; confidence intervals are 95 % Student t intervals of the mean over "
            "non-diverged seeds (coverage 95 % for normal seed-to-seed noise, checked by simulation in "
            "tests/test_stats.py); diverged runs are counted, not dropped.", ""
            ] + evaluation_block(pd.concat([tables.get("runs", pd.DataFrame()), tables.get("defaults", pd.DataFrame())])
                                 ) + reuse_block(tables.get("reuse"), profile.split("+")[0]) + overrides_block(
                tables.get("overrides"), profile.split("+")[0]) + [
            "## Environment", ""] + environment_block(tables["environment"]) + [""]
