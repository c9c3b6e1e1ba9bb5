"""The core's shape (docs/dev/architecture.md): no import cycle, small files, thin modules, no ansible."""
import ast
import os

import pytest

import nvhooks

CORE = os.path.dirname(os.path.abspath(nvhooks.__file__))
MODULES = os.path.join(os.path.dirname(os.path.dirname(CORE)), "modules")
MAX_CORE_LINES = 450
MAX_MODULE_CODE_LINES = 75


def _core_files():
    for folder, _dirs, files in os.walk(CORE):
        for name in sorted(files):
            if name.endswith(".py"):
                yield os.path.join(folder, name)


def _module_name(path):
    rel = os.path.relpath(path, os.path.dirname(CORE))[:-3].replace(os.sep, ".")
    return rel[:-len(".__init__")] if rel.endswith(".__init__") else rel


def _resolve(module, is_package, node):
    """Absolute names a (relative) ImportFrom refers to: the module and each imported name."""
    parts = module.split(".")
    base = parts if is_package else parts[:-1]
    if node.level:
        base = base[:len(base) - node.level + 1]
        prefix = ".".join(base + ([node.module] if node.module else []))
    else:
        prefix = node.module or ""
    return [prefix] + [f"{prefix}.{alias.name}" for alias in node.names]


def import_graph():
    """module -> set of core modules it imports (at any depth of the file, lazy imports included)."""
    files = {_module_name(p): p for p in _core_files()}
    graph = {}
    for module, path in files.items():
        with open(path, encoding="utf-8") as handle:
            tree = ast.parse(handle.read(), path)
        edges = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                names = _resolve(module, path.endswith("__init__.py"), node)
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            edges.update(n for n in names if n in files and n != module)
        graph[module] = edges
    return graph


def _cycle(graph):
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_import_graph_is_read():
    graph = import_graph()
    assert "nvhooks.dispatch.dispatcher" in graph
    assert "nvhooks.dispatch.scripts" in graph["nvhooks.dispatch.dispatcher"]
    assert "nvhooks.errors" in graph["nvhooks.policy.model"]


def test_core_has_no_import_cycle():
    # a package's __init__ importing its own submodules would be a cycle by
    # this rule; the core's __init__ files import nothing at module level
    graph = {m: {e for e in edges if not m.startswith(e + ".")} for m, edges in import_graph().items()}
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))


def test_core_never_imports_ansible():
    for path in _core_files():
        with open(path, encoding="utf-8") as handle:
            tree = ast.parse(handle.read(), path)
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            assert not any(n == "ansible" or n.startswith("ansible.") for n in names), path


@pytest.mark.parametrize("path", sorted(_core_files()), ids=lambda p: os.path.relpath(p, CORE))
def test_core_file_is_small(path):
    with open(path, encoding="utf-8") as handle:
        assert len(handle.readlines()) <= MAX_CORE_LINES


def _code_lines(path):
    """Lines of a module that are code: not DOCUMENTATION/EXAMPLES/RETURN, comments or blank."""
    with open(path, encoding="utf-8") as handle:
        source = handle.read()
    tree = ast.parse(source, path)
    doc_lines = set()
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") in ("DOCUMENTATION", "EXAMPLES", "RETURN")
                                                for t in node.targets):
            doc_lines.update(range(node.lineno, node.end_lineno + 1))
    count = 0
    for number, line in enumerate(source.splitlines(), 1):
        text = line.strip()
        if number in doc_lines or not text or text.startswith("#"):
            continue
        count += 1
    return count


@pytest.mark.parametrize("name", ["tc_shape", "bridge_vlan", "libvirt_hook_script"])
def test_modules_are_thin_adapters(name):
    assert _code_lines(os.path.join(MODULES, f"{name}.py")) <= MAX_MODULE_CODE_LINES
