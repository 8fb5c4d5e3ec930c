"""One resolver for every base model reference: embedded name, local HF directory, or hub id (offline only)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from domainlm import paths
from domainlm.errors import ModelError
from domainlm.hashing import sha256_bytes, sha256_file

DEFAULT_MODEL = "smollm2-135m"


@dataclass(frozen=True)
class ResolvedModel:
    ref: str                    # what the user wrote
    model_id: str               # canonical id recorded in manifests (upstream hub id where known)
    path: Path                  # local HF directory
    weights_sha256: str         # sha256 over the weight files (one file's hash, or hash of the sorted list)
    chat_template_sha256: str | None
    family: str                 # config.model_type, picks LoRA target presets

    def to_dict(self) -> dict:
        return {"ref": self.ref, "model_id": self.model_id, "path": str(self.path),
                "weights_sha256": self.weights_sha256, "chat_template_sha256": self.chat_template_sha256,
                "family": self.family}


def folder_weights_sha256(folder: Path) -> str:
    """sha256 of a model folder's weights: the one file's hash, or a hash over every shard's name and hash."""
    files = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("*.bin"))
    if not files:
        raise ModelError(f"{folder} holds no *.safetensors or *.bin weights")
    if len(files) == 1:
        return sha256_file(files[0])
    return sha256_bytes("\n".join(f"{f.name}:{sha256_file(f)}" for f in files))


def _chat_template_sha256(folder: Path) -> str | None:
    for name in ("chat_template.jinja", "tokenizer_config.json"):
        file = folder / name
        if not file.is_file():
            continue
        if name.endswith(".jinja"):
            return sha256_bytes(file.read_text())
        template = json.loads(file.read_text()).get("chat_template")
        if template:
            return sha256_bytes(template if isinstance(template, str) else json.dumps(template, sort_keys=True))
    return None


def _family(folder: Path) -> str:
    config = folder / "config.json"
    if not config.is_file():
        raise ModelError(f"{folder} is not a HF model directory (no config.json)")
    return json.loads(config.read_text()).get("model_type", "unknown")


def _from_folder(ref: str, model_id: str, folder: Path, weights_sha: str | None = None) -> ResolvedModel:
    return ResolvedModel(ref=ref, model_id=model_id, path=folder, family=_family(folder),
                         weights_sha256=weights_sha or folder_weights_sha256(folder),
                         chat_template_sha256=_chat_template_sha256(folder))


def embedded_dir(name: str) -> Path:
    return paths.models_dir() / name


def resolve_base(ref: str | None = None, prepare_if_missing: bool = False) -> ResolvedModel:
    """Resolve `ref` (default: the embedded SmolLM2-135M) to a local, hashed HF directory."""
    from domainlm.models import embedded

    ref = ref or os.environ.get("DOMAINLM_BASE_MODEL") or DEFAULT_MODEL
    if ref in embedded.EMBEDDED:
        spec = embedded.EMBEDDED[ref]
        folder = embedded_dir(ref)
        info = embedded.read_marker(folder)
        if info is None:
            if not prepare_if_missing:
                raise ModelError(f"the embedded model '{ref}' is not prepared yet: run `domainlm model prepare {ref}`")
            info = embedded.prepare(spec, folder)
        return _from_folder(ref, spec.hf_id, folder, info["weights_sha256"])
    local = Path(ref).expanduser()
    if local.exists():
        return _from_folder(ref, str(local.resolve()), local.resolve())
    if "/" in ref and not ref.startswith((".", "/", "~")):
        return _from_hub_cache(ref)
    raise ModelError(f"unknown base model '{ref}': use one of {sorted(embedded.EMBEDDED)}, a local HF directory, "
                     "or a hub id such as Qwen/Qwen2.5-7B-Instruct that is already downloaded")


def _from_hub_cache(repo_id: str) -> ResolvedModel:
    """Hub ids resolve only from the local HF cache: this deployment has no network at run time."""
    try:
        from huggingface_hub import snapshot_download

        folder = Path(snapshot_download(repo_id, local_files_only=True))
    except Exception:
        raise ModelError(
            f"hub model '{repo_id}' is not in the local Hugging Face cache and there is no network here. On a "
            f"machine with network run `huggingface-cli download {repo_id} "
            f"--local-dir /models/{repo_id.split('/')[-1]}`, "
            "copy that folder here and pass its path as the base model (or set HF_HOME to a cache holding it)."
        ) from None
    return _from_folder(repo_id, repo_id, folder)
