"""Reuse of a profile's published results when entries are added to it.

`snakemake --configfile workflows/config/smoke.yaml --config 'add_optimizers=[radam]'` on a fresh
clone has no records (results/runs/ is not in git) but has the profile's published tables
(results/tables/smoke/, in git). The design needs no extra published data beyond one small file:
aggregation merges the published tables' rows of the pairs it reuses with the rows of the records
made here, and every aggregation writes `provenance.json` beside its tables (its configuration, the
hash of every code file of the optimizers, the tasks and the engine, the installed versions of torch
and of every library constraints.txt pins, each task's data hash at one seed, the schema version,
the commit and the machine), a few kB, which is what makes a later reuse checkable.

A published (task, optimizer) pair is reused only when what its numbers depend on is unchanged
(`decide`): the schema version, the installed libraries, the configuration (the profile's, apart
from the additions), the engine's code (any file of optimizers/, tasks/ or workflows/engine/ that
no pair's files include: a difference there reruns everything), the pair's own files (the entry's,
its fallback's and the task's, with every file of optimizers/ and tasks/ they import: a difference
reruns the pairs those files define), and the task's data hash, recomputed here by building the
task (a corpus read from another Python's stdlib differs). Anything else reruns here, and the pipeline
says which key, file or hash differs, and what it reruns, before any job runs. The machine is not
required to match: seconds to target and step times of a reused row are that machine's, which the
reuse table (and the report's header) says; a step time's ratio to AdamW is of one job on one
machine, comparable across rows.
"""
from __future__ import annotations

import ast
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
CODE = ("optimizers", "tasks", "workflows/engine")   # the code a run's numbers depend on
ENTRY_PACKAGES = ("optimizers", "tasks")   # the packages whose files register entries
CONSTRAINTS = ROOT / "constraints.txt"     # the pinned versions of every installed library
PROVENANCE = "provenance.json"
TABLES = ("reuse.csv", PROVENANCE)   # written by every aggregation beside its tables


def code_files(root: Path = ROOT) -> dict[str, str]:
    """{path relative to the repository: sha256 (16 hex digits)} of every Python file of `CODE`."""
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()[:16]
            for pkg in CODE for p in sorted((root / pkg).rglob("*.py")) if "__pycache__" not in p.parts}


def machine(env: dict) -> str:
    """The machine a record ran on, in one line: the device (the CPU with the flags that change its
    kernels' results, or the GPU) and the torch build."""
    if str(env.get("device", "cpu")).startswith("cuda"):
        what = f"{env.get('device_name')} (compute capability {env.get('device_capability')})"
    else:
        what = f"{env.get('cpu')} ({env.get('cpu_capability')}, {env.get('cpu_count')} cores)"
    return f"{what}, torch {env.get('torch')}"


def libraries(constraints: Path = CONSTRAINTS) -> dict[str, str]:
    """{name: installed version} of torch (the build loaded: 2.13.0+cpu is not 2.13.0+cu128) and of
    every library constraints.txt pins: a kernel, a parser or a statistic of another version may
    change a number with the code unchanged."""
    from importlib import metadata
    import torch
    pinned = [line.split("==")[0].strip() for line in constraints.read_text().splitlines()
              if "==" in line and not line.lstrip().startswith("#")] if constraints.is_file() else []
    out = {}
    for name in pinned:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    out["torch"] = torch.__version__
    return dict(sorted(out.items(), key=lambda kv: kv[0].lower()))


def provenance(config: dict, jobs, run_rows: list[dict], environment: dict) -> dict:
    """What a later reuse of these tables is checked against (`decide`)."""
    from workflows.engine import records
    data = {}
    for r in sorted(run_rows, key=lambda r: r["seed"]):
        if r.get("track", "tuned") == "tuned" and isinstance(r.get("data_hash"), str):
            data.setdefault(r["task"], {"seed": int(r["seed"]), "data_hash": r["data_hash"]})
    return dict(schema_version=records.SCHEMA_VERSION, config=config, jobs=[list(j) for j in jobs],
                code=code_files(), libraries=libraries(), data_hashes=data, git_commit=environment.get("git_commit"),
                machine=machine(environment) if environment else None)


