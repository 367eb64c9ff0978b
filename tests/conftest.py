import pytest

from harness.fixtures.checkpoints import qwen3_tokenizer_dir
from infini_qwen3.tokenizer import Tokenizer


@pytest.fixture(scope="session")
def tokenizer() -> Tokenizer:
    return Tokenizer.from_dir(qwen3_tokenizer_dir())
