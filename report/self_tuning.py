"""The report's self-tuning-track section: the runs at the entries' defaults beside the tuned runs."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from report import stats, verdicts
from report.output import fmt, md_table


def buys(tuned: pd.DataFrame, defaults: pd.DataFrame, sign: int) -> str:
    """What tuning buys, paired by seed: sign × (defaults − tuned), `sign` 1 for a metric to
    minimise and −1 to maximise (positive: tuning helped), mean [95 % t interval] (n pairs)."""
    t = stats.paired(verdicts.seed_values(defaults, defaults.task.iloc[0], defaults.optimizer.iloc[0]),
                     verdicts.seed_values(tuned, tuned.task.iloc[0], tuned.optimizer.iloc[0]))
    if t.n == 0:
        return "–"
    if t.n < 2:   # one pair has no spread: no interval
        return f"{fmt(sign * t.diff, 3)} (1 pair, no interval)"
    low, high = sorted((sign * t.low, sign * t.high))
    return f"{fmt(sign * t.diff, 3)} [{fmt(low, 3)}, {fmt(high, 3)}] ({t.n} pairs)"


def section(tables: dict, out: Path) -> list[str]:
    """The self-tuning track beside the tuned runs: what tuning buys each optimizer."""
    defaults, tuned = tables.get("defaults", []), tables["runs"]
    if not len(defaults):
        return []
    lines = ["## Self-tuning track: library defaults, no tuning", "",
             "AlgoPerf's self-tuning track: the optimizers the profile's `defaults_track` names at their entry's defaults (the library's or "
             "the paper's, stated in `optbench list optimizers`; learning-rate-free methods at lr 1.0) "
             "and the task's (the GAN's β), over the same final seeds, with no tuning at all. *Tuning "
             "buys* is the mean over seeds of the paired difference, tuned minus defaults on the same seed "
             "(the same initialisation and batches), signed so that positive is better, with its 95 % t "
             "interval and the number of pairs (a diverged seed leaves its pair out); `–` where no seed "
             "has both. Crowded Valley (Schmidt et al. 2021) found "
             "that trying several optimizers at their defaults does about as well as tuning one: "
             "compare the best row of each column per task.", ""]
    for task, d in defaults.groupby("task"):
        sign = 1 if d["direction"].iloc[0] == "min" else -1
        metric = d["metric"].iloc[0]
        rows = []
        for opt, g in d.groupby("optimizer"):
            ok = g[~g["diverged"]]
            mean, lo, hi = stats.t_interval(ok["final_metric"].tolist())
            tg = tuned[(tuned.task == task) & (tuned.optimizer == opt)]
            tmean, tlo, thi = stats.t_interval(tg[~tg["diverged"]]["final_metric"].tolist())
            reached = g["steps_to_target"].dropna()
            rows.append({"optimizer": opt, "default lr": fmt(float(g["lr"].iloc[0]), 3),
                         f"defaults: final {metric} (95% CI)": f"{fmt(mean)} [{fmt(lo)}, {fmt(hi)}]",
                         "diverged": f"{int(g['diverged'].sum())}/{len(g)}",
                         "reached target": f"{len(reached)}/{len(g)}",
                         f"tuned: final {metric} (95% CI)": f"{fmt(tmean)} [{fmt(tlo)}, {fmt(thi)}]" if len(tg) else "not run",
                         "tuning buys (paired, 95% CI)": buys(tg, g, sign) if len(tg) else "–"})
        lines += [f"### `{task}`", "", md_table(pd.DataFrame(rows)), ""]
    return lines
