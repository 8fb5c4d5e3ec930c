"""`python -m domainlm.serving.engines.vllm_entry ARGS` = vLLM's OpenAI API server with domainlm's CPU multi-LoRA ops.

The install runs at import, so it also runs in the engine-core process vLLM spawns (a spawned child re-imports
the parent's main module as `__mp_main__`); the server itself starts only under the `__main__` guard.
"""

from __future__ import annotations

import os

if os.environ.get("VLLM_TARGET_DEVICE") == "cpu":
    from domainlm.serving.engines.cpu_lora_ops import install

    install()

if __name__ == "__main__":
    from vllm.entrypoints.launchers.api_server.entry import main

    main()
