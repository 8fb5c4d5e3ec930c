"""Run named stages once: a stage whose inputs hash the same and whose outputs still verify is skipped.

state.json (written atomically after every stage) records, per stage, the sha256 of its inputs ("key"), its
status and its result. Re-running the pipeline skips completed stages; a stage interrupted mid-way is run again
(training resumes from its own checkpoints, because its output folder is derived from the same key).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from collections.abc import Callable

from domainlm import log
from domainlm.atomic import atomic_write_json
from domainlm.hashing import sha256_bytes

logger = log.get("pipeline")


def key_of(inputs: dict) -> str:
    return sha256_bytes(json.dumps(inputs, sort_keys=True, default=str))


class StageRunner:
    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.state_path = workdir / "state.json"
        self.state: dict = json.loads(self.state_path.read_text()) if self.state_path.is_file() else {}
        self.ran: list[str] = []
        self.skipped: list[str] = []

    def _save(self) -> None:
        atomic_write_json(self.state_path, self.state)

    def run(self, name: str, inputs: dict, work: Callable[[], dict],
            still_valid: Callable[[dict], bool] = lambda result: True) -> dict:
        key = key_of(inputs)
        record = self.state.get(name)
        if record and record.get("key") == key and record.get("status") == "done":
            try:
                valid = still_valid(record["result"])
            except Exception as exc:  # a vanished or tampered output means: run the stage again
                logger.warning("stage output no longer valid", stage=name, reason=str(exc))
                valid = False
            if valid:
                logger.info("stage skipped (inputs unchanged, outputs verified)", stage=name)
                self.skipped.append(name)
                return record["result"]
        self.state[name] = {"key": key, "status": "running", "started_at": time.time()}
        self._save()
        started = time.time()
        result = work()
        self.state[name] = {"key": key, "status": "done", "result": result, "seconds": round(time.time() - started, 1)}
        self._save()
        self.ran.append(name)
        logger.info("stage done", stage=name, seconds=self.state[name]["seconds"])
        return result

    def seconds(self, name: str) -> float | None:
        return (self.state.get(name) or {}).get("seconds")
