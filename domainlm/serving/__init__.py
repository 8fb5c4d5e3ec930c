"""The OpenAI-compatible gateway: engines (vLLM processes / remote URLs, in-process hf), routes, policy, auth,
rate limits, audit, metrics and admin. Entry: `domainlm serve --config configs/serve/local.yaml`.

    from domainlm.serving.app import create_app
    from domainlm.serving.config import ServeConfig
"""
