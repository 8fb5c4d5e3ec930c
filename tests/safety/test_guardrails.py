"""Guardrails in the gateway, graded by risk class: output checks on whole and streamed answers of the real model
(the in-process hf engine behind the real gateway, through the official openai client), refuse and hold actions,
the review queue, input actions (notice, refuse as an error), the guard's metrics, and the stream screen's promise
that no character of a match is ever sent.

The shipped output checks look for harmful answers, which a random-adapter 135M model never writes on request; to
see the gateway act, a test swaps in an output check that matches a word the model does say (its policy is data),
then restores the vertical's own.
"""

from __future__ import annotations

import re
from contextlib import contextmanager

import httpx
import openai
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openai import OpenAI

from domainlm.verticals import get_vertical
from domainlm.verticals.guard import StreamScreen, output_rule
from domainlm.verticals.spec import Policy

QUESTION = "What is fluid catalytic cracking?"


@contextmanager
def policy_of(vertical: str, **changes):
    """The vertical's policy with `changes` (validated like its YAML) while the block runs."""
    target = get_vertical(vertical)
    original = target.spec
    data = original.policy.model_dump()
    for key, value in changes.items():
        data[key] = {**data[key], **value} if isinstance(value, dict) and isinstance(data.get(key), dict) else value
    target.spec = original.model_copy(update={"policy": Policy.model_validate(data)})
    try:
        yield target.spec.policy
    finally:
        target.spec = original


def leak_check(word: str) -> list[dict]:
    return [{"name": "test_leak", "patterns": {"any": [rf"\b{re.escape(word)}\b"]}}]


def ask(client, model, stream=False, max_tokens=16, question=QUESTION):
    return client.chat.completions.create(model=model, messages=[{"role": "user", "content": question}],
                                          max_tokens=max_tokens, temperature=0, stream=stream)


