"""The report's across-tasks section: ranks with ties and a performance profile over common ground,
and per task family the optimizers statistically tied for best.

Common ground. A task named ``<another task>-<suffix>`` is a variant of it (an ablation such as
``gan-ring8-beta1-0.9`` or ``cnn-digits-constant-lr``, a study such as ``lm-stdlib-qk`` whose AdamW
and Muon runs repeat ``lm-stdlib``'s, a sparse variant): variants are left out, so that no
optimizer gains a free rank on a task only it ran or counts a duplicated run twice. Of the primary
tasks, the ranks use the largest block of tasks × optimizers in which every optimizer ran every
task (most task-optimizer cells, then most tasks): "not run" is missing, never failed.

Ties. On a task, optimizer j beats i when i diverged on more seeds than j, or when the paired
t-test over their shared seeds separates them after Holm's correction over the task's pairs and j
is the better, unless TOST finds them equivalent within δ = 1 % of the better mean. i's rank is one
plus the number of optimizers that beat it, so that optimizers nothing separates share a rank.
"""
from __future__ import annotations

import itertools
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from report import stats, verdicts  # noqa: E402
from report.output import fmt, md_table, save  # noqa: E402
from report.steptime import baseline_name  # noqa: E402

MAX_TASKS = 14   # the common-ground search enumerates subsets of the primary tasks


def variants(tasks) -> set[str]:
    """The tasks whose name extends another task's name by a '-suffix'."""
    tasks = set(tasks)
    return {t for t in tasks if any(t.startswith(o + "-") for o in tasks if o != t)}


def primary(runs: pd.DataFrame) -> pd.DataFrame:
    return runs[~runs.task.isin(variants(runs.task.unique()))]


def common_ground(runs: pd.DataFrame) -> tuple[list[str], list[str]]:
    """(tasks, optimizers): the largest block in which every optimizer ran every task (see above)."""
    ran = runs.groupby("task").optimizer.apply(lambda s: frozenset(s)).to_dict()
    tasks = sorted(ran)[:MAX_TASKS]
    best = (0, 0, (), frozenset())
    for k in range(2, len(tasks) + 1):
        for subset in itertools.combinations(tasks, k):
            opts = frozenset.intersection(*(ran[t] for t in subset))
            if len(opts) >= 2 and (len(subset) * len(opts), k) > best[:2]:
                best = (len(subset) * len(opts), k, subset, opts)
    return list(best[2]), sorted(best[3])


def tie_ranks(g: pd.DataFrame) -> pd.Series:
    """Ranks with ties (see above) of the optimizers in `g`, one task's final runs."""
    lower = g.direction.iloc[0] == "min"
    opts = sorted(g.optimizer.unique())
    values = {o: verdicts.seed_values(g, g.task.iloc[0], o) for o in opts}
    lost = {o: int(g.loc[g.optimizer == o, "diverged"].sum()) for o in opts}
    pairs = list(itertools.combinations(opts, 2))
    tests = [stats.paired(values[a], values[b]) for a, b in pairs]
    adjusted = stats.holm([t.p for t in tests])
    beaten = {o: 0 for o in opts}
    for (a, b), t, p_adj in zip(pairs, tests, adjusted):
        if lost[a] != lost[b]:
            beaten[a if lost[a] > lost[b] else b] += 1
            continue
        if not (p_adj < stats.ALPHA) or t.diff == 0:
            continue
        d = (values[a] - values[b]).dropna().to_numpy()
        best_mean = (values[a] if (t.diff < 0) == lower else values[b]).mean()
        if stats.tost_p(d, verdicts.margin_of(float(best_mean))) < stats.ALPHA:
            continue
        beaten[b if (t.diff < 0) == lower else a] += 1
    return pd.Series({o: 1 + n for o, n in beaten.items()})


