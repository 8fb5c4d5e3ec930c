"""`domainlm data synth`: expand a vertical's training seeds with a teacher model behind any OpenAI-compatible
endpoint (vLLM, the domainlm gateway, a hosted API), then filter.

One candidate = two teacher calls: write a new question in the style of a few seed questions, then answer it under
the vertical's system prompt. Filters, in order: format → length → language → near-duplicate (MinHash vs seeds
and earlier outputs) → decontamination (n-gram overlap with every eval set, the vertical's held-out split
included). Kept rows are written as qa_jsonl, so the file can be added to vertical.yaml as a `synthetic` source.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

from domainlm import log
from domainlm.errors import DomainlmError
from domainlm.atomic import atomic_write_json, atomic_write_text
from domainlm.hashing import sha256_bytes
from domainlm.verticals.dedup import MinHashIndex
from domainlm.data.text import detect_lang

_log = log.get("verticals.synth")

ASK = {
    "en": "Here are example questions from the {domain} domain:\n{examples}\n\nWrite one new question on a "
          "different topic in the same domain. Reply with the question only.",
    "zh": "以下是{domain}领域的示例问题：\n{examples}\n\n请就该领域的另一个主题写一个新问题。只回复问题本身。",
}
_LEADING = re.compile(r"^\s*(\d+[.)、]|[-*•]|question\s*[:：]|问题\s*[:：]|q\s*[:：])\s*", re.IGNORECASE)
_LABELS = re.compile(r"^\s*(answer|回答|答案)\s*[:：]\s*", re.IGNORECASE)


class SynthError(DomainlmError):
    """The teacher endpoint cannot be reached or answers with something that is not a chat completion."""


@dataclass
class SynthConfig:
    endpoint: str                  # OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1
    model: str | None = None       # teacher model name (default: the first one /v1/models lists)
    api_key: str = "EMPTY"
    n: int = 20                    # candidates to generate
    lang: str = "both"             # en | zh | both (alternates, where the seeds have both)
    shots: int = 3                 # seed questions shown per candidate
    seed: int = 0
    temperature: float = 0.8
    max_question_tokens: int = 96
    max_answer_tokens: int = 384
    min_question_chars: int = 6   # 什么是上升流？ is a full question in 7 characters
    max_question_chars: int = 400
    min_answer_chars: int = 20
    max_answer_chars: int = 4000
    dedup_threshold: float = 0.8   # estimated Jaccard of question shingles
    timeout_s: float = 120.0


def _client(cfg: SynthConfig):
    from openai import OpenAI

    return OpenAI(base_url=cfg.endpoint.rstrip("/"), api_key=cfg.api_key, timeout=cfg.timeout_s, max_retries=1)


def _teacher_model(client, cfg: SynthConfig) -> str:
    from openai import OpenAIError

    if cfg.model:
        return cfg.model
    try:
        models = client.models.list().data
    except OpenAIError as exc:  # connection, timeout and HTTP errors: the user needs the endpoint and the cause
        raise SynthError(f"teacher endpoint {cfg.endpoint}: cannot list models ({type(exc).__name__}: {exc})") from None
    if not models:
        raise SynthError(f"teacher endpoint {cfg.endpoint} lists no models: pass --model")
    return models[0].id


def _chat(client, model: str, messages: list[dict], max_tokens: int, temperature: float, seed: int) -> tuple[str, bool]:
    """(reply text, whether it was cut at max_tokens)."""
    from openai import OpenAIError

    try:
        reply = client.chat.completions.create(model=model, messages=messages, max_tokens=max_tokens,
                                               temperature=temperature, seed=seed)
    except OpenAIError as exc:
        raise SynthError(f"teacher call failed ({type(exc).__name__}: {exc})") from None
    if not reply.choices:
        return "", False
    choice = reply.choices[0]
    return (choice.message.content or "").strip(), choice.finish_reason == "length"


_SENTENCE_END = re.compile(r"[.!?。！？](?=[^.!?。！？]*$)")
_IMPERATIVE = re.compile(r"^(explain|describe|calculate|compute|estimate|compare|list|define|outline|summari[sz]e|"
                         r"give|name|derive|discuss|请|简述|说明|解释|计算|比较|列举|描述|试述|分析)", re.IGNORECASE)


def clean_question(text: str) -> str:
    """First non-empty line of the teacher's reply, without list markers or a 'Question:' label."""
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    while (stripped := _LEADING.sub("", line, count=1)) != line:  # "1. Question: ..." carries two markers
        line = stripped
    return line.strip().strip('"“”')


