"""Acting on files under the sandbox's id mapping, for every package that needs it.

- `requests`: typed requests (a request class per operation, its handler registered
  beside it) and `RootFS`, a root filesystem as requests and steps name it.
- `userns`: `session()`, `request()`, `request_isolated()` answer a request under the
  mapping (through one file-op server per build); `remove_tree(s)`, `chown_as_mapped`
  on top.
- `worker`: that file-op server, which answers only the request types of the modules
  on its allow-list.
- `early`: the server a `build` command starts before its engine loads (from a fork
  made while it is single-threaded), which the build's session adopts.

A leaf below snapshot, cache and exporters: they all remove or size trees written under
the mapping, and none of them may reach into another for it. It uses only the sandbox's
launcher (`run_in_userns`) and the store's private temporary directories.
"""
