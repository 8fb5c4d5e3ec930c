"""Row layouts → chat messages: OpenAI `messages`, alpaca (instruction/input/output), sharegpt (conversations).

Every check raises BadRow with a short reason; the caller adds file:line and decides to stop or skip-and-count.
"""

from __future__ import annotations

ROLES = ("system", "user", "assistant")
SHAREGPT_ROLES = {"system": "system", "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant"}


class BadRow(ValueError):
    """A row that cannot become a training conversation. `reason` is a short key used for skip counts."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def detect(row: dict) -> str:
    if "messages" in row:
        return "messages"
    if "conversations" in row:
        return "sharegpt"
    if "instruction" in row and "output" in row:
        return "alpaca"
    raise BadRow("unknown_format", f"no 'messages', 'conversations' or 'instruction'+'output' key (keys: "
                                   f"{', '.join(sorted(row)[:8])})")


def _text(value, where: str) -> str:
    if not isinstance(value, str):
        raise BadRow("bad_content", f"{where} must be a string, got {type(value).__name__}")
    return value


def from_messages(row: dict) -> list[dict]:
    messages = row.get("messages")
    if not isinstance(messages, list):
        raise BadRow("bad_messages", "'messages' must be a list of {role, content}")
    out = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or "role" not in message or "content" not in message:
            raise BadRow("bad_messages", f"messages[{index}] must be an object with 'role' and 'content'")
        role = message["role"]
        if role not in ROLES:
            raise BadRow("unknown_role", f"messages[{index}].role '{role}' (allowed: {', '.join(ROLES)})")
        out.append({"role": role, "content": _text(message["content"], f"messages[{index}].content")})
    return out


def from_alpaca(row: dict) -> list[dict]:
    instruction = _text(row.get("instruction", ""), "instruction").strip()
    extra = _text(row.get("input", "") or "", "input").strip()
    prompt = f"{instruction}\n\n{extra}" if instruction and extra else (instruction or extra)
    messages = [{"role": "system", "content": _text(row["system"], "system")}] if row.get("system") else []
    return messages + [{"role": "user", "content": prompt},
                       {"role": "assistant", "content": _text(row.get("output"), "output")}]


def from_sharegpt(row: dict) -> list[dict]:
    turns = row.get("conversations")
    if not isinstance(turns, list):
        raise BadRow("bad_messages", "'conversations' must be a list of {from, value}")
    messages = [{"role": "system", "content": _text(row["system"], "system")}] if row.get("system") else []
    for index, turn in enumerate(turns):
        if not isinstance(turn, dict) or "from" not in turn or "value" not in turn:
            raise BadRow("bad_messages", f"conversations[{index}] must be an object with 'from' and 'value'")
        role = SHAREGPT_ROLES.get(turn["from"])
        if role is None:
            raise BadRow("unknown_role", f"conversations[{index}].from '{turn['from']}' "
                                         f"(allowed: {', '.join(SHAREGPT_ROLES)})")
        messages.append({"role": role, "content": _text(turn["value"], f"conversations[{index}].value")})
    return messages


READERS = {"messages": from_messages, "alpaca": from_alpaca, "sharegpt": from_sharegpt}


def validate(messages: list[dict]) -> list[dict]:
    """A trainable conversation: optional leading system, then user/assistant turns, ending on a non-empty answer."""
    if not messages:
        raise BadRow("empty", "no messages")
    for index, message in enumerate(messages):
        if message["role"] == "system" and index != 0:
            raise BadRow("bad_order", f"system message at position {index} (only the first message may be system)")
    turns = [m for m in messages if m["role"] != "system"]
    if not any(m["role"] == "user" for m in turns):
        raise BadRow("no_user_turn", "no user message")
    if not turns or turns[-1]["role"] != "assistant":
        raise BadRow("no_assistant_turn", "the conversation must end with an assistant message")
    for index, message in enumerate(messages):
        if message["role"] == "assistant" and not message["content"].strip():
            raise BadRow("empty_assistant", f"messages[{index}] is an empty assistant turn")
    return messages


def to_messages(row, fmt: str = "auto", system_prompt: str | None = None) -> list[dict]:
    """Any supported row → validated messages (a default system prompt is added where the row has none)."""
    if not isinstance(row, dict):
        raise BadRow("not_an_object", f"each line must be a JSON object, got {type(row).__name__}")
    fmt = detect(row) if fmt == "auto" else fmt
    messages = READERS[fmt](row)
    if system_prompt and (not messages or messages[0]["role"] != "system"):
        messages = [{"role": "system", "content": system_prompt}] + messages
    return validate(messages)
