"""Everything about an adapter artifact, in one place: the contract (a PEFT folder + manifest.json, written
atomically, verified by hash), the training run's artifact with its data card, the one merge of base + LoRA into a
plain HF folder (export and merged serving both use it) and the export command's logic.

    from domainlm.artifacts import verify_artifact, write_artifact, artifact_id, read_manifest
"""

from domainlm.artifacts.contract import (MANIFEST, REQUIRED_FILES, artifact_id, build_manifest, read_manifest,
                                         verify_artifact, write_artifact, write_manifest)

__all__ = ["MANIFEST", "REQUIRED_FILES", "artifact_id", "build_manifest", "read_manifest", "verify_artifact",
           "write_artifact", "write_manifest"]
