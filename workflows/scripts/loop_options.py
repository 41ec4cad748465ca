"""Snakemake job: the training-loop options of one task against its plain loop, same process."""
import os
import sys

from workflows.engine.device import JOBS_PER_DEVICE_VARIABLE
from workflows.engine.harness import DEVICE_DEFAULTS
from workflows.engine import records
from workflows.engine.measurements import loop_options

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821 (snakemake is injected)
w, p = snakemake.wildcards, snakemake.params  # noqa: F821
# the run's device settings where the profile moves them from the defaults (params only then), and
# how many jobs share the device (the GPU pool), for the records
settings = {k: getattr(p, k) for k in DEVICE_DEFAULTS if hasattr(p, k)}
if hasattr(p, "jobs_per_device"):
    os.environ[JOBS_PER_DEVICE_VARIABLE] = str(p.jobs_per_device)
lo = p.loop_options
record = loop_options.run(w.task, w.optimizer, p.size, steps=lo["steps"], rounds=lo["rounds"],
                          monitor_every=p.monitor_every, device=p.device, threads=p.torch_threads,
                          **settings)
for row in record["options"]:
    print(f"{row['option']}: {row['ratio_to_plain']:.3f} x plain, {row['activation_bytes']} activation bytes",
          file=sys.stderr)
records.write(record, snakemake.output[0])  # noqa: F821
