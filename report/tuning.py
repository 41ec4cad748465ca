"""The tuning section of the report, from the tables alone: tuning.csv (one row per trial × tuning
seed, written by workflows.engine.measurements.tune.trial_rows), horizon_check.csv and
tuning_repeats.csv. It states the protocol as the sweeps ran it (its stages and how many trials
each took, from the stage column), the trials every optimizer got (equal, or which differ), the
selections at an edge after the extension and why, the selected hyperparameters, per task a
sensitivity figure (the validation metric against each tuned hyperparameter, the selection
marked) and the best tuning-seed mean so far against the trial index; then whether a shorter
tuning horizon picks the full horizon's configuration, and the tuning noise the repeated study
measures beside the gaps the final runs rank.

No expected-best-after-k-trials curve (Dodge et al. 2019): it assumes the trials are
exchangeable draws from one distribution over the search space, which an adaptive protocol's are
not (each trial is placed from the scores before it: an extension only where the best was at an
edge, a refinement only around the best). The best so far against the trial index is what the
protocol itself ran, in its order.
"""
from __future__ import annotations

import math
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from report.output import fmt, md_table, save  # noqa: E402
from report import stats, verdicts  # noqa: E402

UNTUNED = ("fixed-lr", "defaults")   # the stage of an untuned pair's one trial


def trial_scores(tuning: pd.DataFrame) -> pd.DataFrame:
    """One row per (task, optimizer, trial): the tuned values, stage, selected, and the mean metric
    over tuning seeds (NaN if any seed diverged: the protocol's score is then +inf)."""
    g = tuning.assign(value=tuning.final_metric.where(~tuning.diverged.astype(bool)))
    keys = ["task", "optimizer", "trial"]
    first = g.groupby(keys, sort=True).first().drop(columns=["value", "seed", "final_metric"])
    scores = first.assign(mean_metric=g.groupby(keys, sort=True)["value"].agg(lambda s: s.mean(skipna=False)))
    return scores.reset_index()


def _text(column: pd.Series) -> pd.Series:
    """A text column as read from a CSV, its empty cells (NaN) as ''."""
    return column.astype(object).where(column.notna(), "").astype(str)


def complements(rows: pd.DataFrame) -> set[str]:
    """The tuned hyperparameters whose lattice is on 1 − value (β2), as the search_space column
    says ('beta2 decade lattice of 1 − beta2 …'): drawn and printed by 1 − value, their scale."""
    text = " ".join(_text(rows.search_space).unique()) if "search_space" in rows else ""
    return {k for k, again in re.findall(r"(\w+) [\w-]+ lattice of 1 − (\w+)", text) if k == again}


def shown(name: str, value, complemented: set[str], digits: int = 3) -> str:
    """A tuned value in a table: `digits` significant digits, of 1 − value for a complement (0.999,
    not 1, for a β2)."""
    if name in complemented and isinstance(value, float) and 0 < 1 - value < 1:
        digits += max(0, -math.floor(math.log10(1 - value)))
    return fmt(value, digits)


def tuned_names(rows: pd.DataFrame) -> list[str]:
    names = []
    for t in rows["tuned"].fillna(""):
        names += [n for n in str(t).split(", ") if n and n not in names]
    return names


def best_so_far(values, direction: str) -> np.ndarray:
    """The best finite value among the first k, for every k (NaN before the first finite one)."""
    out, best = [], math.nan
    for v in values:
        if v == v and (best != best or (v < best if direction == "min" else v > best)):
            best = v
        out.append(best)
    return np.asarray(out, dtype=float)


def palette(optimizers: list[str]) -> dict:
    """One colour an optimizer, the same in both figures of a task."""
    cmap = plt.cm.tab10 if len(optimizers) <= 10 else plt.cm.tab20
    return {o: cmap(i % cmap.N) for i, o in enumerate(optimizers)}


