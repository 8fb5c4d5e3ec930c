"""Structured logging: one `ts level logger event key=value …` line per record (JSON with DOMAINLM_LOG_JSON=1)."""

from __future__ import annotations

import json
import logging
import os
import sys
import time


class _KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", {})
        if os.environ.get("DOMAINLM_LOG_JSON") == "1":
            return json.dumps({"ts": round(record.created, 3), "level": record.levelname.lower(),
                               "logger": record.name, "event": record.getMessage(), **fields},
                              ensure_ascii=False, default=str)
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        pairs = " ".join(f"{k}={v}" for k, v in fields.items())
        return f"{stamp} {record.levelname.lower():5} {record.name} {record.getMessage()} {pairs}".rstrip()


def setup(level: str | None = None) -> None:
    root = logging.getLogger("domainlm")
    if root.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_KeyValueFormatter())
    root.addHandler(handler)
    root.setLevel((level or os.environ.get("DOMAINLM_LOG_LEVEL", "INFO")).upper())
    root.propagate = False


class _Logger:
    """logger.info("event", key=value) — keyword fields become structured fields."""

    def __init__(self, name: str):
        self._log = logging.getLogger(name)

    def _emit(self, level: int, event: str, fields: dict) -> None:
        if self._log.isEnabledFor(level):
            self._log.log(level, event, extra={"fields": fields})

    def debug(self, event: str, **fields) -> None:
        self._emit(logging.DEBUG, event, fields)

    def info(self, event: str, **fields) -> None:
        self._emit(logging.INFO, event, fields)

    def warning(self, event: str, **fields) -> None:
        self._emit(logging.WARNING, event, fields)

    def error(self, event: str, **fields) -> None:
        self._emit(logging.ERROR, event, fields)


def get(name: str) -> _Logger:
    return _Logger(name if name.startswith("domainlm") else f"domainlm.{name}")
