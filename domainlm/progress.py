"""Progress bars for long work: tqdm on a terminal, quiet periodic lines when stderr is not a TTY (CI logs)."""

from __future__ import annotations

import os
import sys

from tqdm.auto import tqdm


def bar(iterable=None, *, total: int | None = None, desc: str = "", unit: str = "it", **kwargs):
    disable = os.environ.get("DOMAINLM_PROGRESS", "auto") == "off"
    mininterval = 0.5 if sys.stderr.isatty() else 30.0
    return tqdm(iterable, total=total, desc=desc, unit=unit, disable=disable, mininterval=mininterval,
                dynamic_ncols=True, leave=True, **kwargs)