def sensitivity_figure(task: str, scores: pd.DataFrame, out: Path) -> str:
    names = tuned_names(scores)
    complemented = complements(scores)
    fig, axes = plt.subplots(1, len(names), figsize=(5.5 * len(names), 3.6), squeeze=False)
    optimizers = sorted(scores.optimizer.unique())
    colours = palette(optimizers)
    drawn = scores.mean_metric.dropna()
    positive = len(drawn) and (drawn > 0).all()
    for ax, name in zip(axes[0], names):
        for opt in optimizers:
            s = scores[(scores.optimizer == opt) & scores[name].notna()].sort_values(name)
            if not len(s):
                continue
            x = 1 - s[name] if name in complemented else s[name]   # the axis the lattice is on
            ax.plot(x, s.mean_metric, "o", ms=4, color=colours[opt], label=opt, alpha=0.8)
            sel = s.selected.astype(bool)
            ax.plot(x[sel], s.mean_metric[sel], "*", ms=13, color=colours[opt], mec="black", mew=0.8)
        ax.set_xscale("log")
        if positive:
            ax.set_yscale("log")
        ax.set_xlabel(f"1 − {name}" if name in complemented else name)
        ax.set_ylabel(f"{scores.metric.iloc[0]} (mean over tuning seeds)")
    axes[0][0].set_title(f"{task}: sensitivity (★ selected; diverged trials not drawn)", fontsize=9)
    axes[0][0].legend(fontsize=7, ncol=2, loc="best")   # lr: every tuned optimizer is on it
    return save(fig, out, f"tuning-sensitivity-{task}")


