"""Snakemake job: the precision measurement of one optimizer on one task
(workflows.engine.measurements.precision)."""
import sys

from workflows.engine.harness import job_device_settings
from workflows.engine import records
from workflows.engine.measurements import precision

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821 (snakemake is injected)
w, p = snakemake.wildcards, snakemake.params  # noqa: F821
settings = job_device_settings(p)   # the profile's device settings; the GPU pool
selection = records.read_selection(snakemake.input.summary, p.runs, p.size, "precision")  # noqa: F821
hparams = selection["hparams"]
cfg = p.precision
record = precision.run(w.task, w.optimizer, p.size, hparams=hparams, seeds=cfg["seeds"],
                       static_scales=cfg["static_scales"], device=p.device,
                       threads=snakemake.threads,  # noqa: F821
                       steps=precision.steps(w.task, p.size, cfg["steps_fraction"]), schedule=p.schedule,
                       probe_every=cfg.get("probe_every"),   # optional: None gives 10 probes a run
                       stress_scale=cfg["stress_scale"],
                       growth_interval=cfg.get("growth_interval"),   # optional: None gives steps // 5
                       **settings)
records.write(record, snakemake.output[0])  # noqa: F821
