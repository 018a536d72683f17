"""Acting on files under the sandbox's id mapping, for every package that needs it.

- `userns`: `session()`, `call()`, `call_isolated()` run a function under the mapping
  (through one file-op server per build); `remove_tree(s)`, `chown_as_mapped` on top.
- `worker`: that file-op server.

A leaf below snapshot, cache and exporters: they all remove or size trees written under
the mapping, and none of them may reach into another for it. It uses only the sandbox's
launcher (`run_in_userns`) and the store's private temporary directories.
"""
