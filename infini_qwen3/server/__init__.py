"""The OpenAI-compatible service: Starlette + uvicorn over the continuous-batching engine."""
