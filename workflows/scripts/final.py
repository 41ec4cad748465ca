"""Snakemake job: one final run of one optimizer on one task, at the tuned learning rate or
(the self-tuning track) at the entry's defaults."""
import sys
from pathlib import Path

from tasks.runner import measure, records

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821 (snakemake is injected)
w, p = snakemake.wildcards, snakemake.params  # noqa: F821
lr = None   # the self-tuning track: the entry's defaults
if p.track == "tuned":
    try:
        lr = records.read_input(snakemake.input.summary, p.runs)["selection"]["lr"]  # noqa: F821
    except records.RecordError as e:
        print(f"final: {e}", file=sys.__stderr__)   # on the terminal, not only in the log
        raise
checkpoint = Path(p.checkpoint)  # a killed job resumes from here
record = measure.final(w.task, w.optimizer, p.size, seed=int(w.seed), lr=lr, device=p.device,
                       threads=snakemake.threads, progress=True,  # noqa: F821
                       checkpoint=checkpoint, checkpoint_every=p.checkpoint_every,
                       monitor_every=p.monitor_every)
records.write(record, snakemake.output[0])  # atomic: a killed job leaves no partial file  # noqa: F821
checkpoint.unlink(missing_ok=True)
