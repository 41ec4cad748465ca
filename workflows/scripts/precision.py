"""Snakemake job: the precision measurement of one optimizer on one task (workflows.engine.precision)."""
import sys

from tasks import get as get_task
from workflows.engine import precision, records

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821 (snakemake is injected)
w, p = snakemake.wildcards, snakemake.params  # noqa: F821
try:
    selection = records.read_input(snakemake.input.summary, p.runs)["selection"]  # noqa: F821
except records.RecordError as e:
    print(f"precision: {e}", file=sys.__stderr__)   # on the terminal, not only in the log
    raise
hparams = selection["hparams"]
cfg = p.precision
steps = max(1, int(get_task(w.task).size(p.size)["steps"] * cfg["steps_fraction"]))
record = precision.measure(w.task, w.optimizer, p.size, hparams=hparams, seeds=cfg["seeds"],
                           static_scales=cfg["static_scales"], device=p.device,
                           threads=snakemake.threads, steps=steps, schedule=p.schedule,  # noqa: F821
                           probe_every=cfg.get("probe_every"))
records.write(record, snakemake.output[0])  # noqa: F821
