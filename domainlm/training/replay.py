"""Replay rows for a training mixture: the base model's own answers to the replay pool (data/replay_pool.py).

Generated once per (base weights, pool, generation settings) by vLLM's offline engine, greedy, in a child process
(its engine, threads and memory are gone before training starts), then filtered to the answers that follow their
prompt's format and cached under $DOMAINLM_HOME/replay/<key>/ (answers.jsonl; raw.jsonl keeps every answer, kept or
not, for inspection). Concurrent trainers (torchrun ranks, parallel
pipeline runs) take a file lock: one generates, the others wait and read.

    python -m domainlm.training.replay --base DIR --pool POOL.jsonl --out ANSWERS.jsonl   (the child's entry)
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from domainlm import log, paths
from domainlm.atomic import atomic_write_json, atomic_write_text
from domainlm.children import die_with_parent
from domainlm.data.inputs import Example
from domainlm.data.replay_pool import build_pool, follows_format, pool_fingerprint, read_pool, write_pool
from domainlm.errors import DataError

logger = log.get("training.replay")
GENERATION = {"temperature": 0.0, "seed": 0, "engine": "vllm-offline", "version": 1}   # in the cache key
TIMEOUT_S = 1800


def engine_dtype() -> str:
    """The dtype the child's engine runs in: part of the key (bf16 and fp32 greedy answers can differ)."""
    import torch

    from domainlm.kernels.dtypes import resolve_dtype

    return "auto" if torch.cuda.is_available() else resolve_dtype("auto", "cpu")


def replay_key(weights_sha256: str, pool_sha256: str, dtype: str) -> str:
    blob = json.dumps({"base": weights_sha256, "pool": pool_sha256, "generation": GENERATION, "dtype": dtype},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def ensure_replay(base) -> Path:
    """The cached replay folder for this base (answers.jsonl + manifest.json), generated on first use."""
    pool = build_pool()
    folder = paths.home() / "replay" / replay_key(base.weights_sha256, pool_fingerprint(pool), engine_dtype())
    answers = folder / "answers.jsonl"
    if answers.is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)          # another trainer may be generating the same rows right now
        if not answers.is_file():
            _generate(base, pool, folder)
    return folder


