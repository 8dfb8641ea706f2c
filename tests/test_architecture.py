"""The structure the code promises: the web process stays light, dependencies run one way."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = (
    "slmlab",
    "accounts",
    "projects",
    "training",
    "experiments",
    "exports",
    "playground",
    "designer",
    "evaluations",
)
HEAVY = ("torch", "transformers", "peft", "bitsandbytes")


def test_the_web_process_never_imports_torch_or_the_ml_libraries():
    # Everything daphne loads: the ASGI application, every URL's view, every websocket's
    # consumer, and the Dramatiq broker with its middleware (actors are sent from views).
    script = (
        "import os, sys\n"
        "os.environ['DJANGO_SETTINGS_MODULE'] = 'slmlab.settings'\n"
        "import django; django.setup()\n"
        "from slmlab.asgi import application\n"
        "from django.urls import get_resolver\n"
        "get_resolver().url_patterns\n"
        "import slmlab.routing, projects.services, training.services\n"
        "import exports.services, evaluations.services, playground.services\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", f"the web process imports {done.stdout.strip()}"


def module_of(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """module -> the project modules it imports, function-local imports included."""
    files = [
        p
        for package in PACKAGES
        for p in (ROOT / package).rglob("*.py")
        if "migrations" not in p.parts
    ]
    modules = {module_of(p): p for p in files}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for target in targets:
                # the module itself, or the package a name was taken from
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name and not name.startswith(target + "."):
                    graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_there_are_no_import_cycles_not_even_through_function_local_imports():
    assert cycles(import_graph()) == []


def top_level_packages_imported(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_the_engine_is_plain_python_that_imports_nothing_of_the_web_app():
    graph = import_graph()
    engine = [m for m in graph if m.startswith("training.engine")]
    assert len(engine) > 20
    for module in engine:
        outside = {t for t in graph[module] if not t.startswith("training.engine")}
        assert not outside, f"{module} imports {outside}"
        path = ROOT / (module.replace(".", "/") + ".py")
        if not path.exists():
            path = ROOT / module.replace(".", "/") / "__init__.py"
        assert "django" not in top_level_packages_imported(path), f"{module} imports Django"


def test_layers_views_services_actors_jobs_engine():
    """Worker code never reaches up to views or services; actors never to views."""
    graph = import_graph()
    for module, imported in graph.items():
        layer = module.rsplit(".", 1)[-1]
        if ".jobs." in module + ".":
            assert not {
                t for t in imported if t.endswith((".views", ".dataset_views", ".services"))
            }, module
        if layer == "actors":
            assert not {t for t in imported if t.endswith(("views", ".services"))}, module
