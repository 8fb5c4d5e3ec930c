"""`domainlm export`: a verified copy, and base + LoRA merged into a plain HF model that transformers loads with
the same outputs as base + adapter through peft (and that vLLM serves: slow test below)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from domainlm.artifacts import verify_artifact

PROMPT = [{"role": "user", "content": "What is hypertension?"}]


def cli(*args):
    result = subprocess.run([sys.executable, "-m", "domainlm.cli", *args], capture_output=True, text=True,
                            env={**os.environ, "DOMAINLM_PROGRESS": "off"})
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_merged_export_matches_base_plus_adapter(trained_adapters, base_model, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    adapter = trained_adapters["medical"]
    copy = tmp_path / "copy"
    cli("export", str(adapter), "--out", str(copy))
    assert verify_artifact(copy)["files"] == verify_artifact(adapter)["files"]
    merged = tmp_path / "merged"
    cli("export", str(adapter), "--out", str(merged), "--merge", "--dtype", "float32")
    record = json.loads((merged / "domainlm_export.json").read_text())
    assert record["merged_from"]["vertical"] == "medical" and (merged / "model.safetensors").is_file()
    tokenizer = AutoTokenizer.from_pretrained(merged)
    assert tokenizer.chat_template == json.loads((adapter / "manifest.json").read_text())["base"]["chat_template"]
    ids = torch.tensor([tokenizer.apply_chat_template(PROMPT, add_generation_prompt=True)["input_ids"]])
    with torch.no_grad():
        plain = AutoModelForCausalLM.from_pretrained(merged, dtype=torch.float32)(ids).logits
        base = AutoModelForCausalLM.from_pretrained(base_model.path, dtype=torch.float32)
        reference = PeftModel.from_pretrained(base, str(adapter))(ids).logits
    assert "lora" not in " ".join(n for n, _ in AutoModelForCausalLM.from_pretrained(merged).named_parameters())
    assert (plain - reference).abs().max() < 1e-3


VLLM_SCRIPT = """
import json, sys
from vllm import LLM, SamplingParams
if __name__ == "__main__":
    llm = LLM(model=sys.argv[1], enforce_eager=True, max_model_len=256, gpu_memory_utilization=0.1)
    out = llm.chat([{"role": "user", "content": "What is hypertension?"}], SamplingParams(max_tokens=8, temperature=0))
    print("RESULT " + json.dumps({"text": out[0].outputs[0].text, "tokens": list(out[0].outputs[0].token_ids)}))
"""


@pytest.mark.slow
def test_vllm_loads_the_merged_export(trained_adapters, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    merged = tmp_path / "merged"
    cli("export", str(trained_adapters["medical"]), "--out", str(merged), "--merge")
    script = tmp_path / "run_vllm.py"
    script.write_text(VLLM_SCRIPT)
    result = subprocess.run([sys.executable, str(script), str(merged)], capture_output=True, text=True, timeout=600,
                            env={**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1",
                                 "VLLM_ENABLE_V1_MULTIPROCESSING": "0"})   # engine in-process: no spawns
    assert result.returncode == 0, result.stderr[-3000:]
    served = json.loads(next(line[7:] for line in result.stdout.splitlines() if line.startswith("RESULT ")))
    tokenizer = AutoTokenizer.from_pretrained(merged)
    ids = torch.tensor([tokenizer.apply_chat_template(PROMPT, add_generation_prompt=True)["input_ids"]])
    model = AutoModelForCausalLM.from_pretrained(merged, dtype=torch.bfloat16)
    greedy = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=8, do_sample=False)
    assert served["tokens"][:4] == greedy[0, ids.shape[1]:].tolist()[:4]
