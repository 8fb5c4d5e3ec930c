"""Parsers for the shared SFT datasets: each turns one file into chat records, and names every row it skips.

A parser is `parse(path) -> Iterator[Record | Skip]`. Records carry the dataset's own id, the user/assistant turns
(no system message: the vertical adds its own), and the row's language when the file says it. Skips carry a short
reason and the place (file:line or file#index) so the data card can count them — nothing is dropped silently.
FORMATS maps the `format:` names used in vertical YAMLs to parsers.
"""

from __future__ import annotations

from domainlm.data.sources.base import Record, Skip
from domainlm.data.sources.formats import FORMATS, parse_file

__all__ = ["FORMATS", "Record", "Skip", "parse_file"]