def rank_table(runs: pd.DataFrame, tasks: list[str], opts: list[str]) -> pd.DataFrame:
    r = runs[runs.task.isin(tasks) & runs.optimizer.isin(opts)]
    ranks = pd.DataFrame({t: tie_ranks(g) for t, g in r.groupby("task")})
    ranks["mean rank"] = ranks.mean(axis=1)
    ranks = ranks.sort_values(["mean rank"]).reset_index().rename(columns={"index": "optimizer"})
    return ranks.map(lambda x: fmt(x, 3) if isinstance(x, float) else x)


def profile_figure(runs: pd.DataFrame, out: Path) -> str | None:
    steps = runs.assign(cost=runs["steps_to_target"].fillna(np.inf))
    costs = steps.groupby(["task", "optimizer"])["cost"].median().unstack("optimizer")
    if costs.shape[0] < 2:
        return None
    taus = np.logspace(0, 2, 60)
    rho = stats.performance_profile(costs, taus)
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for opt in rho.columns:
        ax.step(rho.index, rho[opt], where="post", label=opt)
    ax.set_xscale("log")
    ax.set_xlabel("τ (steps to target within a factor τ of the best)")
    ax.set_ylabel("share of tasks")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=8, ncol=2)
    ax.set_title("Performance profile (Dolan–Moré) on steps to target, common ground")
    return save(fig, out, "performance-profile")


def which_optimizer(runs: pd.DataFrame) -> pd.DataFrame:
    """Per primary task (by family): the optimizers tied for best, with step time and state bytes."""
    rows = []
    for (family, task), g in primary(runs).groupby(["task_family", "task"]):
        ranks = tie_ranks(g)
        best = sorted(ranks[ranks == 1].index)
        per = g.groupby("optimizer").agg(step=("step_time_median", "median"), state=("state_bytes_per_param", "first"))
        rows.append({"family": family, "task": task, "seeds": str(g.seed.nunique()),
                     "tied for best": ", ".join(f"{o} ({fmt(float(per.loc[o, 'step']) * 1e6, 3)} µs/step, "
                                                 f"{fmt(float(per.loc[o, 'state']), 3)} B/param)" for o in best),
                     "of": str(len(ranks))})
    return pd.DataFrame(rows)


def section(tables: dict, out: Path) -> list[str]:
    runs, steptime = tables["runs"], tables["steptime"]
    if runs.empty:
        return []
    main = primary(runs)
    tasks, opts = common_ground(main)
    left_out = sorted(variants(runs.task.unique()))
    lines = ["## Across tasks", "",
             "Over common ground (report/across.py): variants of another task left out "
             f"({', '.join(left_out) if left_out else 'none'}), and of the primary tasks the largest block in "
             f"which every ranked optimizer ran every task: {len(tasks)} tasks ({', '.join(tasks) or 'none'}) × "
             f"{len(opts)} optimizers. Optimizers nothing separates share a rank (Holm-corrected paired t-tests "
             f"over each task's pairs, TOST within 1 % of the better mean, more diverged seeds ranked below); "
             f"with fewer than {verdicts.MIN_SEEDS} seeds few pairs separate.", ""]
    if tasks:
        common = main[main.task.isin(tasks) & main.optimizer.isin(opts)]
        fig = profile_figure(common, out)
        lines += [f"![performance profile]({fig})", ""] if fig else []
        lines += ["Rank of each optimizer's final metric per task (1 = best, ties shared):", "",
                  md_table(rank_table(main, tasks, opts)), ""]
    lines += ["### Which optimizer should I use", "",
              "Per primary task, the optimizers tied for best among all it ran (rank 1 above, over every "
              "optimizer of the task), with their median step time and state bytes per parameter:", "",
              md_table(which_optimizer(runs)), "",
              f"In the per-task tables, *step / {baseline_name(steptime)}* is the step-time section's same-job ratio "
              "where it measured the pair, otherwise (≈) the ratio of median step times in the "
              "final runs, which ran in separate jobs.", ""]
    return lines