def progress_figure(task: str, scores: pd.DataFrame, out: Path) -> str:
    """The best tuning-seed mean after each trial of the protocol, in the order run."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    direction = scores.direction.iloc[0]
    colours = palette(sorted(scores.optimizer.unique()))
    for opt, s in sorted(scores.groupby("optimizer")):
        s = s.sort_values("trial")
        ax.plot(s.trial + 1, best_so_far(s.mean_metric, direction), "o-" if len(s) > 1 else "s", ms=3,
                label=opt, color=colours[opt])
    drawn = scores.mean_metric.dropna()
    if len(drawn) and (drawn > 0).all():
        ax.set_yscale("log")
    ax.set_xlabel("trial (the protocol's order)")
    ax.set_ylabel(f"best {scores.metric.iloc[0]} so far")
    ax.set_title(f"{task}: the search's progress", fontsize=9)
    ax.legend(fontsize=7, ncol=2)
    return save(fig, out, f"tuning-progress-{task}")


def protocol_lines(tuning: pd.DataFrame, scores: pd.DataFrame) -> list[str]:
    """The protocol in words, from the table: stages in the order run and the trials each took,
    the seeds, horizons and schedules."""
    tuned = scores[~scores.stage.isin(UNTUNED)]
    sweeps = tuned.groupby(["task", "optimizer"]).ngroups
    stage_rows = []
    first = tuned.groupby("stage").trial.min().reset_index().sort_values(["trial", "stage"])
    for stage in first.stage:
        per = tuned[tuned.stage == stage].groupby(["task", "optimizer"]).size()
        stage_rows.append({"stage": stage, "sweeps that ran it": f"{len(per)} of {sweeps}",
                           "trials in a sweep (median, max)": f"{fmt(float(per.median()), 2)}, {int(per.max())}"})
    seeds = sorted(tuning.tuning_seeds.unique())
    steps = tuning.groupby("task")["steps"].first()
    lattices = {k: (v, of) for k, v, of in re.findall(r"(\w+) ([\w-]+) lattice( of 1 − \w+)?",
                                                      " ".join(tuning.search_space.dropna().unique()))}
    on = ", ".join(f"{k} on the {v} lattice{of}" for k, (v, of) in lattices.items()) or "lr on one lattice"
    limits = ", ".join(dict.fromkeys(x for v in tuning.get("hard_limits", pd.Series(dtype=str)).dropna().unique()
                                     for x in str(v).split(", ") if x))
    return [f"Every tuned optimizer runs the same protocol (workflows/engine/protocol.py), {on}, the same "
            "lattice for every entry: an lr grid, its edge extended while the best is at it (up to the hard "
            f"limits{f', {limits}' if limits else ''}), each other hyperparameter at the best lr, lr again at the selected values, then "
            "refinement at finer lr steps around the best until the budget is spent; no point runs twice. A "
            f"trial runs on each of {' / '.join(str(int(s)) for s in seeds)} tuning seed(s) (disjoint from the "
            "final seeds) and the best mean is selected. The stages as run:", "",
            md_table(pd.DataFrame(stage_rows)), "",
            f"Schedule of the tuning and final runs: {'; '.join(sorted(tuning.schedule.dropna().unique()))} (an "
            "entry that brings its own, schedule-free, runs at constant lr). Tuning steps per task: "
            + ", ".join(f"{t} {int(n)}" for t, n in steps.items()) + ".", ""]


def budget_lines(scores: pd.DataFrame) -> list[str]:
    """Trials per optimizer: equal for every tuned entry, or which differ; the sweeps a budget cut."""
    tuned = scores[~scores.stage.isin(UNTUNED)]
    if not len(tuned):
        return []
    counts = tuned.groupby(["task", "optimizer"]).trial.nunique()
    # the common count: the budget the sweeps were given (`tuning.trials`), else the most frequent
    common = int((tuned.budget if "budget" in tuned else counts).mode().max())
    per_opt = counts.groupby(level="optimizer").agg(lambda s: ", ".join(str(int(n)) for n in sorted(set(s))))
    odd = counts[counts != common]
    lines = ["Trials per tuned optimizer (every task): " + "; ".join(f"{o} {n}" for o, n in per_opt.items()) + ". "
             + (f"Every tuned entry got {common} trials on every task." if odd.empty else
                f"Not equal: {len(odd)} sweep(s) differ from the budget of {common}: "
                + ", ".join(f"{o} on {t} ({int(n)})" for (t, o), n in odd.items()) + ".")]
    first = tuned.sort_values("trial").groupby(["task", "optimizer"]).first()
    cut = first[_text(first.stopped_in) != ""] if "stopped_in" in first else first.iloc[:0]
    if len(cut):
        lines.append("The budget cut a stage before refinement in: " + ", ".join(
            f"{o} on {t} ({s})" for (t, o), s in cut.stopped_in.items()) + ".")
    return lines + [""]


def edge_lines(scores: pd.DataFrame) -> list[str]:
    """The number and share of tuned selections at an edge after extension, each with its reason."""
    sel = scores[scores.selected.astype(bool) & ~scores.stage.isin(UNTUNED)]
    if not len(sel):
        return []
    at = sel[_text(sel.edge) != ""]
    lines = [f"Selections at an edge of what was tried after extension: {len(at)} of {len(sel)} "
             f"({len(at) / len(sel):.0%}); `budget`: the extension ran out of trials, `hard limit`: the next "
             "lattice point is outside the protocol's hard limits."]
    if len(at):
        lines += ["", md_table(pd.DataFrame([{"task": r.task, "optimizer": r.optimizer, "at edge": r.edge,
                                               "why": r.edge_reason} for r in at.itertuples()]))]
    return lines + [""]


def selected_table(scores: pd.DataFrame) -> str:
    rows = []
    complemented = complements(scores)
    for (task, opt), s in scores.groupby(["task", "optimizer"]):
        sel = s[s.selected.astype(bool)].iloc[0]
        names = tuned_names(s) or ["lr"]
        rows.append({"task": task, "optimizer": opt,
                     "selected": ", ".join(f"{n} {shown(n, sel[n], complemented)}" for n in names),
                     "tuning metric": f"{sel.metric} {fmt(sel.mean_metric)}", "stage": sel.stage,
                     "trials": str(len(s)), "diverged trials": str(int(s.mean_metric.isna().sum())),
                     "at edge": sel.edge_reason if isinstance(sel.edge_reason, str) else ""})
    return md_table(pd.DataFrame(rows))


def full_horizon_words(tuning: pd.DataFrame, runs: pd.DataFrame) -> str:
    """Which tasks were tuned at their final runs' steps (the profile's `tuning.full_horizon`) and
    which at fewer, from the two tables' steps (tasks whose every trial is untuned, a fixed lr or
    an entry's defaults, left out); the tasks of the runs table with no sweep (each of their pairs
    at another pair's selection) are named."""
    if not len(tuning) or not len(runs) or "track" not in runs:
        return ""
    final = runs[runs.track == "tuned"].groupby("task").steps.max()
    swept = tuning[~tuning.stage.isin(UNTUNED)].groupby("task").steps.max()
    full = [t for t, n in swept.items() if t in final and n >= final[t]]
    short = [f"{t} ({int(n)} of {int(final[t])})" for t, n in swept.items() if t in final and n < final[t]]
    borrowed = sorted(set(final.index) - set(tuning.task))
    return ("Tuned at the full horizon (the final runs' steps): " + (", ".join(full) or "none")
            + ". At a shorter one: " + (", ".join(short) or "none") + "."
            + (f" Without a sweep of their own (each at another task's selection, named in its section): "
               f"{', '.join(borrowed)}." if borrowed else ""))


