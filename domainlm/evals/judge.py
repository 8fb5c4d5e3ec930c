"""judge tasks: each subject answers, then a judge model behind an OpenAI-compatible endpoint grades the answer
against the reference with a fixed rubric. Score = (grade - 1) / (max - 1) in [0, 1]; an unreadable grade is 0
and is counted (judge_parse_error), never silently dropped."""

from __future__ import annotations

import os
import re

from domainlm.errors import ConfigError

from domainlm.evals.cache import model_key, request_key
from domainlm.evals.tasks.base import render

RUBRIC = (
    "You grade an answer to a question by comparing it with a reference answer.\n\n"
    "Question:\n{question}\n\nReference answer:\n{reference}\n\nCandidate answer:\n{answer}\n\n"
    "Grade the candidate from 1 (wrong, irrelevant or unsafe) to {max_score} (correct and complete, consistent "
    "with the reference). Reply with one line: Score: <number>"
)


def parse_grade(text: str, max_score: int) -> int | None:
    match = re.search(r"score\s*[:=]?\s*(\d+)", text, flags=re.I) or re.search(r"\b(\d+)\b", text)
    if not match:
        return None
    grade = int(match.group(1))
    return grade if 1 <= grade <= max_score else None


def _question(plan, item) -> str:
    if item.messages:
        return next((m["content"] for m in reversed(item.messages) if m.get("role") == "user"), "")
    return render(plan.task, item)


def judge_items(cfg, plan, generated: dict, cache) -> list[dict]:
    """One {judge_score, judge_grade, judge_parse_error} per item of a judge task."""
    if not cfg.endpoint or not cfg.model:
        raise ConfigError(f"task '{plan.task.name}' is a judge task: set judge.endpoint and judge.model")
    import openai

    client = openai.OpenAI(base_url=cfg.endpoint, api_key=os.environ.get(cfg.api_key_env) or "EMPTY")
    judge_model = model_key({"judge": cfg.endpoint, "model": cfg.model, "max_tokens": cfg.max_tokens})
    out = []
    for index, item in enumerate(plan.task.items):
        answer = generated[plan.gen[index]]
        prompt = RUBRIC.format(question=_question(plan, item), reference=item.reference or "", answer=answer,
                               max_score=cfg.max_score)
        key = request_key(judge_model, {"judge": prompt})
        reply = cache.get_many([key]).get(key)
        if reply is None:
            response = client.chat.completions.create(model=cfg.model, messages=[{"role": "user", "content": prompt}],
                                                      max_tokens=cfg.max_tokens, temperature=0.0)
            reply = response.choices[0].message.content or ""
            cache.put_many(judge_model, {key: reply})
        grade = parse_grade(reply, cfg.max_score)
        out.append({"judge_score": 0.0 if grade is None else (grade - 1) / (cfg.max_score - 1),
                    "judge_grade": grade, "judge_parse_error": grade is None})
    client.close()
    return out