def imported_files(path: Path, root: Path = ROOT) -> set[Path]:
    """`path` and every file of optimizers/ or tasks/ it imports, at any depth, lazy imports inside
    functions included (lamb.py's `from optimizers.adam import adam_spec`: LAMB is defined by adam.py
    too). A package's own __init__.py is not followed: it registers no entry, so a change to it is
    the engine's (`decide`)."""
    seen, todo = set(), [Path(path).resolve()]
    while todo:
        f = todo.pop()
        if f in seen:
            continue
        seen.add(f)
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:   # relative: from the importing file's package
                    base = ".".join(p for p in (f.parent.name, base) if p)
                names = [base, *(f"{base}.{a.name}" for a in node.names)]
            else:
                continue
            for name in names:
                parts = name.split(".")
                if parts[0] in ENTRY_PACKAGES and len(parts) > 1 and (root / parts[0] / f"{parts[1]}.py").is_file():
                    todo.append((root / parts[0] / f"{parts[1]}.py").resolve())
    return seen


def pair_files(task: str, optimizer: str) -> set[str]:
    """The files that define one pair: the optimizer's entry, its fallback's, the task's, and every
    file of optimizers/ and tasks/ these import."""
    import optimizers
    import tasks
    spec = optimizers.get(optimizer)
    found = {optimizers.source(optimizer), tasks.source(task)} | ({optimizers.source(spec.fallback)} if spec.fallback else set())
    return {f.relative_to(ROOT.resolve()).as_posix() for source in found for f in imported_files(Path(source))}


@dataclass
class Decision:
    """Which published pairs a run with additions reuses, and why the others rerun."""
    published: str                       # results/tables/<profile>
    pairs: list = field(default_factory=list)        # reused (task, optimizer)
    rerun: dict = field(default_factory=dict)        # published (task, optimizer) rerun here -> why
    git_commit: str | None = None
    machine: str | None = None

    def params(self) -> dict:
        """For the aggregation job (Snakemake params: plain data)."""
        return dict(published=self.published, pairs=[list(p) for p in self.pairs], git_commit=self.git_commit,
                    machine=self.machine, rerun=[[t, o, why] for (t, o), why in sorted(self.rerun.items())])

    @classmethod
    def from_params(cls, params: dict) -> "Decision":
        return cls(params["published"], [tuple(p) for p in params["pairs"]],
                   {(t, o): why for t, o, why in params["rerun"]}, params["git_commit"], params["machine"])


# One decision a run. The main Snakemake process decides (recomputing the task data hashes) and writes
# it to a file; any process that reads the Snakefile again (a cluster executor's job) reads that file,
# so the jobs it declares and the rows the aggregation merges are the main process's.

def write_decision(decision: Decision, path) -> None:
    """The decision to `path`, rewritten only when it changed (its mtime stays the decision's)."""
    path = Path(path)
    text = json.dumps(decision.params(), indent=1, sort_keys=True) + "\n"
    if not path.is_file() or path.read_text() != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def read_decision(path) -> Decision:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: the main Snakemake process writes the reuse decision "
                                f"before any job runs; run the same command again")
    return Decision.from_params(json.loads(path.read_text()))


def _refuse_all(decision: Decision, published_pairs, why: str) -> Decision:
    decision.rerun = {p: why for p in published_pairs}
    return decision


