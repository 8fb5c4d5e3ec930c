"""Engine adapters behind the gateway: managed/remote vLLM servers (engines.vllm_server) and in-process hf (engines.hf).

Each engine serves one base model and any number of LoRA adapters named `vertical@version`; see engines.base.
"""
