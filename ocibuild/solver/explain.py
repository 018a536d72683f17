"""Why a step missed the cache: what changed against the closest cached record.

Every record keeps, beside the inputs hashed into its key, an "explain" part that is
not hashed: the step's stage and instruction, a short digest per context file it
read, its environment (build args included), and its base image. For each step that
ran, the record of the same stage that differs in the fewest of those is the closest;
the differences are what changed. Values of variables whose names look secret are
kept only as digests (and shown as "changed"); secrets mounted with --secret never
reach an op at all.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from ocibuild.cache.records import CacheRecord
from ocibuild.deferred import deferred_dataclass
from ocibuild.graph import CopyOp, ExecOp, ImageSource, MkdirOp, Op
from ocibuild.oci.digest import hex_of_bytes

MAX_FILES = 5000  # per step; beyond it only the total checksum tells that files changed
_SECRET_NAME = re.compile(r"(?i)secret|passw|token|credential|private|api_?key")
_NAME = re.compile(r"^\[[^\]]*\] ")


def explain_inputs(op: Op, name: str, stage: str, files: dict[str, str],
                   file_count: int | None = None) -> dict[str, Any]:
    """`file_count`: how many files the step read, when `files` holds only some."""
    out: dict[str, Any] = {"step": name, "stage": stage,
                           "instruction": _NAME.sub("", name, count=1)}
    count = len(files) if file_count is None else file_count
    if count > MAX_FILES:
        out["files_omitted"] = count
    elif files:
        out["files"] = files
    if isinstance(op, ExecOp):
        env: dict[str, str] = {}
        for item in op.env:
            key, _, value = item.partition("=")
            env[key] = _masked(key, value)
        out["env"] = env
    root = getattr(op, "root", None)
    rebased = isinstance(op, CopyOp) and op.rebased  # the base is not an input then
    if isinstance(op, ExecOp | CopyOp | MkdirOp) and isinstance(root, ImageSource) \
            and not rebased:
        out["base"] = f"{root.ref}@{root.manifest_digest}"
    return out


def _masked(key: str, value: str) -> str:
    if _SECRET_NAME.search(key):
        return "sha256:" + hex_of_bytes(value.encode())[:16] + " (masked)"
    return value


@deferred_dataclass(frozen=True)
class Explanation:
    """Why one step missed the cache: its closest record and what differs."""

    step: str  # the step's progress name
    closest: str  # the closest record's description ("" when there is none)
    changes: tuple[str, ...]

    def render(self) -> str:
        lines = [f"{self.step}: cache miss"]
        if not self.closest:
            lines.append("  no cached record of this step (a new step, or the cache is empty)")
        else:
            lines.append(f"  closest cached record: {self.closest}")
            lines += [f"  - {c}" for c in self.changes]
        return "\n".join(lines)


def differences(now: Mapping[str, Any], old: Mapping[str, Any],
                name_of_key: Mapping[str, str]) -> list[str]:
    """What differs between the inputs of a step now and those of an old record."""
    new_e: dict[str, Any] = now.get("explain", {})
    old_e: dict[str, Any] = old.get("explain", {})
    out: list[str] = []
    if new_e.get("instruction") != old_e.get("instruction"):
        out.append(f"instruction: {old_e.get('instruction')!r} -> {new_e.get('instruction')!r}")
    if new_e.get("base") != old_e.get("base"):
        out.append(f"base image: {old_e.get('base')} -> {new_e.get('base')}")
    if new_e.get("git") != old_e.get("git"):  # ADD of a git URL: the commit moved
        out.append(f"git source: {old_e.get('git')} -> {new_e.get('git')}")
    new_files, old_files = new_e.get("files", {}), old_e.get("files", {})
    for path in sorted(set(new_files) | set(old_files)):
        if path not in old_files:
            out.append(f"file added: {path}")
        elif path not in new_files:
            out.append(f"file removed: {path}")
        elif new_files[path] != old_files[path]:
            out.append(f"file changed: {path}")
    if (now.get("content") != old.get("content") and not any(
            c.startswith("file ") for c in out)):
        out.append("content of the copied files changed")
    new_env, old_env = new_e.get("env", {}), old_e.get("env", {})
    for key in sorted(set(new_env) | set(old_env)):
        a, b = old_env.get(key), new_env.get(key)
        if a != b:
            if _SECRET_NAME.search(key):
                out.append(f"build-arg/env {key} changed (value masked)")
            else:
                out.append(f"build-arg/env {key}: {a!r} -> {b!r}")
    if now.get("sde") != old.get("sde"):
        out.append(f"SOURCE_DATE_EPOCH: {old.get('sde')} -> {now.get('sde')}")
    new_in, old_in = list(now.get("inputs", [])), list(old.get("inputs", []))
    if new_in != old_in and "base" not in new_e:
        changed = [name_of_key.get(k, "an input") for i, k in enumerate(new_in)
                   if i >= len(old_in) or old_in[i] != k]
        out.extend(f"input changed: {n}" for n in dict.fromkeys(changed))
    if not out and now.get("op") != old.get("op"):
        out.append("the step's options changed (flags, user, working directory or mounts)")
    return out


def explain(missed: Iterable[tuple[str, Mapping[str, Any]]],
            candidates: Iterable[CacheRecord], own_keys: set[str],
            name_of_key: Mapping[str, str]) -> list[Explanation]:
    """An explanation per missed step, given as (progress name, inputs)."""
    by_stage: dict[str, list[CacheRecord]] = {}
    for rec in candidates:
        if rec.key in own_keys:
            continue  # this build's own records, or hits
        stage = rec.inputs.get("explain", {}).get("stage")
        if stage is not None:
            by_stage.setdefault(stage, []).append(rec)
    found = []
    for name, inputs in missed:
        stage = inputs.get("explain", {}).get("stage", "")
        best: tuple[int, str, CacheRecord, list[str]] | None = None
        for rec in by_stage.get(stage, []):
            diff = differences(inputs, rec.inputs, name_of_key)
            rank = (len(diff), _neg(rec.created))
            if best is None or rank < best[:2]:
                best = (rank[0], rank[1], rec, diff)
        if best is None:
            found.append(Explanation(name, "", ()))
        else:
            found.append(Explanation(name, best[2].description, tuple(best[3])))
    return found


def _neg(created: str) -> str:
    """Sorts newer RFC 3339 times first."""
    return "".join(chr(0x10FFFF - ord(c)) for c in created)
