"""Formats any vertical may use: project-authored QA JSONL, chat-message JSONL, alpaca instruction files."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from domainlm.data.sources import readers
from domainlm.data.sources.base import Record, Skip, turns
from domainlm.data.text import clean, detect_lang

LANGS = ("en", "zh")


def qa_jsonl(path: Path) -> Iterator[Record | Skip]:
    """{"id", "lang": en|zh, "topic", "question", "answer"} per line (the project-authored sets)."""
    for where, obj in readers.jsonl(path):
        if isinstance(obj, Skip):
            yield obj
            continue
        missing = [k for k in ("id", "lang", "question", "answer") if not str(obj.get(k) or "").strip()]
        if missing:
            yield Skip(f"missing {missing[0]}", where)
            continue
        if obj["lang"] not in LANGS:
            yield Skip("lang is not en or zh", where)
            continue
        question, answer = clean(str(obj["question"])), clean(str(obj["answer"]))
        if detect_lang(question + "\n" + answer) != obj["lang"]:
            yield Skip("text is not in the declared lang", where)
            continue
        yield Record(str(obj["id"]), turns(question, answer), obj["lang"], {"topic": obj.get("topic")})


def chat_jsonl(path: Path) -> Iterator[Record | Skip]:
    """{"messages": [{role, content}, ...]} per line; system turns are dropped (the vertical supplies its own)."""
    for where, obj in readers.jsonl(path):
        if isinstance(obj, Skip):
            yield obj
            continue
        messages = obj.get("messages")
        if not isinstance(messages, list):
            yield Skip("no messages list", where)
            continue
        kept = [{"role": m.get("role"), "content": clean(str(m.get("content") or ""))}
                for m in messages if isinstance(m, dict) and m.get("role") != "system"]
        roles = [m["role"] for m in kept]
        if not kept or roles != ["user", "assistant"] * (len(kept) // 2) or len(kept) % 2:
            yield Skip("turns do not alternate user/assistant", where)
        elif any(not m["content"] for m in kept):
            yield Skip("empty turn", where)
        else:
            yield Record(str(obj.get("id") or where), kept)


def _alpaca(rows, drop_instruction: bool) -> Iterator[Record | Skip]:
    for where, obj in rows:
        if isinstance(obj, Skip):
            yield obj
            continue
        instruction, given = clean(str(obj.get("instruction") or "")), clean(str(obj.get("input") or ""))
        output = clean(str(obj.get("output") or ""))
        user = given if drop_instruction else "\n\n".join(p for p in (instruction, given) if p)
        if not user:
            yield Skip("empty question", where)
        elif not output:
            yield Skip("empty answer", where)
        else:
            yield Record(where, turns(user, output))


def alpaca_json(path: Path) -> Iterator[Record | Skip]:
    """JSON array of {instruction, input, output}: user = instruction + input."""
    return _alpaca(readers.json_array(path), drop_instruction=False)


def alpaca_jsonl(path: Path) -> Iterator[Record | Skip]:
    """JSONL of {instruction, input, output} (Huatuo's llama_data): user = instruction + input."""
    return _alpaca(readers.jsonl(path), drop_instruction=False)


def role_prompt_alpaca_json(path: Path) -> Iterator[Record | Skip]:
    """JSON array whose `instruction` is a fixed role prompt (ChatDoctor): user = input only."""
    return _alpaca(readers.json_array(path), drop_instruction=True)
