"""Frontends: build definitions (a Dockerfile, ...) turned into a build graph.

`ocibuild.frontend.dockerfile` holds the Dockerfile frontend.
"""
