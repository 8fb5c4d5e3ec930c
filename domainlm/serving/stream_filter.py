"""A vertical's streamed answer on its way to the client (relay.py): the output checks with the newest text held
back (verticals/guard.py), the guard's action when one fires, the policy's notes before each chat choice's
finish, and the delivered text the audit row records.

A check that fires ends its choice with one chunk (the blocked or held notice, finish_reason "content_filter",
the policy summary with any review id); the engine's later tokens for that choice never leave the gateway, but the
stream is read to its end, so usage is counted and a held answer reaches the reviewer whole.
"""

from __future__ import annotations

import json
import time

from domainlm.serving.call import Call


class StreamFilter:
    def __init__(self, service, call: Call, kind: str, echoed):
        self.service, self.call, self.kind = service, call, kind
        self.echoed = echoed                  # choice index → echoed prompt text (completions with echo)
        self.texts: dict[int, str] = {}       # choice index → text delivered
        self.screens: dict[int, object] = {}  # choice index → StreamScreen, or None once nothing is screened
        self.echo_left: dict[int, int] = {}   # choice index → characters of echoed prompt still to pass
        self.closed: set[int] = set()         # choices a check ended
        self.holds: list[tuple[str, str, object]] = []  # (review id, rule, screen) written at close

    # --- the text of a chunk's choice, in either endpoint's shape ------------------------------------------------
    def _get(self, choice: dict) -> str:
        if self.kind == "chat":
            return (choice.get("delta") or {}).get("content") or ""
        return choice.get("text") or ""

    def _set(self, choice: dict, text: str) -> None:
        if self.kind == "chat":
            delta = choice.get("delta")
            if isinstance(delta, dict) and (text or "content" in delta):
                delta["content"] = text
            elif text:
                choice["delta"] = {"content": text}
        else:
            choice["text"] = text

    def _screen(self, index: int):
        if index not in self.screens:
            self.screens[index] = self.service.guard.stream_screen(self.call)
            self.echo_left[index] = len(self.echoed(index))
        return self.screens[index]

    def chunks(self, payload: bytes) -> list[bytes]:
        chunk = json.loads(payload)
        kept, notes, filtered = [], [], False
        for choice in chunk.get("choices", []):
            index = choice.get("index", 0)
            screen = self._screen(index)
            delta = self._get(choice)
            if index in self.closed:
                screen.feed(delta)          # kept for the reviewer, never sent
                continue
            finish = choice.get("finish_reason")
            send = delta
            if screen is not None:
                echo = delta[:self.echo_left[index]]
                self.echo_left[index] -= len(echo)
                started = time.perf_counter()
                send = echo + screen.feed(delta[len(echo):])
                if finish is not None and screen.rule is None:
                    send += screen.finish()
                self.call.policy.guard_seconds += time.perf_counter() - started
                if screen.rule is not None:
                    text, replaced = self.service.guard.act(self.call, screen.rule, screen.text, index,
                                                            defer_hold=True)
                    if replaced:
                        self._end(choice, index, screen, text)
                        kept.append(choice)
                        filtered = True
                        continue
                    send += screen.text[screen.sent:]   # allow / notice: what was held back goes out now
                    self.screens[index] = None          # ... and the rest of this answer unscreened
                self._set(choice, send)
            self.texts[index] = self.texts.get(index, "") + send
            if finish is not None and self.kind == "chat":
                suffix = self.call.policy.suffix(self.texts[index])
                if suffix:
                    self.texts[index] += suffix
                    choice["finish_reason"] = None
                    notes.append({**chunk, "choices": [{"index": index, "delta": {"content": suffix},
                                                        "logprobs": None, "finish_reason": finish}],
                                  "domainlm": self._info()})
                    self.service.metrics.policy.labels(vertical=self.call.vertical, action="note").inc()
            kept.append(choice)
        if chunk.get("choices") and not kept:
            return []               # only closed choices: nothing for the client
        chunk["choices"] = kept
        if filtered:
            chunk["domainlm"] = self._info()
        return [json.dumps(chunk, ensure_ascii=False).encode()] + \
            [json.dumps(note, ensure_ascii=False).encode() for note in notes]

    def _end(self, choice: dict, index: int, screen, notice: str) -> None:
        """Close a choice a check fired on with the guard's notice (after a paragraph break when text went out)."""
        self.closed.add(index)
        text = ("\n\n" if screen.sent else "") + notice
        self._set(choice, text)
        choice["finish_reason"], choice["logprobs"] = "content_filter", None
        self.texts[index] = self.texts.get(index, "") + text
        flags = self.call.policy.output_flags
        if flags and flags[-1]["action"] == "hold":
            self.holds.append((self.call.policy.review_ids[-1], screen.rule, screen))

    def _info(self) -> dict:
        return {"adapter": self.call.route.public, "policy": self.call.policy.summary()}

    def close(self) -> None:
        """At the end of the stream (normal or not): held answers to the review queue, delivered text to the call."""
        for review_id, rule, screen in self.holds:
            self.service.guard.hold_later(self.call, review_id, rule, screen.text)
        if self.texts:
            self.call.answer = "\n".join(self.texts[i] for i in sorted(self.texts))