def horizon_lines(horizon: pd.DataFrame, tuning: pd.DataFrame | None = None,
                  runs: pd.DataFrame | None = None) -> list[str]:
    """Which tasks were tuned at the full horizon, and per pair of the horizon check: does the
    profile's shorter tuning horizon pick the full one's configuration."""
    words = full_horizon_words(tuning if tuning is not None else pd.DataFrame(),
                               runs if runs is not None else pd.DataFrame())
    if words and not len(horizon):
        return ["### Tuning horizon", "", words, ""]
    if not len(horizon):
        return []
    same = horizon.same.astype(bool)
    rows = [{"task": r.task, "optimizer": r.optimizer, "steps (short / full)": f"{int(r.short_steps)} / {int(r.full_steps)}",
             "short horizon selects": r.short_selected, "full horizon selects": r.full_selected,
             "lr ratio (half-decades)": fmt(float(r.lr_half_decades), 2), "same": "yes" if r.same else "no",
             "full-horizon metric: own / short's": f"{r.metric} {fmt(r.full_metric)} / {fmt(r.full_metric_of_short)}"}
            for r in horizon.itertuples()]
    return ["### Tuning horizon", ""] + ([words, ""] if words else []) + [
            "The protocol again at the task's full horizon for the pairs the profile names, beside the selection "
            f"its shorter tuning made: the same configuration on {int(same.sum())} of {len(horizon)} pair(s)"
            + (f" ({', '.join(f'{r.optimizer} on {r.task}' for r in horizon[same].itertuples())})" if same.any() else "")
            + ". Where it differs (`same` no), the shorter horizon is not shown to pick the full horizon's "
            "configuration, and a claim on that pair rests on it only with that caveat. (The short selection's "
            "full-horizon metric is shown where the full sweep tried it; the lr ratio counts lattice steps.)", "",
            md_table(pd.DataFrame(rows)), ""]


def _gaps(runs: pd.DataFrame, task: str, opt: str) -> str:
    """The paired gaps (mean over shared final seeds) between `opt` and its neighbours in the task's
    ranking by mean final metric."""
    r = runs[runs.task == task] if len(runs) else runs
    if not len(r) or opt not in set(r.optimizer):
        return "–"
    lower = r.direction.iloc[0] == "min"
    ranked = r[~r.diverged.astype(bool)].groupby("optimizer").final_metric.mean().sort_values(ascending=lower)
    if opt not in ranked.index:
        return "–"
    i = list(ranked.index).index(opt)
    near = [ranked.index[j] for j in (i - 1, i + 1) if 0 <= j < len(ranked)]
    mine = verdicts.seed_values(runs, task, opt)
    return "; ".join(f"{opt} − {o}: {fmt(stats.paired(mine, verdicts.seed_values(runs, task, o)).diff, 3)}"
                     for o in near) or "–"