def decide(config: dict, published: str, jobs, data_hash) -> Decision:
    """The reuse of `published` (results/tables/<profile>/) by the run of `config` (additions applied)
    whose jobs are `jobs` ((rule, task, optimizer)). `data_hash(task, seed) -> str` recomputes a task's
    data hash here (`data_hash_here`)."""
    from workflows.engine import config as profile_config, records
    decision = Decision(published)
    path = Path(published) / PROVENANCE
    if not path.is_file():
        return _refuse_all(decision, [], f"{path} is missing (tables published before reuse existed, or none)")
    prov = json.loads(path.read_text())
    decision.git_commit, decision.machine = prov.get("git_commit"), prov.get("machine")
    pub_jobs = {tuple(j) for j in prov["jobs"]}
    pub_pairs = sorted({(t, o) for _, t, o in pub_jobs})
    if prov.get("schema_version") != records.SCHEMA_VERSION:
        return _refuse_all(decision, pub_pairs, f"schema_version {prov.get('schema_version')} published, "
                                                f"{records.SCHEMA_VERSION} here")
    why = _libraries_differ(prov.get("libraries"))
    if why:
        return _refuse_all(decision, pub_pairs, why)
    diff = profile_config.differences(config, profile_config.with_additions(prov["config"], config))
    if diff:
        return _refuse_all(decision, pub_pairs, "the configuration differs in " + ", ".join(
            f"{k} (published {json.dumps(a)}, here {json.dumps(b)})" for k, a, b in diff))
    now = code_files()
    changed = sorted(f for f, h in prov["code"].items() if now.get(f) != h)
    entry_files = {f for p in pub_pairs for f in pair_files(*p)}
    shared = [f for f in changed if f not in entry_files]
    if shared:
        return _refuse_all(decision, pub_pairs, "the engine's code differs: " + ", ".join(
            f"{f} ({'removed' if f not in now else 'changed'} since the published run)" for f in shared))
    for pair in pub_pairs:
        files = sorted(pair_files(*pair) & set(changed))
        if files:
            decision.rerun[pair] = f"{', '.join(files)} changed since the published run"
    _check_data(decision, prov, pub_pairs, data_hash)
    current = {}
    for rule, t, o in jobs:
        current.setdefault((t, o), set()).add(rule)
    for pair in pub_pairs:
        if pair in decision.rerun or pair not in current:
            continue
        missing = sorted(rule for rule in current[pair] if (rule, *pair) not in pub_jobs)
        if missing:
            decision.rerun[pair] = f"its {', '.join(missing)} job(s) were not published"
        else:
            decision.pairs.append(pair)
    return decision


def _libraries_differ(published: dict | None) -> str | None:
    """Why the installed libraries refuse the reuse (torch's version or a pinned one's), or None."""
    if published is None:
        return "the library versions were not published (provenance.json predates them)"
    here = libraries()
    diff = [f"{name} (published {published.get(name, 'not installed')}, here {here.get(name, 'not installed')})"
            for name in sorted(set(published) | set(here), key=str.lower)
            if published.get(name, "not installed") != here.get(name, "not installed")]
    return "the installed libraries differ: " + ", ".join(diff) if diff else None


def _check_data(decision: Decision, prov: dict, pub_pairs, data_hash) -> None:
    """Marks for rerun the pairs of every task whose data hash here differs from the published one."""
    for task in sorted({t for t, _ in pub_pairs}):
        pairs = [p for p in pub_pairs if p[0] == task and p not in decision.rerun]
        if not pairs:
            continue
        published = prov["data_hashes"].get(task)
        why = None
        if published is None:
            why = f"task {task}'s data hash was not published (no final run)"
        else:
            here = data_hash(task, published["seed"])
            if here != published["data_hash"]:
                why = (f"task {task}'s data hash differs (seed {published['seed']}: published "
                       f"{published['data_hash']}, here {here})")
        for p in pairs:
            if why:
                decision.rerun[p] = why


def data_hash_here(size: str):
    """`decide`'s data_hash: the task built at `size` on the CPU, as a run builds it (each task once)."""
    import tasks
    cache = {}

    def compute(task: str, seed: int) -> str:
        if (task, seed) not in cache:
            cache[(task, seed)] = tasks.get(task).make(size, seed).data_hash
        return cache[(task, seed)]
    return compute


def _pairs_text(pairs) -> str:
    tasks_ = {t for t, _ in pairs}
    return f"{', '.join(sorted({o for _, o in pairs}))} on {len(tasks_)} task{'s' * (len(tasks_) != 1)}"


