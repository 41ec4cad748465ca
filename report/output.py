"""What every report section writes: a figure saved under the report's figures/, and a markdown
table. One place, so that the sections (generate, tuning, precision, studies, cost) write alike
and the same tables give the same bytes (no date or version in a PNG)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

PNG = {"metadata": {"Software": None}, "dpi": 110}


def save(fig, out: Path, name: str) -> str:
    """Saves `fig` as `out`/figures/`name`.png, closes it, and returns its path in the report."""
    path = Path(out) / "figures" / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight", **PNG)
    plt.close(fig)
    return f"figures/{name}.png"


def md_table(df: pd.DataFrame) -> str:
    return df.to_markdown(index=False, disable_numparse=True) if len(df) else "_no rows_"
