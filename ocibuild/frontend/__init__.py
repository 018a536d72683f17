"""Frontends: build definitions (a Dockerfile, a Python file, ...) turned into a build
graph.

- `dockerfile/`: the Dockerfile frontend (stages -> ops, `convert.py`).
- `registry.py`: which frontend reads a definition (`--frontend`, `# syntax=`, the
  `ocibuild.frontends` entry points).
- `python_file.py`: the `python` frontend (a build.py defining `build(ctx)`).
- `lower.py`: a graph API state (`ocibuild.graph`) -> ops, as the Dockerfile
  frontend's, for `ocibuild.solve` and every frontend but the Dockerfile one.
"""
