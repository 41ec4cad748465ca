"""Aggregation of result records into tables, statistics, and the generated report."""
