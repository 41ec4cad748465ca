"""The engine: runs tasks with optimizers, measures, and writes result records.

Layers import one way: optimizers/ and tasks/ are independent leaves; this package joins them
(`pairs`: which task x optimizer pairs can run); the command line (`cli`) and the Snakemake scripts
(workflows/scripts/) stand on it. The report package (report/) reads results/tables/ alone.

- harness: one training run (`train(RunConfig(...))`) -> a result record
- measurements/: one module per pipeline measurement (tune, final, defaults, stability, precision,
  steptime, loop_options) and the table the plan, cost, records, aggregation and rules read
- pairs: the task-optimizer join; protocol: the tuning protocol (trials, selection over seeds)
- config: the one loader and checker of a profile, for the Snakefile and `optbench plan`
- preflight: the device a run names, checked against this machine before anything runs
- records: the result record and its place under results/runs/; aggregate: records -> tables
- schedule, amp: the lr schedules; autocast and loss scaling
- plan, flops, cost: a profile's plan before it runs, and what it cost after
- environment, monitor, roofline: where a result came from; the training monitor; bandwidth
- scaffold: `optbench new-optimizer`'s template; cli: the `optbench` command
"""
