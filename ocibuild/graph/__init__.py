"""The build graph: immutable ops with deterministic digests.

A frontend only ever produces a graph; the solver runs it. An op's digest is the sha256
of canonical JSON of its own fields and its inputs' digests, so equal ops are equal
everywhere (another directory, another machine).
"""

from ocibuild.graph.ops import (
    ContextSource,
    CopyOp,
    ExecOp,
    GitSource,
    HttpSource,
    ImageSource,
    InlineSource,
    MkdirOp,
    Mount,
    Op,
    ScratchSource,
    walk,
)

__all__ = [
    "ContextSource",
    "CopyOp",
    "ExecOp",
    "GitSource",
    "HttpSource",
    "ImageSource",
    "InlineSource",
    "MkdirOp",
    "Mount",
    "Op",
    "ScratchSource",
    "walk",
]
