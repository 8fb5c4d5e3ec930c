"""The in-process hf engine behind the gateway: concurrent requests are batched (mixed adapters in one batch) and
give the same greedy text as each request alone and as plain transformers+peft generation."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from openai import OpenAI

from domainlm.verticals.policy import apply_policy

pytestmark = pytest.mark.slow

PROMPTS = [("medical", "What is anemia?"), ("petrochem", "What is naphtha?"), ("smollm2-135m", "Name a gas."),
           ("medical", "What causes a cough?")]


@pytest.fixture(scope="module")
def client(hf_stack):
    return OpenAI(base_url=hf_stack.url + "/v1", api_key=hf_stack.admin_key, max_retries=0, timeout=120)


def raw_text(client, model, question, stream=False):
    """The chat answer as the gateway returns it (policy text included: it is the same for equal answers)."""
    kwargs = {"model": model, "messages": [{"role": "user", "content": question}], "max_tokens": 8,
              "temperature": 0}
    if stream:
        return "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(stream=True, **kwargs)
                       if c.choices)
    return client.chat.completions.create(**kwargs).choices[0].message.content


def test_concurrent_mixed_adapter_requests_are_batched_and_match_alone(client, hf_stack):
    engine = hf_stack.service.engines["smollm2-135m"]
    alone = [raw_text(client, m, q) for m, q in PROMPTS]
    before = dict(engine.stats)
    with ThreadPoolExecutor(len(PROMPTS)) as pool:
        together = list(pool.map(lambda mq: raw_text(client, *mq), PROMPTS))
    assert engine.stats["max_rows"] >= 2 and engine.stats["batches"] - before["batches"] < len(PROMPTS)
    assert together == alone
    assert raw_text(client, "petrochem", "What is naphtha?", stream=True) == alone[1]
    on_base = [raw_text(client, "smollm2-135m", q) for m, q in PROMPTS]
    assert any(a != b for a, b, (m, _) in zip(alone, on_base, PROMPTS, strict=True) if m != "smollm2-135m"), \
        "the adapters should change at least one answer"


def test_hf_engine_matches_transformers_peft(client, hf_stack, base_model):
    import torch

    from domainlm.models.generate import chat_input_ids, load_causal_lm

    entry = hf_stack.service.registry.get("petrochem")
    model, tokenizer = load_causal_lm(base_model.path, entry.path, dtype="float32")
    messages, _ = apply_policy("petrochem", [{"role": "user", "content": "What is naphtha?"}], "en")
    ids = chat_input_ids(tokenizer, messages)
    with torch.inference_mode():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=8, do_sample=False,
                             pad_token_id=tokenizer.eos_token_id)
    reference = tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
    served = raw_text(client, "petrochem", "What is naphtha?")
    assert served.startswith(reference) and reference.strip()  # petrochem's policy may append a note after it


def test_stop_sequences_n_and_usage(client):
    answer = client.completions.create(model="smollm2-135m", prompt="1, 2, 3, 4,", max_tokens=12, temperature=0,
                                       stop=[" 7"], n=2)
    texts = [c.text for c in answer.choices]
    assert texts[0] == texts[1] and " 7" not in texts[0] and texts[0].startswith(" 5")
    assert {c.finish_reason for c in answer.choices} == {"stop"}
    assert answer.usage.prompt_tokens > 0 and answer.usage.completion_tokens >= 2
