"""The tuning section of the report, from the tuning table alone (one row per trial × tuning seed,
written by workflows.engine.protocol.trial_rows): the protocol as the sweeps ran it, the selected
hyperparameters with their edge flags, and per task a sensitivity figure (the validation metric
against each tuned hyperparameter, per optimizer, the selected trial marked) and a tuning-budget
figure (the expected best validation metric after k trials).

Expected best after k trials (Dodge et al. 2019, "Show your work", expected validation
performance): with the N trial scores sorted v(1) <= ... <= v(N), the best of k trials drawn
uniformly with replacement is v(i) with probability (i/N)**k - ((i-1)/N)**k for a metric to
maximise, so

    E[max of k] = sum_i v(i) * ((i/N)**k - ((i-1)/N)**k),

exact from the trials, no resampling; for a metric to minimise, the same on -v. A trial's score is
its mean over the tuning seeds (the score selection uses). A diverged trial has no value; it counts
as the worst finite trial of the task (any optimizer), so that it weighs as "no better than
anything tried" instead of making every expectation infinite.
"""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from report.output import md_table, save  # noqa: E402



def expected_best(scores, k: int, direction: str) -> float:
    """E[best of k draws with replacement from `scores`] (Dodge et al. 2019), exact."""
    if direction not in ("min", "max"):
        raise ValueError(f"direction {direction!r}; valid: 'min', 'max'")
    v = np.sort(np.asarray(scores, dtype=float) * (1 if direction == "max" else -1))
    n = len(v)
    if n == 0 or k < 1:
        raise ValueError(f"expected best of k={k!r} from {n} trials: needs k >= 1 and at least one trial")
    i = np.arange(1, n + 1)
    best = float(np.sum(v * ((i / n) ** k - ((i - 1) / n) ** k)))
    return best if direction == "max" else -best


def trial_scores(tuning: pd.DataFrame) -> pd.DataFrame:
    """One row per (task, optimizer, trial): the tuned values, the mean metric over tuning seeds
    (NaN if any seed diverged), selected, and the score the budget curve uses (`budget_score`)."""
    g = tuning.assign(value=tuning.final_metric.where(~tuning.diverged.astype(bool)))
    keys = ["task", "optimizer", "trial"]
    first = g.groupby(keys, sort=True).first().drop(columns=["value", "seed", "final_metric"])
    scores = first.assign(mean_metric=g.groupby(keys, sort=True)["value"].agg(lambda s: s.mean(skipna=False)))
    scores = scores.reset_index()
    worst = {}
    for task, t in scores.groupby("task"):
        finite = t.mean_metric.dropna()
        worst[task] = (finite.max() if t.direction.iloc[0] == "min" else finite.min()) if len(finite) else math.nan
    return scores.assign(budget_score=scores.mean_metric.fillna(scores.task.map(worst)))


def tuned_names(rows: pd.DataFrame) -> list[str]:
    names = []
    for t in rows["tuned"].fillna(""):
        names += [n for n in str(t).split(", ") if n and n not in names]
    return names


def _g(x) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3g}"


def palette(optimizers: list[str]) -> dict:
    """One colour an optimizer, the same in both figures of a task."""
    cmap = plt.cm.tab10 if len(optimizers) <= 10 else plt.cm.tab20
    return {o: cmap(i % cmap.N) for i, o in enumerate(optimizers)}


def sensitivity_figure(task: str, scores: pd.DataFrame, out: Path) -> str:
    names = tuned_names(scores)
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
            ax.plot(s[name], s.mean_metric, "o", ms=4, color=colours[opt], label=opt, alpha=0.8)
            sel = s[s.selected.astype(bool)]
            ax.plot(sel[name], sel.mean_metric, "*", ms=13, color=colours[opt], mec="black", mew=0.8)
        ax.set_xscale("log")
        if positive:
            ax.set_yscale("log")
        ax.set_xlabel(name)
        ax.set_ylabel(f"{scores.metric.iloc[0]} (mean over tuning seeds)")
    axes[0][0].set_title(f"{task}: sensitivity (★ selected; diverged trials not drawn)", fontsize=9)
    axes[0][0].legend(fontsize=7, ncol=2, loc="best")   # lr: every tuned optimizer is on it
    return save(fig, out, f"tuning-sensitivity-{task}")


