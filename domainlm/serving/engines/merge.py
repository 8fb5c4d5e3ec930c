"""Merged weights for accelerators whose vLLM has no LoRA support: base + adapter → one plain HF folder, cached.

The cache key is the adapter's artifact_id plus the base folder's weights hash, so a new version or a new base gets
a new folder and an existing one is reused (merging a 7B model takes minutes).
"""

from __future__ import annotations

from pathlib import Path

from domainlm import log, paths
from domainlm.atomic import atomic_dir
from domainlm.hashing import sha256_bytes
from domainlm.serving.engines.base import Adapter

logger = log.get("serving.merge")
DONE = "domainlm_merged.json"


def merged_weights(base_path: str | Path, adapter: Adapter, cache: Path | None = None) -> Path:
    import json

    from domainlm.artifact import verify_artifact
    from domainlm.models.resolve import folder_weights_sha256

    base_path = Path(base_path)
    key = sha256_bytes(f"{adapter.artifact_id}:{folder_weights_sha256(base_path)}")[:24]
    final = (cache or paths.home() / "merged") / f"{adapter.vertical}-{adapter.version}-{key}"
    if (final / DONE).is_file():
        return final
    verify_artifact(adapter.path)  # hashes are checked before any use
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    logger.info("merging adapter into base", adapter=adapter.name, dest=str(final))
    model = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.bfloat16)
    model = PeftModel.from_pretrained(model, str(adapter.path)).merge_and_unload()
    tokenizer = AutoTokenizer.from_pretrained(base_path)
    with atomic_dir(final) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / DONE).write_text(json.dumps({"adapter": adapter.name, "artifact_id": adapter.artifact_id,
                                            "base": str(base_path)}, indent=2) + "\n")
    return final
