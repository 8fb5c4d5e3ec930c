"""The replay pool: general and format-bound prompts whose answers — the base model's own — go back into training.

Fine-tuning a small model on long domain answers teaches it to talk: asked for "yes, no or maybe" it starts writing
paragraphs (the medical adapter's PubMedQA format fell 32.5 points). Replay keeps a share of every batch on what the
base could already do, with the base's own answers as targets, so nothing outside is needed and nothing new is
taught. The pool asks for a letter, for yes/no/maybe, for JSON, for one sentence — in English and in Chinese.

Prompt texts come from the MMLU `val` and CMMLU `dev` splits only: the gated general items are their `test` splits,
so replay never sees a gating question, and its targets are the base's answers, never the gold labels — it can
anchor behaviour, it cannot teach a test answer. `follows_format` is the filter: a base answer that does not follow
its prompt's format is not replayed (replay must model the format, not the base's slips).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from domainlm.data.benchmarks import cmmlu, mmlu
from domainlm.errors import DataError

LETTERS = "ABCD"
# (kind, language) → prompts in the pool; 528 in all, ~30 s of offline vLLM generation for a 135M base on 2 cores
COMPOSITION = {("letter", "en"): 96, ("letter", "zh"): 96, ("yesno", "en"): 96, ("yesno", "zh"): 48,
               ("json", "en"): 48, ("json", "zh"): 48, ("sentence", "en"): 48, ("sentence", "zh"): 48}
MAX_NEW_TOKENS = {"letter": 8, "yesno": 8, "json": 32, "sentence": 64}
YESNO = {"en": ("yes", "no", "maybe"), "zh": ("是", "否", "不确定")}


@dataclass(frozen=True)
class ReplayPrompt:
    id: str
    kind: str          # letter | yesno | json | sentence
    lang: str          # en | zh
    prompt: str
    max_new_tokens: int


@dataclass(frozen=True)
class _Question:
    id: str
    lang: str
    question: str
    options: tuple[str, ...]


def _mmlu_val() -> list[_Question]:
    return [_Question(f"mmlu/val/{subject}_val/{i}", "en", row["question"].strip(),
                      tuple(row[k] for k in LETTERS))
            for subject in mmlu.subjects("val") for i, row in enumerate(mmlu.rows(subject, "val"))
            if row["answer"] is not None and row["question"].strip()]


def _cmmlu_dev() -> list[_Question]:
    return [_Question(f"cmmlu/dev/{subject}/{i}", "zh", row["Question"].strip(), tuple(row[k] for k in LETTERS))
            for subject in cmmlu.subjects("dev") for i, row in enumerate(cmmlu.rows(subject, "dev"))
            if (row.get("Question") or "").strip()]


def _options(q: _Question) -> str:
    return "\n".join(f"{letter}. {text}" for letter, text in zip(LETTERS, q.options, strict=True))


def _render(kind: str, q: _Question, salt: int) -> str:
    if kind == "letter":
        tail = "Answer with the letter of the correct option only." if q.lang == "en" else "请只回答正确选项的字母。"
        return f"{q.question}\n{_options(q)}\n{tail}"
    if kind == "yesno":
        option = q.options[salt % len(q.options)]
        if q.lang == "en":
            return (f"Context: {q.question}\nQuestion: Is \"{option}\" the correct answer?\n"
                    "Answer with yes, no or maybe.")
        return f"背景：{q.question}\n问题：“{option}”是正确答案吗？\n请只回答“是”、“否”或“不确定”。"
    if kind == "json":
        if q.lang == "en":
            return (f"{q.question}\n{_options(q)}\nReply with only a JSON object of the form "
                    '{"answer": "<letter>"}.')
        return f'{q.question}\n{_options(q)}\n请只输出一个 JSON 对象，格式为 {{"answer": "<字母>"}}。'
    if kind == "sentence":
        return (f"Answer in one sentence: {q.question}" if q.lang == "en" else f"请用一句话回答：{q.question}")
    raise ValueError(f"unknown replay prompt kind {kind!r}")


def build_pool(seed: int = 0) -> list[ReplayPrompt]:
    """The pool, deterministic for a seed (hash order of question ids; disjoint questions across kinds)."""
    try:
        questions = {"en": _mmlu_val(), "zh": _cmmlu_dev()}
    except DataError as exc:
        raise DataError(f"the replay pool reads MMLU val and CMMLU dev: {exc}") from None
    for items in questions.values():
        items.sort(key=lambda q: hashlib.sha256(f"{seed}:{q.id}".encode()).digest())
    used: set[str] = set()
    pool = []
    for (kind, lang), count in COMPOSITION.items():
        # one-sentence prompts need a short, self-contained question (not a passage to read)
        eligible = [q for q in questions[lang] if q.id not in used and (kind != "sentence" or len(q.question) <= 160)]
        if len(eligible) < count:
            raise DataError(f"replay pool: only {len(eligible)} {lang} questions left for {count} {kind} prompts")
        for index, q in enumerate(eligible[:count]):
            used.add(q.id)
            pool.append(ReplayPrompt(f"{kind}-{lang}:{q.id}", kind, lang, _render(kind, q, index),
                                     MAX_NEW_TOKENS[kind]))
    return pool


def pool_fingerprint(pool: list[ReplayPrompt]) -> str:
    return hashlib.sha256(json.dumps([asdict(p) for p in pool], ensure_ascii=False).encode()).hexdigest()


_SENTENCE_END = re.compile(r"[.!?。！？](?=\s|$)")


def follows_format(prompt: ReplayPrompt, answer: str) -> bool:
    """Does the base's answer do what its prompt asked? Only answers that do are replayed."""
    text = answer.strip()
    if not text:
        return False
    if prompt.kind == "letter":
        return bool(re.match(r"^\(?[A-D](?:$|[\s.):，。])", text))
    if prompt.kind == "yesno":
        first = re.split(r"[\s,.;:!?，。；：！？]", text, maxsplit=1)[0].lower()
        return first in YESNO[prompt.lang] or (prompt.lang == "zh" and text.startswith(YESNO["zh"]))
    if prompt.kind == "json":
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            return False
        return isinstance(value, dict) and str(value.get("answer", "")).strip().upper() in set(LETTERS)
    if prompt.kind == "sentence":
        ends = _SENTENCE_END.findall(text)
        return len(ends) == 1 and _SENTENCE_END.search(text[-1] + " ") is not None and len(text) <= 400
    return False


def write_pool(pool: list[ReplayPrompt], path: Path) -> None:
    path.write_text("".join(json.dumps(asdict(p), ensure_ascii=False) + "\n" for p in pool), encoding="utf-8")


def read_pool(path: Path) -> list[ReplayPrompt]:
    return [ReplayPrompt(**json.loads(line)) for line in path.read_text(encoding="utf-8").split("\n") if line]
