"""Offline vLLM reference run (a script: vLLM spawns workers, so it needs the __main__ guard).

    python tests/serving/offline_vllm.py SPEC.json OUT.json

SPEC: {"model": base folder, "adapters": {name: folder}, "requests": [{"adapter": name|null, "messages": [...]}],
       "max_tokens": N, "dtype": D, "max_lora_rank": R}. OUT: the greedy answer text of each request, in order.
"""

from __future__ import annotations

import json
import sys


def main(spec_path: str, out_path: str) -> None:
    from vllm import LLM, SamplingParams
    from vllm.lora.request import LoRARequest

    with open(spec_path) as handle:
        spec = json.load(handle)
    names = sorted(spec["adapters"])
    llm = LLM(model=spec["model"], enable_lora=True, max_loras=max(1, len(names)),
              max_lora_rank=spec.get("max_lora_rank", 16), enforce_eager=True, max_model_len=2048,
              dtype=spec["dtype"], seed=0)
    loras = {n: LoRARequest(n, i + 1, spec["adapters"][n]) for i, n in enumerate(names)}
    params = SamplingParams(temperature=0.0, max_tokens=spec["max_tokens"])
    outputs = llm.chat([r["messages"] for r in spec["requests"]], params,
                       lora_request=[loras.get(r["adapter"]) for r in spec["requests"]], use_tqdm=False)
    with open(out_path, "w") as handle:
        json.dump([o.outputs[0].text for o in outputs], handle, ensure_ascii=False)
    from vllm.platforms import current_platform

    print(f"punica wrapper: {current_platform.get_punica_wrapper()}", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