def _generate(base, pool, folder: Path) -> None:
    pool_path = folder / "pool.jsonl"
    write_pool(pool, pool_path)
    raw = folder / "raw.jsonl"
    env = {**os.environ, "VLLM_ENABLE_V1_MULTIPROCESSING": "0", "VLLM_CPU_KVCACHE_SPACE": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, "-m", "domainlm.training.replay", "--base", str(base.path), "--pool", str(pool_path),
           "--out", str(raw), "--dtype", engine_dtype()]
    logger.info("generating replay answers with the base model (once per base)", prompts=len(pool),
                base=base.model_id, folder=str(folder))
    started = time.monotonic()
    log_path = folder / "generate.log"
    with open(log_path, "w") as log_file:
        proc = subprocess.run(cmd, stdout=log_file, stderr=subprocess.STDOUT, env=env, timeout=TIMEOUT_S,
                              preexec_fn=die_with_parent)
    if proc.returncode != 0 or not raw.is_file():
        tail = log_path.read_text(errors="replace")[-2000:]
        raise DataError(f"replay generation failed (exit {proc.returncode}); its log {log_path} ends:\n{tail}")
    # split on "\n" only: answers may hold U+2028 and other characters str.splitlines() also breaks at
    lines = [line for line in raw.read_text(encoding="utf-8").split("\n") if line]
    answers = {row["id"]: row["answer"] for row in map(json.loads, lines)}
    kept, asked, ok = [], Counter(), Counter()
    for prompt in pool:
        answer = answers.get(prompt.id, "").strip()
        asked[f"{prompt.kind}/{prompt.lang}"] += 1
        if follows_format(prompt, answer):
            ok[f"{prompt.kind}/{prompt.lang}"] += 1
            kept.append({"id": prompt.id, "kind": prompt.kind, "lang": prompt.lang,
                         "messages": [{"role": "user", "content": prompt.prompt},
                                      {"role": "assistant", "content": answer}]})
    if not kept:
        raise DataError("replay generation: the base model followed the format of none of the replay prompts")
    manifest = {"base": base.weights_sha256, "base_model": base.model_id, "pool_sha256": pool_fingerprint(pool),
                "generation": GENERATION, "dtype": engine_dtype(), "prompts": len(pool), "kept": len(kept),
                "per_kind": {k: {"asked": asked[k], "kept": ok[k]} for k in sorted(asked)},
                "seconds": round(time.monotonic() - started, 1),
                "sources": ["mmlu_hendrycks_2020-09/val (questions only)", "cmmlu/dev (questions only)"]}
    atomic_write_json(folder / "manifest.json", manifest)
    # answers.jsonl last: its presence is what marks the cache complete
    atomic_write_text(folder / "answers.jsonl",
                      "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in kept))
    logger.info("replay answers ready", kept=len(kept), prompts=len(pool), seconds=manifest["seconds"])


class ReplayRows:
    """The replay source of a training mixture (data/dataset.build asks it for rows, like VerticalRows)."""

    name = "replay"

    def __init__(self, base, seed: int = 0):
        self.base = base
        self.seed = seed
        self._folder: Path | None = None

    @property
    def folder(self) -> Path:
        if self._folder is None:
            self._folder = ensure_replay(self.base)
        return self._folder

    def rows(self, limit: int | None) -> list[Example]:
        text = (self.folder / "answers.jsonl").read_text(encoding="utf-8")
        rows = [json.loads(line) for line in text.split("\n") if line]
        rows.sort(key=lambda r: hashlib.sha256(f"{self.seed}:{r['id']}".encode()).digest())
        return [Example(r["messages"], f"replay:{r['id']}", "replay") for r in rows[:limit]]

    def record(self, used: int) -> dict:
        manifest = json.loads((self.folder / "manifest.json").read_text(encoding="utf-8"))
        return {"name": "replay", "path": str(self.folder), "sha256": self.folder.name,
                "rows": used, "rows_available": manifest["kept"], "licence": "base model's own outputs",
                "replay": manifest}


# --- the child: offline vLLM generation ------------------------------------------------------------------------

def _child(base: str, pool_path: str, out: str, dtype: str) -> None:
    import torch
    from transformers import AutoTokenizer
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt

    pool = read_pool(Path(pool_path))
    tokenizer = AutoTokenizer.from_pretrained(base)
    kwargs = dict(model=base, tokenizer=base, seed=GENERATION["seed"], enforce_eager=True, max_model_len=2048,
                  max_num_seqs=64, dtype=dtype)
    if not torch.cuda.is_available():
        kwargs["distributed_executor_backend"] = "uni"
    llm = LLM(**kwargs)
    prompts, params = [], []
    for p in pool:
        text = tokenizer.apply_chat_template([{"role": "user", "content": p.prompt}], add_generation_prompt=True,
                                             tokenize=False)
        prompts.append(TokensPrompt(prompt_token_ids=tokenizer(text, add_special_tokens=False)["input_ids"]))
        params.append(SamplingParams(temperature=GENERATION["temperature"], max_tokens=p.max_new_tokens,
                                     seed=GENERATION["seed"]))
    outputs = llm.generate(prompts, params, use_tqdm=False)
    lines = [json.dumps({"id": p.id, "answer": o.outputs[0].text}, ensure_ascii=False) + "\n"
             for p, o in zip(pool, outputs, strict=True)]
    Path(out).write_text("".join(lines), encoding="utf-8")


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base", required=True)
    parser.add_argument("--pool", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--dtype", default="auto")
    args = parser.parse_args()
    _child(args.base, args.pool, args.out, args.dtype)
