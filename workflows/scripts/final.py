"""Snakemake job: the final seeds of one optimizer on one task, in one process, at the tuned
hyperparameters or (the self-tuning track) at the entry's defaults.

Each finished seed goes to the store, <runs>/store/<track>/<task>/<optimizer>/<key>/seed<s>.json,
where <key> hashes what the runs depend on besides the input files (hyperparameters, schedule,
size, device, monitor interval, precision, and the code: every module of the engine, the task
and optimizer registries loaded in this process, so that a record written by another harness,
schedule or parameter routing is not taken). The store is not a declared output, so it survives a kill (and
--rerun-incomplete's deletion of the job's outputs). A stored seed is taken again only when it is
newer than every input file (Snakemake's own test of an up-to-date output), whole, and in the
place its record says, and readable into the tables; the declared outputs are hard links to the store's files, made at the end."""
import hashlib
import json
import os
import sys
from pathlib import Path

from workflows.engine.harness import job_device_settings
from workflows.engine import aggregate, measurements, records

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821 (snakemake is injected)
w, p = snakemake.wildcards, snakemake.params  # noqa: F821
settings = job_device_settings(p)   # the profile's device settings; the GPU pool
# the records' step times depend on the jobs sharing the device: a key part, not an argument of the run
shared = {"jobs_per_device": p.jobs_per_device} if hasattr(p, "jobs_per_device") else {}
measurement = measurements.get(snakemake.rule)  # noqa: F821 (final, or defaults: the self-tuning track)
hparams = None   # the self-tuning track: the entry's defaults
if measurement.reads_selection:
    hparams = records.read_selection(snakemake.input.summary, p.runs, p.size, "final")["hparams"]  # noqa: F821


def code_hash(packages=("optimizers", "tasks", "workflows.engine")) -> str:
    """The sha256 of the files of every module of `packages` loaded now (in name order): the code a
    run's numbers depend on, the task's and the optimizer's files (the job's inputs) among it."""
    names = sorted(n for n, m in sys.modules.items() if getattr(m, "__file__", None)
                   and any(n == pkg or n.startswith(pkg + ".") for pkg in packages))
    return hashlib.sha256(b"".join(Path(sys.modules[n].__file__).read_bytes() for n in names)).hexdigest()


engine = code_hash()
depends = dict(hparams=hparams, schedule=p.schedule, size=p.size, device=p.device, monitor_every=p.monitor_every,
               precision=p.precision, engine=engine, **settings, **shared)
key = hashlib.sha256(json.dumps(depends, sort_keys=True, default=str).encode()).hexdigest()[:16]
store = Path(p.store) / key
newest_input = max(os.stat(f).st_mtime for f in snakemake.input)  # noqa: F821


def stored(path: Path, out: str):
    """The stored record for output `out`, or None when it must be computed (missing, older than an
    input, refused by the reader or by the aggregator's checks)."""
    if not path.exists() or path.stat().st_mtime <= newest_input:
        return None
    try:
        aggregate.check(out, records.read(path), p.runs, size=p.size)
    except records.RecordError as e:
        print(f"recomputing: {e}", file=sys.stderr)
        return None
    return path


for seed, out in zip(p.seeds, snakemake.output):  # noqa: F821
    path = store / f"seed{seed}.json"
    if stored(path, out):
        print(f"seed {seed}: taken from {path}", file=sys.stderr)
        continue
    checkpoint = Path(p.checkpoints) / f"seed{seed}.ckpt"  # a killed job resumes from here
    record = measurement.run(w.task, w.optimizer, p.size, seed=seed, hparams=hparams, schedule=p.schedule,
                             device=p.device, threads=snakemake.threads, progress=True,  # noqa: F821
                             checkpoint=checkpoint, checkpoint_every=p.checkpoint_every,
                             monitor_every=p.monitor_every, precision=p.precision, **settings)
    records.write(record, path)  # atomic: a killed job leaves no partial file
    checkpoint.unlink(missing_ok=True)

for seed, out in zip(p.seeds, snakemake.output):  # noqa: F821
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).unlink(missing_ok=True)
    try:
        os.link(store / f"seed{seed}.json", out)   # the same file: no copy, and a kill cannot leave half of one
    except OSError:   # a file system without hard links
        records.write(records.read(store / f"seed{seed}.json"), out)