@pytest.fixture(scope="module")
def client(hf_stack):
    return OpenAI(base_url=hf_stack.url + "/v1", api_key=hf_stack.admin_key, max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def plain(client):
    """The model's own greedy answer (petrochem's checks do not fire on it) and a word from its middle."""
    answer = ask(client, "petrochem").choices[0].message.content
    words = [m for m in re.finditer(r"[A-Za-z]{4,}", answer) if m.start() >= 12]
    assert words, f"the model's answer has no word to match: {answer!r}"
    return answer, words[0].group()


def metric(hf_stack, name: str, **labels) -> float:
    text = httpx.get(hf_stack.url + "/metrics", headers={"Authorization": f"Bearer {hf_stack.admin_key}"}).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


pytestmark = pytest.mark.slow


def test_a_refused_answer_is_replaced_whole_and_while_it_streams(client, hf_stack, plain):
    answer, word = plain
    before = metric(hf_stack, "domainlm_guard_flagged_outputs_total", vertical="petrochem", rule="test_leak")
    with policy_of("petrochem", output_checks=leak_check(word),
                   guardrails={"on_output": "refuse"}) as policy:
        blocked = policy.guardrails.blocked.en
        whole = ask(client, "petrochem")
        assert whole.choices[0].finish_reason == "content_filter"
        assert whole.choices[0].message.content == blocked and word not in whole.choices[0].message.content
        guard = whole.model_extra["domainlm"]["policy"]["guard"]
        assert guard["output"] == [{"rule": "test_leak", "action": "refuse", "choice": 0}]

        chunks = [c for c in ask(client, "petrochem", stream=True) if c.choices]
    final = chunks[-1].choices[0]
    assert final.finish_reason == "content_filter" and final.delta.content.endswith(blocked)
    released = "".join(c.choices[0].delta.content or "" for c in chunks[:-1])
    assert word not in released and answer.startswith(released)   # what went out is the answer's clean head
    assert chunks[-1].model_extra["domainlm"]["policy"]["guard"]["output"][0]["rule"] == "test_leak"
    after = metric(hf_stack, "domainlm_guard_flagged_outputs_total", vertical="petrochem", rule="test_leak")
    assert after - before == 2
    assert metric(hf_stack, "domainlm_answers_total", vertical="petrochem", verdict="blocked") >= 2
    assert metric(hf_stack, "domainlm_guard_check_seconds_count", vertical="petrochem") >= 2


def test_a_held_answer_waits_for_a_reviewer_and_reaches_the_client_once_released(client, hf_stack):
    # medical is high risk: on_output hold is its class's default
    original = ask(client, "medical", question="What is anemia?").choices[0].message.content
    word = next(m.group() for m in re.finditer(r"[A-Za-z]{4,}", original) if m.start() >= 8)
    admin = {"Authorization": f"Bearer {hf_stack.admin_key}"}
    with policy_of("medical", output_checks=leak_check(word)) as policy:
        assert policy.actions() == ("refuse", "hold")
        held = ask(client, "medical", question="What is anemia?")
        assert held.choices[0].finish_reason == "content_filter"
        review_id = held.model_extra["domainlm"]["policy"]["guard"]["review_ids"][0]
        assert held.choices[0].message.content == policy.guardrails.held.en.format(id=review_id)
        streamed = [c for c in ask(client, "medical", stream=True, question="What is anemia?") if c.choices]
        stream_review = streamed[-1].model_extra["domainlm"]["policy"]["guard"]["review_ids"][0]

    status = client.get(f"/reviews/{review_id}", cast_to=object)
    assert status["status"] == "pending" and "answer" not in status
    other = hf_stack.key(["medical"])       # another key of the same vertical cannot read it
    with pytest.raises(openai.NotFoundError):
        OpenAI(base_url=hf_stack.url + "/v1", api_key=other, max_retries=0).get(f"/reviews/{review_id}",
                                                                               cast_to=object)
    pending = httpx.get(hf_stack.url + "/admin/reviews", headers=admin).json()["reviews"]
    by_id = {r["id"]: r for r in pending}
    assert {review_id, stream_review} <= set(by_id) and by_id[review_id]["rule"] == "test_leak"
    # the streamed answer was cut at the check, yet the reviewer gets all of it: the engine's stream was read out
    model_text = original.split("\n\n")[0]   # the answer before the disclaimer the gateway appends
    assert by_id[stream_review]["answer"].startswith(model_text[:40]) and word in by_id[stream_review]["answer"]
    assert httpx.post(hf_stack.url + f"/admin/reviews/{review_id}/release", headers=admin,
                      json={"note": "clinician checked"}).status_code == 200
    again = httpx.post(hf_stack.url + f"/admin/reviews/{review_id}/reject", headers=admin)
    assert again.status_code == 409 and "already released" in again.json()["error"]["message"]
    released = client.get(f"/reviews/{review_id}", cast_to=object)
    assert released["status"] == "released" and word in released["answer"]
    assert httpx.post(hf_stack.url + f"/admin/reviews/{stream_review}/reject", headers=admin).status_code == 200
    assert "answer" not in client.get(f"/reviews/{stream_review}", cast_to=object)
    audit = httpx.get(hf_stack.url + "/admin/audit", headers=admin, params={"limit": 50}).json()["requests"]
    assert {"admin/reviews/release", "admin/reviews/reject"} <= {row["endpoint"] for row in audit}


def test_input_actions_notice_and_refuse_as_error(client, hf_stack):
    harmful = "How can I bypass the interlock on the compressor without a permit?"
    # (the output checks are off here: this small model tends to repeat the question, which they would stop)
    with policy_of("petrochem", guardrails={"on_input": "notice"}, output_checks=[]) as policy:
        noticed = ask(client, "petrochem", question=harmful)
        assert noticed.choices[0].message.content.endswith(policy.guardrails.notice.en)
        guard = noticed.model_extra["domainlm"]["policy"]["guard"]
        assert guard["input"] == {"rule": "defeat_safety_systems", "action": "notice"}
        assert noticed.usage.completion_tokens > 0          # the model answered
    with policy_of("petrochem", guardrails={"refuse_as": "error"}):
        with pytest.raises(openai.BadRequestError) as err:
            ask(client, "petrochem", question=harmful)
    assert err.value.code == "content_policy_violation" and "MOC approval" in err.value.message
    refused = ask(client, "petrochem", question=harmful)       # the shipped default: the refusal text, no model call
    assert refused.usage.completion_tokens == 0 and refused.choices[0].message.content.startswith("I can't help")
    assert metric(hf_stack, "domainlm_guard_flagged_inputs_total", vertical="petrochem", action="notice") >= 1
    assert metric(hf_stack, "domainlm_answers_total", vertical="petrochem", verdict="gateway_refusal") >= 1


def test_on_vllm_streams_are_screened_and_completions_without_their_echoed_prompt(gateway):
    url, key = gateway
    vllm = OpenAI(base_url=url + "/v1", api_key=key, max_retries=0, timeout=120)
    answer = ask(vllm, "petrochem", max_tokens=24).choices[0].message.content
    word = next(m.group() for m in re.finditer(r"[A-Za-z]{4,}", answer) if m.start() >= 12)
    with policy_of("petrochem", output_checks=leak_check(word)):
        chunks = [c for c in ask(vllm, "petrochem", stream=True, max_tokens=24) if c.choices]
        prompt = f"The word {word} appears in this prompt. Ocean currents"
        echoed = vllm.completions.create(model="petrochem", prompt=prompt, max_tokens=4, temperature=0, echo=True)
    assert chunks[-1].choices[0].finish_reason == "content_filter"
    assert word not in "".join(c.choices[0].delta.content or "" for c in chunks[:-1])
    # the caller's own prompt holds the word; only generated text is checked
    assert echoed.choices[0].text.startswith(prompt) and echoed.choices[0].finish_reason != "content_filter"


@settings(max_examples=200, deadline=None)
@given(head=st.text(alphabet="abc ,.\n", max_size=120), tail=st.text(alphabet="abc ,.\n", max_size=60),
       cuts=st.lists(st.integers(min_value=1, max_value=15), min_size=1, max_size=40))
def test_a_streamed_match_is_caught_before_any_of_it_is_sent(head, tail, cuts):
    policy = Policy.model_validate({"output_checks": [{"name": "x", "patterns": {"any": [r"bypass\s+the\s+trip"]}}]})
    text = head + " bypass  the trip" + tail
    screen, sent, position = StreamScreen(policy), "", 0
    while position < len(text):    # the engine's chunks: sizes from `cuts`, over and over
        cut = cuts[(position + len(sent)) % len(cuts)]
        sent += screen.feed(text[position:position + cut])
        position += cut
    sent += screen.finish()
    assert screen.rule == "x" and "bypass" not in sent and text.startswith(sent)
    clean = StreamScreen(policy)
    out = "".join(clean.feed(head[i:i + 7]) for i in range(0, len(head), 7)) + clean.finish()
    assert out == head and output_rule(policy, head) is None
