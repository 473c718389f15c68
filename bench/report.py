"""The results, out: one rich table on the terminal, raw numbers as JSON, a Markdown copy.

Who calls it: :mod:`bench.run`, once, at the end. ``latest.json`` holds every raw figure
(each repetition, not only medians) so a later reader can recompute anything;
``latest.md`` is the table as the README quotes it.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
from collections.abc import Sequence
from typing import Any

import rich.console
import rich.table

from bench import measuring


def _verdict(row: measuring.Row) -> str:
    if row.met is None:
        return "-"
    return "met" if row.met else "MISSED"


def _lines(groups: Sequence[measuring.GroupResult]) -> list[tuple[str, str, str, str, str]]:
    lines = []
    for group in groups:
        if group.not_run is not None:
            lines.append((group.title, "", f"not run: {group.not_run}", "", ""))
            continue
        for index, row in enumerate(group.rows):
            lines.append(
                (
                    group.title if index == 0 else "",
                    row.measurement,
                    row.figure,
                    row.target,
                    _verdict(row),
                )
            )
    return lines


def print_table(
    console: rich.console.Console, groups: Sequence[measuring.GroupResult], title: str
) -> None:
    table = rich.table.Table(title=title, show_lines=False)
    for column in ("group", "measurement", "figure", "target", "result"):
        table.add_column(column, overflow="fold")
    styles = {"met": "green", "MISSED": "bold red"}
    for group_title, measurement, figure, target, verdict in _lines(groups):
        style = styles.get(verdict, "")
        table.add_row(
            group_title, measurement, figure, target, f"[{style}]{verdict}[/]" if style else verdict
        )
    console.print(table)
    for group in groups:
        for note in group.notes:
            console.print(f"[dim]{group.name}:[/] {note}", highlight=False)


def markdown(groups: Sequence[measuring.GroupResult]) -> str:
    out = ["| group | measurement | figure | target | result |", "|---|---|---|---|---|"]
    for line in _lines(groups):
        cells = [cell.replace("|", "\\|").replace("\n", " ") for cell in line]
        out.append("| " + " | ".join(cells) + " |")
    notes = [f"- {group.name}: {note}" for group in groups for note in group.notes]
    return "\n".join(out + (["", *notes] if notes else [])) + "\n"


def write(
    directory: pathlib.Path, groups: Sequence[measuring.GroupResult], meta: dict[str, Any]
) -> pathlib.Path:
    directory.mkdir(parents=True, exist_ok=True)
    document = {
        **meta,
        "groups": {
            group.name: {
                **{k: v for k, v in dataclasses.asdict(group).items() if k != "rows"},
                "rows": [dataclasses.asdict(row) for row in group.rows],
            }
            for group in groups
        },
    }
    path = directory / "latest.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(document, indent=2, default=str), encoding="utf-8")
    tmp.replace(path)
    (directory / "latest.md").write_text(markdown(groups), encoding="utf-8")
    return path
