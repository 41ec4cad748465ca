"""The report's LM-baselines section, from baselines.csv and runs.csv: the byte n-grams (Kneser–Ney,
orders 1–5) and compressors (lzma, zlib) on the LM's test data beside each optimizer's test loss,
the LM's tokens per parameter, and which optimizers beat which baseline."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from report.output import fmt, md_table

NAMED = (("ngram", 3, "trigram"), ("ngram", 4, "4-gram"), ("ngram", 5, "5-gram"), ("lzma", None, "lzma"))


def label(baseline: str, order) -> str:
    return f"byte {int(order)}-gram (Kneser–Ney)" if baseline == "ngram" else f"{baseline} (conditional on train)"


def lm_losses(runs: pd.DataFrame, task: str) -> tuple[pd.DataFrame, str]:
    """Per optimizer: seeds, mean and best test loss of the task's tuned final runs; and the column
    read. runs.csv's `test_metric` is the held-out test split; a table without it (written before
    the test split existed) falls back to `final_metric`, the last validation evaluation, and the
    section says so."""
    column = "test_metric" if "test_metric" in runs else "final_metric"
    r = runs[runs.task == task] if "task" in runs else runs
    if r.empty:
        return pd.DataFrame(columns=["optimizer", "seeds", "mean", "best"]), column
    values = r[column].astype(float).where(~r["diverged"].astype(bool), np.inf)   # a diverged seed beats nothing
    grouped = values.groupby(r["optimizer"])
    out = pd.DataFrame({"seeds": grouped.size(), "mean": grouped.mean(), "best": grouped.min()})
    return out.reset_index().sort_values(["mean", "optimizer"]), column


def beaten(losses: pd.DataFrame, base: pd.DataFrame) -> list[str]:
    """One clause per named baseline: the optimizers whose mean test loss is below it."""
    clauses = []
    for baseline, order, name in NAMED:
        row = base[(base.baseline == baseline) & ((base.order == order) if order else base.order.isna())]
        if row.empty:
            continue
        level = float(row.nats_per_byte.iloc[0])
        below = sorted(losses.optimizer[losses["mean"] < level])
        clauses.append(f"the {name} ({fmt(level, 3)}): {', '.join(below) if below else 'none'}")
    return clauses


def task_lines(baselines: pd.DataFrame, runs: pd.DataFrame, task: str) -> list[str]:
    base = baselines[baselines.task == task]
    facts = base.iloc[0]
    losses, column = lm_losses(runs, task)
    scored = int(base[base.scope == "test windows"].n_bytes.iloc[0])
    rows = [{"model": label(b.baseline, b.order), "nats/byte": b.nats_per_byte, "scored on": b.scope,
             "bytes": int(b.n_bytes)} for b in base.itertuples()]
    what = "test windows" if column == "test_metric" else "validation windows (no test column in runs.csv)"
    rows += [{"model": f"LM, {o.optimizer} (mean of {o.seeds} seeds; best {fmt(o.best, 4)})", "nats/byte": o["mean"],
              "scored on": what, "bytes": scored if column == "test_metric" else None}
             for _, o in losses.iterrows()]
    table = pd.DataFrame(rows).sort_values("nats/byte", kind="stable")
    table["bits/byte"] = table["nats/byte"] / np.log(2)
    table = table[["model", "nats/byte", "bits/byte", "scored on", "bytes"]]
    shown = table.assign(**{c: table[c].map(lambda x: fmt(x, 4)) for c in ("nats/byte", "bits/byte")},
                         bytes=table.bytes.map(lambda x: "–" if pd.isna(x) else str(int(x))))
    lines = [f"### {task}", "",
             f"The model: {int(facts.n_params):,} parameters, {int(facts.tokens_per_step):,} tokens a step, "
             f"{int(facts.steps)} steps: {fmt(float(facts.tokens_per_param), 3)} tokens per parameter "
             "(every parameter counted).", "", md_table(shown), ""]
    if losses.empty:
        return lines + [f"runs.csv has no final run of {task}: no LM to set beside the baselines.", ""]
    loss = "test loss"
    if column != "test_metric":
        loss = "last validation loss"
        lines += ["runs.csv has no `test_metric` column: the LM rows are the last validation loss, "
                  "on other bytes than the baselines'.", ""]
    lines += [f"Mean {loss} over the final seeds below " + "; below ".join(beaten(losses, base)) + ".", ""]
    return lines


def section(tables: dict, out: Path) -> list[str]:
    baselines = tables.get("baselines", pd.DataFrame())
    if not len(baselines):
        return []
    discounts = baselines.get("discount", pd.Series(dtype=float)).dropna().unique()
    discount = ("absolute discount " + " / ".join(f"{d:g}" for d in sorted(discounts)) + ", ") if len(discounts) else ""
    lines = ["## The language model against n-gram and compressor baselines", "",
             "What a byte-level LM must beat, on its own test data. The n-grams are interpolated "
             f"Kneser–Ney ({discount}continuation counts below the top order, uniform "
             "1/256 below order 1) fitted on the training split, and score exactly the LM's test "
             "positions: every byte of a test window after its first, from the bytes before it in its "
             "window. The compressors' number is the code length of the test text given the training "
             "text, (|C(train + test)| − |C(train)|) · 8 ln 2 / |test| nats per byte, on the contiguous "
             "test split and not per window (a compressor's strength is context beyond a window, so "
             "it is the stronger comparison). An LM row is the mean over its final seeds "
             "of the tuned runs.", ""]
    runs = tables.get("runs", pd.DataFrame())
    for task in sorted(baselines.task.unique()):
        lines += task_lines(baselines, runs, task)
    return lines
