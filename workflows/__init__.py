"""The room that runs things: the Snakemake rules, their scripts, the profiles and their schema, and
the engine (`workflows.engine`), the Python package that trains, measures, records, aggregates,
plans and holds the one command line (`optbench`)."""