def messages(decision: Decision, added: dict, run_jobs, report: str) -> list[str]:
    """What the pipeline prints before any job runs: what is reused from where, what reruns and why."""
    names = ", ".join(x for v in added.values() for x in v)
    lines = []
    if decision.pairs:
        lines.append(f"adding {names}: reusing the published rows of {len(decision.pairs)} pairs "
                     f"({_pairs_text(decision.pairs)}) from {decision.published}/ (commit "
                     f"{decision.git_commit}, {decision.machine})")
    by_why = {}
    for pair, why in sorted(decision.rerun.items()):
        by_why.setdefault(why, []).append(pair)
    for why, pairs in by_why.items():
        jobs = sum((t, o) in pairs for _, t, o in run_jobs)
        lines.append(f"not reusing {len(pairs)} published pairs ({_pairs_text(pairs)}): {why}; "
                     f"their {jobs} jobs rerun here")
    if not decision.pairs and not decision.rerun:
        lines.append(f"adding {names}: nothing published to reuse ({decision.published}/{PROVENANCE} is missing); "
                     f"every job of the profile runs here")
    lines.append(f"{len(run_jobs)} measurement jobs run here; the report goes to report/{report}/")
    return lines


def _read_text_table(path: Path) -> pd.DataFrame:
    """A CSV as text (no number parsed and written again: the published bytes stay the published ones)."""
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.EmptyDataError, FileNotFoundError):
        return pd.DataFrame()


def merge(out: Path, reuse: dict, row_tables, config: dict, jobs, added: dict) -> None:
    """Into the tables just written at `out` from the records made here: the published rows of the
    reused pairs (`reuse`: Decision.params()), the published figures of their tasks, the reuse table
    (one row a pair: where its rows come from) and the provenance of the tables made here."""
    out = Path(out)
    reused = {tuple(p) for p in reuse["pairs"]} if reuse else set()
    if reused:
        published = Path(reuse["published"])
        for name in (*row_tables, "samples"):
            pub = _read_text_table(published / f"{name}.csv")
            if pub.empty or "task" not in pub:
                continue
            keep = pub[[(t, o) in reused for t, o in zip(pub["task"], pub["optimizer"])]]
            here = _read_text_table(out / f"{name}.csv")
            merged = pd.concat([keep, here], ignore_index=True).fillna("")
            merged.to_csv(out / f"{name}.csv", index=False)
        figures = json.loads((published / "figures.json").read_text()) if (published / "figures.json").exists() else {}
        figures = {t: f for t, f in figures.items() if t in {t for t, _ in reused}}
        figures.update(json.loads((out / "figures.json").read_text()))
        (out / "figures.json").write_text(json.dumps(figures, sort_keys=True) + "\n")
    env = json.loads((out / "environment.json").read_text())
    try:
        run_rows = pd.read_csv(out / "runs.csv", dtype={"data_hash": str}).to_dict("records")
    except pd.errors.EmptyDataError:
        run_rows = []
    here_rows = [r for r in run_rows if (r["task"], r["optimizer"]) not in reused]
    prov = provenance(config, jobs, here_rows, env)
    (out / PROVENANCE).write_text(json.dumps(prov, indent=1, sort_keys=True, default=str) + "\n")
    _reuse_table(out, reuse, reused, jobs, added, prov)


def _reuse_table(out: Path, reuse, reused, jobs, added: dict, prov: dict) -> None:
    rerun = {(t, o): why for t, o, why in (reuse or {}).get("rerun", [])}
    rows = [dict(task=t, optimizer=o, source="published", git_commit=reuse["git_commit"], machine=reuse["machine"],
                 added=False, why="") for t, o in sorted(reused)]
    for t, o in sorted({(t, o) for _, t, o in jobs}):
        rows.append(dict(task=t, optimizer=o, source="ran here", git_commit=prov["git_commit"], machine=prov["machine"],
                         added=o in added.get("optimizers", []) or t in added.get("tasks", []),
                         why=rerun.get((t, o), "")))
    pd.DataFrame(rows, columns=["task", "optimizer", "source", "git_commit", "machine", "added", "why"]).to_csv(
        out / "reuse.csv", index=False)
