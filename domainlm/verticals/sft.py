"""A vertical's own SFT rows as training examples: the part of a run's data that the vertical supplies.

`data/dataset.build` takes a `VerticalRows` (made by the trainer) when the config names `data.vertical`, so the data
package never imports the verticals package that sits above it.
"""

from __future__ import annotations

from dataclasses import dataclass

from domainlm.data.formats import BadRow, to_messages
from domainlm.data.inputs import Example, RowIssues
from domainlm.data.usage import assert_trainable
from domainlm.verticals.registry import get_vertical


@dataclass(frozen=True)
class VerticalRows:
    vertical: str
    system_prompt: str | None = None
    seed: int = 0

    def rows(self, split: str, limit: int | None, issues: RowIssues) -> list[Example]:
        return vertical_rows(self.vertical, split, limit, issues, self.system_prompt, self.seed)

    def sources(self) -> list[dict]:
        return vertical_sources(self.vertical)

    def safety_rows(self, limit: int | None, issues: RowIssues) -> list[Example]:
        """The vertical's safety SFT rows (a data.mix `safety` part)."""
        spec = get_vertical(self.vertical)
        return _examples(self.vertical, spec.safety_rows(limit=limit, seed=self.seed), issues, self.system_prompt)

    def safety_sources(self) -> list[dict]:
        return get_vertical(self.vertical).safety_data_sources()


def vertical_rows(vertical: str, split: str, limit: int | None, issues: RowIssues,
                  system_prompt: str | None = None, seed: int = 0) -> list[Example]:
    """A vertical's SFT rows for `split` (train/eval); eval-only sources are refused by name."""
    return _examples(vertical, get_vertical(vertical).sft_rows(split=split, limit=limit, seed=seed), issues,
                     system_prompt)


def _examples(vertical: str, rows: list[dict], issues: RowIssues, system_prompt: str | None) -> list[Example]:
    examples = []
    for index, row in enumerate(rows):
        source = row.get("source", vertical)
        assert_trainable(source)
        origin = f"{vertical}:{source}#{row.get('id', index)}"
        try:
            examples.append(Example(to_messages(row, "messages", system_prompt), origin, source))
        except BadRow as problem:
            issues.report(origin, problem)
    return examples


def vertical_sources(vertical: str) -> list[dict]:
    records = [dict(r) for r in get_vertical(vertical).data_sources()]
    for record in records:
        assert_trainable(record["name"])
        if record.get("path"):
            assert_trainable(record["path"])
    return records
