"""The engine: runs tasks with optimizers, measures, and writes result records.

Layers import one way: optimizers <- tasks <- this package (workflows.engine) <- workflows/ and the
command line (workflows.engine.cli). The task loader skips this subpackage (it imports task modules
only), and nothing under optimizers/ or the task files imports it. The report package
(report/) reads results/tables/ alone.

- harness: one training run (`train(RunConfig(...))`) -> a result record
- measure: one function per pipeline measurement (tune, final, stability, steptime, loop_options)
- protocol: the tuning protocol (quasi-random trials over a search space, selection over seeds)
- config: a profile's config checked before any job runs
- records: the result record, written atomically; aggregate: records -> results/tables/
- environment, monitor, roofline: where a result came from; the training monitor; bandwidth
- cli: the `optbench` command
"""
