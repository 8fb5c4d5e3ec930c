"""Export an adapter: verified copy of the PEFT folder, or (--merge) base + LoRA merged into a plain HF model.

The merged folder is an ordinary transformers checkpoint (weights, config, tokenizer with the chat template the
adapter was trained with) that transformers and vLLM load without peft; `domainlm_export.json` records which
artifact and base it came from.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from domainlm import log
from domainlm.artifact import artifact_id, verify_artifact
from domainlm.errors import IntegrityError
from domainlm.atomic import atomic_dir

logger = log.get("training")


def _base_for(manifest: dict):
    from domainlm.models import resolve_base

    config = manifest.get("config", {})
    base = resolve_base(config.get("base_model") or manifest["base"].get("ref") or None)
    if base.weights_sha256 != manifest["base"]["weights_sha256"]:
        raise IntegrityError(f"base model {base.path} does not match the adapter's base (weights sha256 "
                             f"{base.weights_sha256[:12]} ≠ {manifest['base']['weights_sha256'][:12]})")
    return base


def export_adapter(artifact: Path, out: Path, *, merge: bool, dtype: str = "bfloat16") -> Path:
    manifest = verify_artifact(artifact)
    if not merge:
        with atomic_dir(out) as tmp:
            shutil.copytree(artifact, tmp, dirs_exist_ok=True)
        return out
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = _base_for(manifest)
    model = AutoModelForCausalLM.from_pretrained(base.path, dtype=getattr(torch, dtype))
    model = PeftModel.from_pretrained(model, str(artifact)).merge_and_unload()
    tokenizer = AutoTokenizer.from_pretrained(base.path)
    template = manifest["base"].get("chat_template")
    if template:
        tokenizer.chat_template = template
    with atomic_dir(out) as tmp:
        model.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
        (tmp / "domainlm_export.json").write_text(json.dumps({
            "merged_from": {"artifact_id": artifact_id(manifest), "name": manifest.get("name"),
                            "vertical": manifest.get("vertical"), "version": manifest.get("version"),
                            "path": str(artifact)},
            "base": {k: v for k, v in manifest["base"].items() if k != "chat_template"},
            "dtype": dtype, "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }, indent=2) + "\n")
    logger.info("merged model exported", path=str(out), artifact=str(artifact))
    return out
