"""A minimal OpenAI-compatible teacher for the synth test: FastAPI + uvicorn serving a real transformers model.

Not a mock: it runs the embedded SmolLM2-135M-Instruct with its chat template and sampling, exactly what
`domainlm data synth` would get from any small endpoint. Run: python tests/verticals/teacher_app.py MODEL_DIR PORT
"""

from __future__ import annotations

import sys
import time

import torch
import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel
from transformers import AutoModelForCausalLM, AutoTokenizer


class ChatRequest(BaseModel):
    model: str
    messages: list[dict]
    max_tokens: int = 64
    temperature: float = 0.7
    seed: int | None = None


def build_app(model_dir: str) -> FastAPI:
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16).eval()
    name = "teacher"
    app = FastAPI()

    @app.get("/v1/models")
    def models():
        return {"object": "list", "data": [{"id": name, "object": "model", "created": 0, "owned_by": "test"}]}

    @app.post("/v1/chat/completions")
    def chat(req: ChatRequest):
        ids = tokenizer.apply_chat_template(req.messages, add_generation_prompt=True, return_tensors="pt",
                                            return_dict=True)["input_ids"]
        if req.seed is not None:
            torch.manual_seed(req.seed)
        sample = req.temperature > 0
        with torch.inference_mode():
            out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=req.max_tokens,
                                 do_sample=sample, temperature=req.temperature if sample else None, top_p=0.95,
                                 pad_token_id=tokenizer.eos_token_id)
        new = out[0, ids.shape[1]:]
        text = tokenizer.decode(new, skip_special_tokens=True)
        return {"id": f"chatcmpl-{time.time_ns()}", "object": "chat.completion", "created": int(time.time()),
                "model": name,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                             "finish_reason": "length" if len(new) >= req.max_tokens else "stop"}],
                "usage": {"prompt_tokens": ids.shape[1], "completion_tokens": len(new),
                          "total_tokens": ids.shape[1] + len(new)}}

    return app


if __name__ == "__main__":
    torch.set_num_threads(1)  # a 135M model decodes faster on one thread than on two contended ones
    uvicorn.run(build_app(sys.argv[1]), host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