def budget_figure(task: str, scores: pd.DataFrame, out: Path) -> str:
    fig, ax = plt.subplots(figsize=(6.5, 4))
    direction = scores.direction.iloc[0]
    colours = palette(sorted(scores.optimizer.unique()))
    for opt, s in sorted(scores.groupby("optimizer")):
        v = s.budget_score.dropna().to_numpy()
        if not len(v):
            continue
        ks = np.arange(1, int(s.trials.max()) + 1)
        ax.plot(ks, [expected_best(v, k, direction) for k in ks], "o-" if len(v) > 1 else "s", ms=3, label=opt,
                color=colours[opt])
    drawn = scores.budget_score.dropna()
    if len(drawn) and (drawn > 0).all():
        ax.set_yscale("log")
    ax.set_xlabel("trials k")
    ax.set_ylabel(f"expected best {scores.metric.iloc[0]} after k trials")
    ax.set_title(f"{task}: tuning budget (Dodge et al. 2019)", fontsize=9)
    ax.legend(fontsize=7, ncol=2)
    return save(fig, out, f"tuning-budget-{task}")


def section(tables: dict, out: Path) -> list[str]:
    """The report's tuning section: markdown lines; figures under out/figures/."""
    tuning = tables.get("tuning", pd.DataFrame())
    if not len(tuning):
        return []
    scores = trial_scores(tuning)
    lines = ["## Tuning protocol", ""]
    schedules = sorted(tuning.schedule.dropna().unique())
    seeds = sorted(tuning.tuning_seeds.unique())
    steps = tuning.groupby("task")["steps"].first()
    lines += [f"Every optimizer gets the same number of trials on a task "
              f"({', '.join(str(int(n)) for n in sorted(tuning.trials.unique()))}): the first points of a scrambled "
              "Sobol sequence over its search space (log ranges), so each tuned hyperparameter's range is covered "
              "evenly; a trial runs on each of "
              f"{', '.join(str(int(s)) for s in seeds)} tuning seeds (disjoint from the final seeds) and the trial "
              "with the best mean is selected. Self-tuning entries and tasks with a fixed lr run one trial. "
              f"Schedule of the tuning and final runs: {'; '.join(schedules)} (an entry that brings its own, "
              "schedule-free, runs at constant lr). Tuning steps per task: "
              + ", ".join(f"{t} {int(n)}" for t, n in steps.items()) + ".", ""]
    tuned = tuning[tuning.search_space.fillna("") != ""]
    space = tuned.groupby("optimizer")["search_space"].agg(lambda s: "; ".join(sorted(set(s)))).reset_index()
    untuned = sorted(set(tuning.optimizer) - set(tuned.optimizer))
    fixed = sorted(set(tuning.task) - set(tuned.task))
    lines += ["Search space per optimizer (lr, and weight decay where it is decoupled):", "",
              md_table(space.rename(columns={"search_space": "search space"})), "",
              "Not tuned (one trial at the entry's defaults): " + (", ".join(untuned) or "none")
              + "; tasks with a fixed lr (one trial at it): " + (", ".join(fixed) or "none") + ".", ""]

    rows = []
    for (task, opt), s in scores.groupby(["task", "optimizer"]):
        sel = s[s.selected.astype(bool)].iloc[0]
        names = tuned_names(s) or ["lr"]
        rows.append({"task": task, "optimizer": opt,
                     "selected": ", ".join(f"{n} {_g(sel[n])}" for n in names),
                     f"tuning {sel.metric}": _g(sel.mean_metric),
                     "trials": str(len(s)), "diverged trials": str(int(s.mean_metric.isna().sum())),
                     "at edge": sel.edge if isinstance(sel.edge, str) else ""})
    lines += ["Selected hyperparameters (mean over the tuning seeds; `at edge`: the selected value is the "
              "smallest or largest tried, the optimum may lie outside the range):", "", md_table(pd.DataFrame(rows)), ""]

    for task, s in scores.groupby("task"):
        if not tuned_names(s):   # one trial each (a fixed lr, self-tuning entries): nothing to draw
            continue
        lines += [f"### {task}", "",
                  f"![sensitivity]({sensitivity_figure(task, s, out)})", "",
                  f"![tuning budget]({budget_figure(task, s, out)})", ""]
    lines += ["The budget figure is the expected best tuning-seed mean after k trials drawn from the N run "
              "(Dodge et al. 2019, exact from the trials); a diverged trial counts as the task's worst finite "
              "trial. An optimizer whose curve is flat from k = 1 is easy to tune; one that keeps improving "
              "needs the whole budget.", ""]
    return lines
