"""The openai backend against real endpoints: the session's vLLM OpenAI server (token-id prompts) and the domainlm
gateway in front of it (text prompts, split by offsets). Multiple choice through /v1/completions echo + logprobs,
generation through /v1/chat/completions, a judge task graded by the served model, all via the official client."""

from __future__ import annotations

import json

import pytest

import os

from domainlm.evals import run_eval
from tests.evals.conftest import write_config, write_nll_task
from tests.fixtures.serving import REPLICA_KEY_ENV

pytestmark = pytest.mark.slow


def _served(url: str, key: str | None = None) -> dict:
    from openai import OpenAI

    client = OpenAI(base_url=url, api_key=key or "EMPTY")
    return {m.id: getattr(m, "parent", None) for m in client.models.list()}


def _tasks(tmp_path):
    nll = write_nll_task(tmp_path)
    (tmp_path / "judge.jsonl").write_text(json.dumps({"q": "What organ produces insulin?",
                                                      "a": "The pancreas (its beta cells)."}) + "\n")
    (tmp_path / "judge.yaml").write_text("name: insulin_judge\nkind: judge\ndata: judge.jsonl\ntemplate: '{q}'\n"
                                         "max_new_tokens: 16\nfields: {reference: a}\n")
    return [{"name": "medmcqa", "limit": 6}, {"file": str(nll), "limit": 6}, {"file": str(tmp_path / "judge.yaml")}]


def test_openai_backend_on_vllm_server_and_gateway(isolated_home, tmp_path, vllm_server, gateway, serving_adapters,
                                                   trained_adapters, monkeypatch):
    if serving_adapters["medical"] != trained_adapters["medical"]:
        pytest.skip("the serving stack serves random adapters here; this test compares with the trained one")
    adapter = str(trained_adapters["medical"])
    served = _served(f"{vllm_server}/v1", os.environ[REPLICA_KEY_ENV])   # the replica answers only with its key
    lora_name = next(name for name, parent in served.items() if parent and "medical" in name)
    domain = _tasks(tmp_path)
    judge = {"endpoint": f"{vllm_server}/v1", "model": next(n for n, p in served.items() if not p), "max_tokens": 8,
             "api_key_env": REPLICA_KEY_ENV}
    config = write_config(tmp_path / "direct", domain=domain, prompt={"style": "chat"}, judge=judge,
                          openai={"models": {"fixture-medical": lora_name}, "mc_prompt": "tokens", "batch": 4,
                                  "api_key_env": REPLICA_KEY_ENV})
    direct = run_eval(config, adapters=[adapter], backend="openai", endpoint=f"{vllm_server}/v1",
                      output_dir=tmp_path / "direct-out")
    assert direct["settings"]["backend"] == "openai" and direct["settings"]["endpoint"].startswith("http://")
    labels = ["base", "fixture-medical"]

    # through the gateway: text prompts, the vertical's public name, an API key
    url, key = gateway
    monkeypatch.setenv("EVAL_TEST_GATEWAY_KEY", key)
    assert "medical" in _served(f"{url}/v1", key)
    config = write_config(tmp_path / "gw", domain=domain[:2], prompt={"style": "chat"},
                          openai={"models": {"fixture-medical": "medical"}, "mc_prompt": "text",
                                  "api_key_env": "EVAL_TEST_GATEWAY_KEY", "batch": 4})
    via_gateway = run_eval(config, adapters=[adapter], backend="openai", endpoint=f"{url}/v1",
                           output_dir=tmp_path / "gw-out")

    # the hf backend on the same items, as the reference
    config = write_config(tmp_path / "hf", domain=domain[:2], prompt={"style": "chat"})
    hf = run_eval(config, adapters=[adapter], output_dir=tmp_path / "hf-out")

    for label in labels:
        for name in ("medmcqa", "fixture_qa_nll"):
            ours = [i["results"][label] for i in hf["tasks"][name]["items"]]
            for other in (direct, via_gateway):
                theirs = [i["results"][label] for i in other["tasks"][name]["items"]]
                if name == "medmcqa":   # bf16 engine vs bf16 hf: rounding-level differences only
                    diffs = [abs(a - b) for x, y in zip(ours, theirs, strict=True)
                             for a, b in zip(x["logprobs"], y["logprobs"], strict=True)]
                    assert sum(diffs) / len(diffs) < 0.3
                else:
                    assert [x["tokens"] for x in ours] == [y["tokens"] for y in theirs]
                    assert max(abs(x["nll"] - y["nll"]) for x, y in zip(ours, theirs, strict=True)) < 0.1
    # the adapter is applied behind the endpoint: it lowers the answer NLL it was trained on
    assert direct["summary"]["nll_reduction"] > 0.15 and via_gateway["summary"]["nll_reduction"] > 0.15

    judged = direct["tasks"]["insulin_judge"]["items"][0]["results"]
    for label in labels:
        assert isinstance(judged[label]["output"], str) and judged[label]["output"]
        assert 0.0 <= judged[label]["judge_score"] <= 1.0
        assert judged[label]["judge_parse_error"] == (judged[label]["judge_grade"] is None)
