"""The engine's positions of reported nodes are libcst PositionProvider's, node for node."""

from __future__ import annotations

import random
from pathlib import Path

import libcst as cst
import pytest
from libcst.metadata import MetadataWrapper, PositionProvider

import agentfuse
from agentfuse.lint.positions import positions_of

EDGE_CASES = {
    "no-trailing-newline": "import os\nos.system('ls')",
    "semicolons": "a = 1; b = 2;\nif a: b = 3; c = 4\n",
    "decorators-and-comments": (
        "# header\n\n@decorator  # why\n@other(\n    1,\n)\n\n# between\nclass A(B):\n"
        "    '''doc'''\n\n    def f(self): return 1\n    # indented footer\n\n# module footer\n"
    ),
    "try-else-finally": "try:\n    x()\nexcept E as e:\n    pass\nelse:\n    y()\nfinally:\n    z()\n",
    "if-elif-else-loops": (
        "for i in r:\n    while True:\n        if a:\n            break\n        elif b:\n"
        "            continue\n        else:\n            pass\n    else:\n        q()\nelse:\n    w()\n"
    ),
    "match-and-with": (
        "match x:\n    case [1, *rest]:\n        pass\n    case _:\n        with a as b, c:\n            d()\n"
    ),
    "continuations": "x = \\\n    f(a,\n      b)  \\\n    + 1\nimport a.b as c, d\nfrom . import (e,\n    f)\n",
    "strings": 's = """multi\nline""" f"{x!r:>{w}}" \'z\'\nb = rb"\\d"\n',
    "tabs-and-async": "async def f():\n\tasync with a:\n\t\tawait b()\n\tasync for x in y:\n\t\tyield x\n",
    "crlf": "import os\r\nif True:\r\n    os.system('ls')\r\n",
    "cr-in-a-string": "x = '''a\rb'''\ny = f(x)\n",
    "empty": "",
    "only-comment": "# nothing\n",
}


def all_nodes(module: cst.Module) -> list[cst.CSTNode]:
    found: list[cst.CSTNode] = []

    class Collect(cst.CSTVisitor):
        def on_visit(self, node: cst.CSTNode) -> bool:
            found.append(node)
            return True

    module.visit(Collect())
    return found


def assert_same_positions(source: str, seed: int) -> None:
    module = cst.parse_module(source)
    expected = MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
    nodes = all_nodes(module)
    assert positions_of(module, nodes) == {node: expected[node] for node in nodes}
    rng = random.Random(seed)
    for node in rng.sample(nodes, min(10, len(nodes))):  # one node: the pass stops right after it
        assert positions_of(module, [node]) == {node: expected[node]}
    subset = rng.sample(nodes, min(10, len(nodes)))
    assert positions_of(module, subset) == {node: expected[node] for node in subset}


@pytest.mark.parametrize("name", sorted(EDGE_CASES))
def test_positions_match_libcst_on_edge_cases(name: str) -> None:
    assert_same_positions(EDGE_CASES[name], seed=len(name))


def test_positions_match_libcst_on_real_modules() -> None:
    package = Path(agentfuse.__file__).parent
    files = sorted(package.rglob("*.py"))
    sample = random.Random(7).sample(files, 8)
    for index, path in enumerate(sample):
        assert_same_positions(path.read_text(encoding="utf-8"), seed=index)


def test_no_nodes_no_work_and_a_foreign_node_is_a_key_error() -> None:
    module = cst.parse_module("x = 1\n")
    assert positions_of(module, []) == {}
    with pytest.raises(KeyError):
        positions_of(module, [cst.Name("elsewhere")])
