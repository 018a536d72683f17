"""BuildKit's AST dump format (`Node.Dump` in its parser), used by `ocibuild debug ast`.

- `dump_node(node) -> str`: one instruction, e.g. ``copy ["--from=a"] "x" "/y"``.
- `dump_ast(ast) -> str`: every instruction as ``(...)`` on its own line, with a
  final newline: byte-identical to the `result` files of BuildKit's parser tests.
"""

from __future__ import annotations

from ocibuild.frontend.dockerfile.gostr import go_quote, go_quote_list
from ocibuild.frontend.dockerfile.parser import AST, Node


def dump_node(node: Node) -> str:
    parts = [node.command.lower()]
    if node.flags:
        parts.append(go_quote_list(node.flags))
    if node.sub is not None:
        parts.append(f"({dump_node(node.sub)})")
    parts.extend(go_quote(arg) for arg in node.args)
    return " ".join(parts).strip()


def dump_ast(ast: AST) -> str:
    return "".join(f"({dump_node(node)})\n" for node in ast.nodes)
