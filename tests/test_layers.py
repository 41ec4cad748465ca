"""The layers import one way: optimizers and tasks are independent leaves; the engine
(workflows.engine) joins them; the command line (workflows.engine.cli) and workflows/scripts stand
on the engine; the report reads results/tables/ and imports none of them."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
OURS = ("optimizers", "tasks", "report", "workflows")


def layer(module: str) -> str:
    """The layer a dotted module name of ours belongs to."""
    if module == "workflows.engine.cli" or module.startswith("workflows.scripts"):
        return "entry"
    if module.startswith("workflows"):
        return "engine"
    return module.split(".")[0]


# what each layer may import, besides itself
ALLOWED = {
    "optimizers": set(),
    "tasks": set(),
    "engine": {"optimizers", "tasks"},
    "entry": {"optimizers", "tasks", "engine", "report"},
    "report": set(),
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(source: str, submodules: bool = True) -> list[tuple[int, str]]:
    """(line, module) of every import in the source, lazy ones inside functions included; with
    `submodules`, `from a import b` counts as a.b (a submodule: the finer name decides the layer)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found += ([(node.lineno, f"{node.module}.{a.name}") for a in node.names] if submodules
                      else [(node.lineno, node.module)])
    return found


def imported(source: str) -> list[tuple[int, str]]:
    """(line, module) of every import of ours in the source."""
    return [(line, m) for line, m in imports(source) if m.split(".")[0] in OURS]


def violations(module: str, source: str) -> list[str]:
    here = layer(module)
    return [f"line {line}: {m} ({layer(m)})" for line, m in imported(source)
            if layer(m) != here and layer(m) not in ALLOWED[here]]


def sources() -> list[Path]:
    return sorted(p for pkg in OURS for p in (REPO / pkg).rglob("*.py"))


def test_the_walk_sees_every_layer():
    layers = {layer(module_name(p)) for p in sources()}
    assert layers == set(ALLOWED), layers


@pytest.mark.parametrize("path", sources(), ids=lambda p: str(p.relative_to(REPO)))
def test_imports_run_one_way(path):
    module = module_name(path)
    wrong = violations(module, path.read_text())
    assert not wrong, f"{path.relative_to(REPO)} is in layer {layer(module)!r}, which may import " \
                      f"{sorted(ALLOWED[layer(module)]) or 'nothing of ours'}; it imports {wrong}"


def test_a_backward_import_is_caught():
    assert violations("tasks.lm", "def f():\n    from workflows.engine import harness\n") == \
        ["line 2: workflows.engine.harness (engine)"]
    assert violations("report.generate", "import tasks\n") == ["line 1: tasks (tasks)"]
    assert violations("optimizers.adam", "from tasks import generator\n") == ["line 1: tasks.generator (tasks)"]
    assert violations("tasks.cnn", "import optimizers\n") == ["line 1: optimizers (optimizers)"]
    assert violations("workflows.engine.measure", "from workflows.engine import cli\n") == \
        ["line 1: workflows.engine.cli (entry)"]
    assert violations("workflows.engine.cli", "from workflows.engine import harness\nimport optimizers\n") == []


def test_report_imports_neither_torch_nor_a_task():
    code = ("import sys, report, report.generate, report.stats, report.claims\n"
            "print(sorted(m for m in sys.modules if m == 'torch' or m.split('.')[0] in ('tasks', 'optimizers')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_importing_the_registries_loads_no_entry():
    """Registries load on first use: `import tasks, optimizers` imports no task or optimizer file
    (transformers, scikit-learn and the optimizer libraries stay out), `names()` loads them."""
    code = ("import sys, tasks, optimizers\n"
            # the builder and the parameter routing are machinery, not entries: imported with the package
            "before = sorted(m for m in sys.modules if m.startswith(('tasks.', 'optimizers.'))\n"
            "                and m not in ('optimizers._build', 'optimizers.routing'))\n"
            "heavy = sorted(m for m in ('transformers', 'sklearn') if m in sys.modules)\n"
            "n = len(tasks.names()) and len(optimizers.names())\n"
            "print(before, heavy, 'tasks.lm' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[] [] True", out.stdout


def test_argparse_lives_in_the_command_line_alone():
    """One command line: no other module of ours builds an argument parser."""
    found = [str(p.relative_to(REPO)) for p in sources()
             if module_name(p) != "workflows.engine.cli" and "argparse" in {m for _, m in imports(p.read_text(), submodules=False)}]
    assert not found, found

