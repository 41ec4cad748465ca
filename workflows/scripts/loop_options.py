"""Snakemake job: the training-loop options of one task against its plain loop, same process."""
import sys

from workflows.engine.harness import job_device_settings
from workflows.engine import records
from workflows.engine.measurements import loop_options

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821 (snakemake is injected)
w, p = snakemake.wildcards, snakemake.params  # noqa: F821
settings = job_device_settings(p)   # the profile's device settings; the GPU pool
lo = p.loop_options
record = loop_options.run(w.task, w.optimizer, p.size, steps=lo["steps"], rounds=lo["rounds"],
                          monitor_every=p.monitor_every, device=p.device, threads=p.torch_threads,
                          **settings)
for row in record["options"]:
    print(f"{row['option']}: {row['ratio_to_plain']:.3f} x plain, {row['activation_bytes']} activation bytes",
          file=sys.stderr)
records.write(record, snakemake.output[0])  # noqa: F821
