"""The README's "Add an optimizer" and "Add a task" are enough: the ```python block under each
heading, written as it stands to a file on its registry's package path, registers an entry that
passes that registry's generic tests (tests/test_optimizers.py, tests/test_tasks.py), selected by
the entry's name. Each runs in a fresh process, so that the example joins the registry the way a
file in optimizers/ or tasks/ does (found when the registry first loads) and leaves this one alone.
"""
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"

# In the fresh process: the example's directory on the package's path before its registry loads,
# then the generic tests of the entry it registers.
BOOTSTRAP = """
import importlib, sys
import pytest
package, where, name, tests = sys.argv[1:]
registry = importlib.import_module(package)
registry.__path__.append(where)
assert name in registry.names(), f"the example registers no {package} entry {name!r}"
sys.exit(pytest.main([tests, "-q", "-p", "no:cacheprovider", "-k", name]))
"""


def example(section: str) -> str | None:
    """The first ```python block under README.md's `## <section>`, or None if it has none."""
    text = README.read_text()
    found = re.search(rf"^## {re.escape(section)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert found, f"README.md has no section '## {section}'"
    block = re.search(r"^```python\n(.*?)^```", found.group(1), re.M | re.S)
    return block.group(1) if block else None


@pytest.mark.parametrize("section, package, tests", [
    ("Add an optimizer", "optimizers", "tests/test_optimizers.py"),
    ("Add a task", "tasks", "tests/test_tasks.py"),
])
def test_the_readme_example_passes_the_generic_tests(section, package, tests, tmp_path):
    code = example(section)
    if code is None:
        pytest.skip(f"README.md's '## {section}' has no ```python example yet")
    names = re.findall(r'\bname="([^"]+)"', code)
    assert len(names) == 1, f"README.md's '## {section}' example: expected one name=\"...\", found {names}"
    (tmp_path / "readme_example.py").write_text(code)
    done = subprocess.run([sys.executable, "-c", BOOTSTRAP, package, str(tmp_path), names[0], str(ROOT / tests)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    out = done.stdout + done.stderr
    assert done.returncode == 0, f"the '## {section}' example fails {tests}:\n{out[-6000:]}"
    assert re.search(r"\b[1-9]\d* passed", out), out[-2000:]
