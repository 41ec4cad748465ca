"""Snakemake job: the final runs of one optimizer on one task at the tuned learning rate."""
import sys
from pathlib import Path

from tasks.runner import measure, records

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821 (snakemake is injected)
w, p = snakemake.wildcards, snakemake.params  # noqa: F821
lr = records.read(snakemake.input.summary)["selection"]["lr"]  # noqa: F821
for seed, out in zip(p.seeds, snakemake.output):  # noqa: F821
    checkpoint = Path(p.checkpoints) / f"seed{seed}.ckpt"  # a killed job resumes from here
    record = measure.final(w.task, w.optimizer, p.size, seed=seed, lr=lr, device=p.device,
                           threads=snakemake.threads, progress=True,  # noqa: F821
                           checkpoint=checkpoint, checkpoint_every=p.checkpoint_every,
                           monitor_every=p.monitor_every)
    records.write(record, out)  # atomic: a killed job leaves no partial file
    checkpoint.unlink(missing_ok=True)
