"""Where training rows come from: JSONL files (messages / alpaca / sharegpt) and a vertical's SFT sets.

Every row keeps its origin (`file:line`, or `source#index` for vertical rows) so a bad row is reported where it
lives. Bad rows stop the run (on_error=error) or are skipped and counted per reason (on_error=skip): never silent.
Eval-only datasets (domainlm.data.usage.EVAL_ONLY) are refused before a single row is read.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from domainlm import log
from domainlm.data.formats import BadRow, to_messages
from domainlm.data.usage import assert_trainable
from domainlm.errors import DataError
from domainlm.hashing import sha256_file

logger = log.get("data")


@dataclass
class Example:
    messages: list[dict]
    origin: str        # file:line or source#index, used in every error message
    source: str        # dataset name recorded in the manifest


@dataclass
class RowIssues:
    """Bad rows seen while loading/encoding: counts per reason and the first few locations."""

    on_error: str = "error"
    counts: Counter = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)

    def report(self, origin: str, problem: BadRow) -> None:
        if self.on_error == "error":
            raise DataError(f"{origin}: {problem} (set data.on_error: skip to skip and count bad rows)")
        self.counts[problem.reason] += 1
        if len(self.examples) < 5:
            self.examples.append(f"{origin}: {problem}")

    @property
    def skipped(self) -> int:
        return sum(self.counts.values())

    def to_dict(self) -> dict:
        return {"skipped": self.skipped, "by_reason": dict(sorted(self.counts.items())), "first": self.examples}

    def log_summary(self, what: str) -> None:
        if self.skipped:
            logger.warning("bad rows skipped", data=what, skipped=self.skipped, by_reason=dict(self.counts),
                           first=self.examples[0])


def read_jsonl(path: Path, fmt: str, source: str, issues: RowIssues, system_prompt: str | None = None) -> list[Example]:
    assert_trainable(path)
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    examples = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            origin = f"{path}:{number}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                issues.report(origin, BadRow("malformed_json", exc.msg))
                continue
            try:
                examples.append(Example(to_messages(row, fmt, system_prompt), origin, source))
            except BadRow as problem:
                issues.report(origin, problem)
    return examples


def file_record(path: Path, name: str, licence: str | None, rows: int) -> dict:
    return {"name": name, "path": str(path.resolve()), "sha256": sha256_file(path), "rows": rows,
            "licence": licence or "unknown"}
