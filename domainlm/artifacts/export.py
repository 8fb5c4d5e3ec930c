"""Export an adapter: verified copy of the PEFT folder, or (--merge) base + LoRA merged into a plain HF model.

The merged folder is an ordinary transformers checkpoint (weights, config, tokenizer with the chat template the
adapter was trained with) that transformers and vLLM load without peft; `domainlm_export.json` records which
artifact and base it came from.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from domainlm import log
from domainlm.artifacts.contract import verify_artifact
from domainlm.artifacts.merge import merge_into
from domainlm.errors import IntegrityError
from domainlm.atomic import atomic_dir

logger = log.get("artifacts.export")


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
    base = _base_for(manifest)
    merge_into(out, artifact, base.path, dtype=dtype, record_name="domainlm_export.json",
               record={"exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    logger.info("merged model exported", path=str(out), artifact=str(artifact))
    return out
