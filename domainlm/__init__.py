"""domainlm: LoRA-fine-tune, evaluate and serve vertical (domain) models from one shared pipeline."""

__version__ = "0.1.0"
