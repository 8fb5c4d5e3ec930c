"""The one merge: base weights + a verified LoRA artifact → a plain transformers folder that transformers and vLLM
load without peft. The tokenizer gets the chat template the adapter was trained with (recorded in its manifest),
so a merged model renders prompts exactly as the adapter expects. Export (`domainlm export --merge`) and merged
serving (vLLM plugins without LoRA) both call it; serving caches the result by `cached_merge`.
"""

from __future__ import annotations

import json
from pathlib import Path

from domainlm import log
from domainlm.artifacts.contract import artifact_id, verify_artifact
from domainlm.atomic import atomic_dir
from domainlm.hashing import sha256_bytes

logger = log.get("artifacts.merge")
CACHED = "domainlm_merged.json"


def merge_into(out: Path, artifact: Path, base_path: str | Path, *, dtype: str = "bfloat16",
               record_name: str = CACHED, record: dict | None = None) -> Path:
    """Write base + the artifact's LoRA, merged, to `out` (atomically) with `record_name` describing where it came
    from; the artifact is verified first."""
    manifest = verify_artifact(artifact)
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    logger.info("merging adapter into base", artifact=str(artifact), dest=str(out), dtype=dtype)
    model = AutoModelForCausalLM.from_pretrained(base_path, dtype=getattr(torch, dtype))
    model = PeftModel.from_pretrained(model, str(artifact)).merge_and_unload()
    tokenizer = AutoTokenizer.from_pretrained(base_path)
    template = manifest["base"].get("chat_template")
    if template:   # the template the adapter was trained with, not whatever the base folder holds now
        tokenizer.chat_template = template
    origin = {"merged_from": {"artifact_id": artifact_id(manifest), "name": manifest.get("name"),
                              "vertical": manifest.get("vertical"), "version": manifest.get("version"),
                              "path": str(artifact)},
              "base": {k: v for k, v in manifest["base"].items() if k != "chat_template"}, "dtype": dtype,
              **(record or {})}
    with atomic_dir(out) as tmp:
        model.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
        (tmp / record_name).write_text(json.dumps(origin, indent=2) + "\n")
    return out


def cached_merge(artifact: Path, artifact_key: str, base_path: str | Path, cache: Path, label: str,
                 dtype: str = "bfloat16") -> Path:
    """merge_into a folder of `cache` keyed by the artifact's id and the base folder's weights hash: a new version
    or a new base gets a new folder, an existing one is reused (merging a 7B model takes minutes)."""
    from domainlm.models.resolve import folder_weights_sha256

    key = sha256_bytes(f"{artifact_key}:{folder_weights_sha256(Path(base_path))}")[:24]
    final = cache / f"{label}-{key}"
    if (final / CACHED).is_file():
        return final
    return merge_into(final, artifact, base_path, dtype=dtype)