def repeat_lines(repeats: pd.DataFrame, runs: pd.DataFrame) -> list[str]:
    """The tuning noise: per task × optimizer, the spread across repeats of the selected lr (in
    half-decades) and of the selection's tuning metric, beside the paired gaps to its neighbours
    in the final runs' ranking."""
    if not len(repeats):
        return []
    rows = []
    for (task, opt), g in repeats.groupby(["task", "optimizer"]):
        lr = g.lr.astype(float)
        score = g.tuning_metric.astype(float)
        rows.append({"task": task, "optimizer": opt, "repeats (seeds)": f"{len(g)} ({'; '.join(g.seeds.astype(str))})",
                     "selected lrs": ", ".join(fmt(x, 3) for x in lr),
                     "lr spread (half-decades)": fmt(2 * math.log10(lr.max() / lr.min()), 2),
                     "tuning metric: range (sd)": f"{g.metric.iloc[0]} {fmt(float(score.max() - score.min()), 3)} "
                                                  f"({fmt(float(score.std(ddof=1)), 3)})",
                     "paired gaps to its neighbours (final runs)": _gaps(runs, task, opt)})
    return ["### Tuning noise (repeated tuning)", "",
            "The same protocol, budget and horizon with other tuning seeds (one list a repeat): how far the "
            "selected lr moves and how much the selection's tuning metric varies from one set of seeds to "
            "another. The spread is of the tuning metric (validation split, tuning horizon, the repeat's seed), "
            "not of the final runs' test metric: it says how far the selection moves, and the final runs' paired "
            "gaps beside it are for scale, not a test of one against the other.", "", md_table(pd.DataFrame(rows)), ""]


def section(tables: dict, out: Path) -> list[str]:
    """The report's tuning section: markdown lines; figures under out/figures/."""
    tuning = tables.get("tuning", pd.DataFrame())
    if not len(tuning):
        return []
    scores = trial_scores(tuning)
    lines = ["## Tuning protocol", ""] + protocol_lines(tuning, scores)
    tuned = tuning[_text(tuning.search_space) != ""]
    space = tuned.groupby("optimizer")["search_space"].agg(lambda s: "; ".join(sorted(set(s)))).reset_index()
    untuned = sorted(set(tuning.optimizer) - set(tuned.optimizer))
    fixed = sorted(set(tuning.task) - set(tuned.task))
    lines += ["Where each optimizer's grid starts (the geometric centre of its range, on the lattice):", "",
              md_table(space.rename(columns={"search_space": "search space"})), "",
              "Not tuned (one trial at the entry's defaults): " + (", ".join(untuned) or "none")
              + "; tasks with a fixed lr (one trial at it): " + (", ".join(fixed) or "none") + ".", ""]
    lines += budget_lines(scores) + edge_lines(scores)
    lines += ["Selected hyperparameters (mean over the tuning seeds; `stage`: where the protocol found it; "
              "`at edge`: the selected value is the smallest or largest tried along its coordinate, and why):", "",
              selected_table(scores), ""]
    for task, s in scores.groupby("task"):
        if not tuned_names(s):   # one trial each (a fixed lr, self-tuning entries): nothing to draw
            continue
        lines += [f"### {task}", "",
                  f"![sensitivity]({sensitivity_figure(task, s, out)})", "",
                  f"![search progress]({progress_figure(task, s, out)})", ""]
    lines += horizon_lines(tables.get("horizon_check", pd.DataFrame()), tuning, tables.get("runs", pd.DataFrame()))
    lines += repeat_lines(tables.get("tuning_repeats", pd.DataFrame()), tables.get("runs", pd.DataFrame()))
    return lines
