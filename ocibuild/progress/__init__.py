"""Build progress: events the solver emits, and renderers that show them."""

from ocibuild.progress.events import Event, EventKind, Recorder, Sink
from ocibuild.progress.plain import PlainRenderer

__all__ = ["Event", "EventKind", "PlainRenderer", "Recorder", "Sink"]
