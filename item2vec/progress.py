"""One readable line per stage on stderr, and the stage timings the manifest records."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO


class Progress:
    """``with progress.stage("sessions") as note: ...; note("12 sessions")``."""

    def __init__(self, stream: TextIO | None = None, *, prefix: str = "item2vec") -> None:
        self.stream = stream or sys.stderr
        self.prefix = prefix
        self.timings: dict[str, float] = {}

    def say(self, text: str) -> None:
        print(f"[{self.prefix}] {text}", file=self.stream, flush=True)

    @contextmanager
    def stage(self, name: str) -> Iterator[list[str]]:
        notes: list[str] = []
        self.say(f"{name} ...")
        start = time.perf_counter()
        try:
            yield notes
        finally:
            seconds = time.perf_counter() - start
            self.timings[name] = round(self.timings.get(name, 0.0) + seconds, 3)
            detail = f": {'; '.join(notes)}" if notes else ""
            self.say(f"{name} done in {seconds:.1f}s{detail}")
