"""infini-qwen3: Qwen3 inference on InfiniCore."""

__version__ = "0.1.0"
