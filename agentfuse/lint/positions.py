"""Source positions of the reported nodes, without libcst's whole-module position pass.

libcst's ``PositionProvider`` generates the module's code with a state that updates a line
and a column at every token and stores a range for every node: about twice the cost of the
parse. A file reports a few nodes. :func:`positions_of` generates the code with libcst's
plain state (a list of strings), notes token indices only at the reported nodes and their
children (a statement's range ends where its last child's does), stops once the last
reported node is done, and turns the indices into lines and columns as libcst counts them.
The ranges are PositionProvider's own (a test compares them on every node of real files);
when a case falls outside what this module reproduces (a carriage return in the code, a
range taken from a node it did not note), it answers with PositionProvider itself.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Iterator, Mapping

import libcst as cst
from libcst._nodes.internal import CodegenState
from libcst.metadata import CodePosition, CodeRange, MetadataWrapper, PositionProvider

_NO_RECORD = contextlib.nullcontext()


class _Unsupported(Exception):
    """Something only PositionProvider's own pass answers exactly."""


class _AllDone(Exception):
    """Every reported node has its range: the rest of the module need not be generated."""


class _NotingState(CodegenState):
    """libcst's plain code generation, noting token indices at the wanted nodes only.

    Mirrors ``PositionProvidingCodegenState``: a node's range is where its code starts and
    ends, unless the node records a syntactic range (statements leave out their leading
    lines and indentation), which then wins; a syntactic range may take its start or end
    from a child's range.
    """

    def __init__(self, module: cst.Module, targets: Collection[cst.CSTNode]) -> None:
        super().__init__(default_indent=module.default_indent, default_newline=module.default_newline)
        self.target_ids = {id(node) for node in targets}
        self.wanted = set(self.target_ids)
        for node in targets:
            self.wanted.update(id(child) for child in node.children)
        self.ranges: dict[int, tuple[int, int]] = {}
        self.starts: list[int] = []

    def before_codegen(self, node: cst.CSTNode) -> None:
        if id(node) in self.wanted:
            self.starts.append(len(self.tokens))

    def after_codegen(self, node: cst.CSTNode) -> None:
        key = id(node)
        if key in self.wanted:
            start = self.starts.pop()
            self.ranges.setdefault(key, (start, len(self.tokens)))
            if key in self.target_ids:
                self.target_ids.discard(key)
                if not self.target_ids:
                    raise _AllDone

    def pop_trailing_newline(self) -> None:
        """Keep it: PositionProvider's line and column have counted it already."""

    def record_syntactic_position(  # type: ignore[override]  # a shared null context: no generator per node
        self,
        node: cst.CSTNode,
        *,
        start_node: cst.CSTNode | None = None,
        end_node: cst.CSTNode | None = None,
    ) -> contextlib.AbstractContextManager[None]:
        if id(node) not in self.wanted:
            return _NO_RECORD
        return self._record(node, start_node, end_node)

    @contextlib.contextmanager
    def _record(
        self, node: cst.CSTNode, start_node: cst.CSTNode | None, end_node: cst.CSTNode | None
    ) -> Iterator[None]:
        start = len(self.tokens)
        yield
        end = len(self.tokens)
        if start_node is not None:
            start = self._range(start_node)[0]
        if end_node is not None:
            end = self._range(end_node)[1]
        self.ranges[id(node)] = (start, end)

    def _range(self, node: cst.CSTNode) -> tuple[int, int]:
        found = self.ranges.get(id(node))
        if found is None:
            raise _Unsupported(f"range of an unnoted {type(node).__name__}")
        return found


def positions_of(module: cst.Module, nodes: Collection[cst.CSTNode]) -> dict[cst.CSTNode, CodeRange]:
    """PositionProvider's range of each of ``nodes`` (nodes of ``module``'s tree)."""
    if not nodes:
        return {}
    try:
        return _noted_positions(module, nodes)
    except _Unsupported:
        everything = MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
        return {node: everything[node] for node in nodes}


def _noted_positions(module: cst.Module, nodes: Collection[cst.CSTNode]) -> dict[cst.CSTNode, CodeRange]:
    state = _NotingState(module, nodes)
    try:
        module._codegen(state)
    except _AllDone:
        pass
    missing = [node for node in nodes if id(node) not in state.ranges]
    if missing:
        raise KeyError(missing[0])  # as PositionProvider's mapping does for a foreign node
    points = _points(state.tokens, {index for key in map(id, nodes) for index in state.ranges[key]})
    result = {}
    for node in nodes:
        start, end = state.ranges[id(node)]
        result[node] = CodeRange(points[start], points[end])
    return result


def _points(tokens: list[str], indices: set[int]) -> dict[int, CodePosition]:
    """Line (1-based) and column (0-based) after ``tokens[:i]`` for each index ``i``.

    libcst counts ``\\r\\n``, ``\\r`` and ``\\n`` as line ends within each token; with no
    ``\\r`` in the code, counting ``\\n`` over the joined text gives the same answer.
    """
    points: dict[int, CodePosition] = {}
    line, column, done = 1, 0, 0
    for index in sorted(indices):
        chunk = "".join(tokens[done:index])
        if "\r" in chunk:
            raise _Unsupported("carriage return in the code")
        newlines = chunk.count("\n")
        if newlines:
            line += newlines
            column = len(chunk) - chunk.rfind("\n") - 1
        else:
            column += len(chunk)
        points[index] = CodePosition(line, column)
        done = index
    return points


class LazyPositions(Mapping[cst.CSTNode, CodeRange]):
    """PositionProvider's whole mapping, computed on first use, for a rule that asks for a
    position during the traversal (the engine itself uses :func:`positions_of`)."""

    def __init__(self, module: cst.Module) -> None:
        self._module = module
        self._positions: Mapping[cst.CSTNode, CodeRange] | None = None

    def _resolved(self) -> Mapping[cst.CSTNode, CodeRange]:
        if self._positions is None:
            self._positions = MetadataWrapper(self._module, unsafe_skip_copy=True).resolve(PositionProvider)
        return self._positions

    def __getitem__(self, node: cst.CSTNode) -> CodeRange:
        return self._resolved()[node]

    def __iter__(self) -> Iterator[cst.CSTNode]:
        return iter(self._resolved())

    def __len__(self) -> int:
        return len(self._resolved())
