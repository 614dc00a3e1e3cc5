"""The house rules of docs/architecture.md that a machine can check.

The layer and independence contracts are import-linter's (``lint-imports``,
run by scripts/test.sh; its contracts are in pyproject.toml); here: no
import cycle between any two modules (import-linter checks packages), no
module longer than 400 lines, a docstring at the top of every module, and
the --out rule and the atomic write each written once.
"""
import ast
import re
from pathlib import Path

import grimp

SRC = Path(__file__).resolve().parents[1] / "src" / "ganforge"


def _modules():
    return sorted(p for p in SRC.rglob("*.py"))


def _cycles(graph) -> list:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index, low, on, stack, out, counter = {}, {}, set(), [], [], [0]
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on.add(root)
        while work:
            v, children = work[-1]
            for w in children:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph.find_modules_directly_imported_by(w)))))
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))
    return out


def test_no_import_cycle_between_modules():
    graph = grimp.build_graph("ganforge")
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    class Graph:
        modules = {"a", "b", "c", "d"}
        edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}

        def find_modules_directly_imported_by(self, m):
            return self.edges.get(m, set())
    assert _cycles(Graph()) == [["a", "b", "c"]]


def test_every_module_is_short_and_says_what_it_is():
    for path in _modules():
        text = path.read_text()
        assert len(text.splitlines()) <= 400, f"{path.relative_to(SRC)} has {len(text.splitlines())} lines"
        if path.stat().st_size:
            assert ast.get_docstring(ast.parse(text)), f"{path.relative_to(SRC)} has no module docstring"


def test_one_atomic_write_and_one_out_rule():
    """Temporary files are made and renamed in runs/atomic.py only; the '--out exists' check is stated once."""
    renames, out_rules = [], []
    for path in _modules():
        text = path.read_text()
        rel = str(path.relative_to(SRC))
        if re.search(r"os\.replace\(|\.rename\(|\.tmp-", text) and rel != "runs/atomic.py":
            renames.append(rel)
        if "add --force to replace it" in text:
            out_rules.append(rel)
    assert renames == ["cli/lab.py"], renames      # the lab swaps a whole result folder in, once it is complete
    assert out_rules == ["runs/atomic.py"], out_rules
