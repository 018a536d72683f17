"""The registry timeout's names, apart from the options: every command's
`--registry-timeout` flag needs them, and a build that reaches no registry then never
loads `options.py` (its dataclass costs ~1 ms of start-up)."""

TIMEOUT_ENV = "OCIBUILD_REGISTRY_TIMEOUT"
DEFAULT_TIMEOUT = 60.0
