"""The medical SFT sets whose layout is their own: MedQuAD shards, Huatuo's multi-turn file, Toyhom's CSV."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from domainlm.data.sources import readers
from domainlm.data.sources.base import Record, Skip, turns
from domainlm.data.text import clean


def medquad_jsonl(path: Path) -> Iterator[Record | Skip]:
    """MedQuAD converted to JSONL: {qid, collection, question, answer, focus, qtype, ...}.

    qid repeats inside a collection for different questions (34 times upstream), so the id is collection/qid
    plus an occurrence counter where needed — stable because the shard order is fixed.
    """
    seen: Counter = Counter()
    for where, obj in readers.jsonl(path):
        if isinstance(obj, Skip):
            yield obj
            continue
        question, answer = clean(str(obj.get("question") or "")), clean(str(obj.get("answer") or ""))
        if not question:
            yield Skip("empty question", where)
            continue
        if not answer:
            yield Skip("empty answer", where)
            continue
        base = f"{obj.get('collection', '')}/{obj.get('qid', where)}"
        seen[base] += 1
        row_id = base if seen[base] == 1 else f"{base}#{seen[base]}"
        yield Record(row_id, turns(question, answer), "en", {"qtype": obj.get("qtype"), "focus": obj.get("focus")})


_TURN = re.compile(r"<(user|bot)>:")


def huatuo_dialogue_json(path: Path) -> Iterator[Record | Skip]:
    """Huatuo liver_cancer.json: instruction = ' <user>: … <bot>: … <user>: …', output = the last bot turn."""
    for where, obj in readers.json_array(path):
        if isinstance(obj, Skip):
            yield obj
            continue
        parts = _TURN.split(str(obj.get("instruction") or ""))
        # split gives [prefix, role, text, role, text, ...]
        pairs = [(parts[i], clean(parts[i + 1])) for i in range(1, len(parts) - 1, 2)]
        output = clean(str(obj.get("output") or ""))
        roles = [role for role, _ in pairs]
        if not pairs or roles != ["user", "bot"] * (len(pairs) // 2) + ["user"]:
            yield Skip("dialogue turns do not alternate user/bot", where)
        elif not output or any(not text for _, text in pairs):
            yield Skip("empty turn", where)
        else:
            messages = [{"role": "user" if r == "user" else "assistant", "content": t} for r, t in pairs]
            yield Record(where, messages + [{"role": "assistant", "content": output}], "zh")


def toyhom_csv(path: Path) -> Iterator[Record | Skip]:
    """Toyhom Chinese-medical-dialogue CSV in GB18030: department,title,ask,answer (user = ask, else title)."""
    for where, obj in readers.csv_dicts(path, encoding="gb18030"):
        if isinstance(obj, Skip):
            yield obj
            continue
        ask, title, answer = (clean(obj.get(k) or "") for k in ("ask", "title", "answer"))
        question = ask if len(ask) >= len(title) else title
        if not question:
            yield Skip("empty question", where)
        elif not answer:
            yield Skip("empty answer", where)
        else:
            yield Record(where, turns(question, answer), "zh", {"department": obj.get("department")})


def medsafety_csv(path: Path) -> Iterator[Record | Skip]:
    """MedSafetyBench demonstrations: ,harmful_medical_request,safe_response (one AMA-ethics category per file).
    The requests are harmful by design: rows are trained on as refusals and never logged (ids are file:line)."""
    category = path.stem.rsplit("_", 1)[-1]
    for where, obj in readers.csv_dicts(path):
        if isinstance(obj, Skip):
            yield obj
            continue
        request, response = clean(obj.get("harmful_medical_request") or ""), clean(obj.get("safe_response") or "")
        if not request:
            yield Skip("empty request", where)
        elif not response:
            yield Skip("empty safe response", where)
        else:
            yield Record(f"{path.parent.name}/{where}", turns(request, response), "en", {"category": category})
