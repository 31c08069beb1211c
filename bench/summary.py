"""The table `make bench` ends with: each figure, its value, its target and whether it is met."""

from __future__ import annotations

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

    def add(self, figure: str, value: str, target: str = "", met: bool | None = None) -> None:
        self.rows.append(Row(figure, value, target, met))

    def print(self) -> None:
        if not self.rows:
            return
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
