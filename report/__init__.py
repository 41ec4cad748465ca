"""The report: results/tables/<profile>/ -> report/<profile>/ (generate.py orders and joins the sections, one module each)."""