def clean_answer(text: str, truncated: bool = False) -> str:
    """The answer without an 'Answer:' label; a reply cut at max_tokens loses its unfinished last sentence."""
    text = _LABELS.sub("", text).strip()
    if truncated:
        end = _SENTENCE_END.search(text)
        text = text[:end.end()] if end else ""
    return text


def check(question: str, answer: str, lang: str, cfg: SynthConfig) -> str | None:
    """The first format/length/language filter a candidate fails, or None."""
    if not question or not answer:
        return "format: empty question, or an answer cut before its first full sentence"
    if "\ufffd" in question + answer:
        return "format: broken characters"
    if not (question.endswith(("?", "？")) or _IMPERATIVE.match(question)):
        return "format: not a question or a task"
    if re.search(r"(answer|回答|答案)\s*[:：]", question, re.IGNORECASE):
        return "format: answer inside the question"
    if answer.startswith(question):
        return "format: answer repeats the question"
    if not cfg.min_question_chars <= len(question) <= cfg.max_question_chars:
        return "length: question"
    if not cfg.min_answer_chars <= len(answer) <= cfg.max_answer_chars:
        return "length: answer"
    if detect_lang(question + "\n" + answer) != lang:
        return "language"
    return None


def _seed_pools(rows: list[dict], lang: str) -> dict[str, list[dict]]:
    pools = {code: [r for r in rows if r["lang"] == code] for code in ("en", "zh")}
    wanted = ("en", "zh") if lang == "both" else (lang,)
    return {code: pools[code] for code in wanted if pools[code]}


def synthesize(vertical, cfg: SynthConfig, out: Path) -> dict:
    """Generate, filter and write `out` (qa_jsonl) + `out`.report.json; return the report."""
    seeds = vertical.sft_rows("train", system=False)  # train only: eval rows never reach the teacher
    pools = _seed_pools(seeds, cfg.lang)
    if not pools:
        raise SynthError(f"vertical '{vertical.name}' has no training seeds in language '{cfg.lang}'")
    client = _client(cfg)
    model = _teacher_model(client, cfg)
    dedup = MinHashIndex(threshold=cfg.dedup_threshold, seed=cfg.seed)
    for row in seeds:
        dedup.add(row["id"], row["messages"][0]["content"])
    index = vertical.eval_index()
    rng = random.Random(cfg.seed)
    langs = sorted(pools)
    stages: Counter = Counter()
    kept: list[dict] = []
    started = time.monotonic()
    for i in range(cfg.n):
        lang = langs[i % len(langs)]
        shots = rng.sample(pools[lang], min(cfg.shots, len(pools[lang])))
        examples = "\n".join(f"{k + 1}. {r['messages'][0]['content']}" for k, r in enumerate(shots))
        ask = ASK[lang].format(domain=vertical.title[lang], examples=examples)
        text, _ = _chat(client, model, [{"role": "user", "content": ask}], cfg.max_question_tokens,
                        cfg.temperature, cfg.seed + i)
        question, answer = clean_question(text), ""
        if question:
            text, truncated = _chat(client, model, [{"role": "system", "content": vertical.system_prompt(lang)},
                                                    {"role": "user", "content": question}],
                                    cfg.max_answer_tokens, min(cfg.temperature, 0.3), cfg.seed + i)
            answer = clean_answer(text, truncated)
        stages["generated"] += 1
        reason = check(question, answer, lang, cfg)
        if reason is None:
            duplicate = dedup.add_if_new(f"synth:{i}", question)
            if duplicate:
                reason = "near-duplicate"
        if reason is None:
            hits = index.hits(question + "\n" + answer)
            if hits:
                reason = "contaminated"
                stages.update(f"contaminated: {name}" for name in hits)
        if reason:
            stages[f"rejected: {reason}"] += 1
            continue
        row_id = f"synth-{vertical.name}-{sha256_bytes(question)[:12]}"
        kept.append({"id": row_id, "lang": lang, "topic": "synthetic", "question": question, "answer": answer,
                     "teacher": model, "seed_ids": [r["id"] for r in shots]})
    stages["kept"] = len(kept)
    report = {"vertical": vertical.name, "teacher": model, "endpoint": cfg.endpoint, "output": str(out),
              "config": {k: v for k, v in asdict(cfg).items() if k != "api_key"}, "stages": dict(stages),
              "seconds": round(time.monotonic() - started, 1),
              "eval_sets_checked": sorted(index.sets), "seeds": len(seeds)}
    atomic_write_text(out, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in kept))
    atomic_write_json(Path(f"{out}.report.json"), report)
    _log.info("synth", vertical=vertical.name, generated=stages["generated"], kept=len(kept), out=str(out))
    return report
