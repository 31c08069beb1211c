"""The table `make bench` ends with: each figure, its value, its target and whether it is met;
then how long each step took (the default run should stay near ten minutes)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Row:
    figure: str
    value: str
    target: str = ""
    met: bool | None = None  # None: a reference figure, no target


@dataclass
class Summary:
    rows: list[Row] = field(default_factory=list)
    steps: list[tuple[str, float]] = field(default_factory=list)

    @contextmanager
    def timed(self, step: str) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        finally:
            self.steps.append((step, time.monotonic() - started))

    def add(self, figure: str, value: str, target: str = "", met: bool | None = None) -> None:
        self.rows.append(Row(figure, value, target, met))

    def print(self) -> None:
        if self.rows:
            self._print_rows()
        if self.steps:
            print(
                "time per step: " + ", ".join(f"{name} {secs:.0f} s" for name, secs in self.steps)
            )

    def _print_rows(self) -> None:
        widths = [
            max(len(header), *(len(getattr(row, name)) for row in self.rows))
            for header, name in (("figure", "figure"), ("median", "value"), ("target", "target"))
        ]
        print("\n== summary (medians of alternating rounds) ==")
        header = f"{'figure':<{widths[0]}}  {'median':>{widths[1]}}  {'target':<{widths[2]}}  met"
        print(header)
        print("-" * len(header))
        for row in self.rows:
            met = {True: "yes", False: "NO", None: "-"}[row.met]
            print(
                f"{row.figure:<{widths[0]}}  {row.value:>{widths[1]}}  "
                f"{row.target:<{widths[2]}}  {met}"
            )
