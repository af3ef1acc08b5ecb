"""The rows of the ablation table (Table IV) as typed values: a temporal model, the challenge baseline, or the
config's model without label refinement. The config writes them as names (`experiment.ablation_models`); this is
the one place that reads those names, so code asks a row its `kind` instead of comparing strings."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from harness.config.limits import BASELINE_ROW, NO_REFINE_ROW

RowKind = Literal["model", "baseline", "no_refine"]
"""A temporal model of the registry; the challenge baseline (`baseline` section); the config's model trained
without label refinement."""


@dataclass(frozen=True)
class TableRow:
    """One row of an experiment table.

    Args:
        kind: what the row trains (`RowKind`).
        name: its name in `experiment.ablation_models` and in its run folder (`ablation/<name>/`): the temporal
            model's name for a model row.
    """

    kind: RowKind
    name: str

    @classmethod
    def model(cls, name: str) -> TableRow:
        """The row of a temporal model."""
        return cls("model", name)

    @classmethod
    def baseline(cls) -> TableRow:
        """The challenge baseline's row."""
        return cls("baseline", BASELINE_ROW)


def table_rows(names: Iterable[str]) -> tuple[TableRow, ...]:
    """The typed rows of `experiment.ablation_models`-style names, in their order."""
    kinds: dict[str, RowKind] = {BASELINE_ROW: "baseline", NO_REFINE_ROW: "no_refine"}
    return tuple(TableRow(kinds.get(n, "model"), n) for n in names)
