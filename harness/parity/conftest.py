import pytest

from harness.fixtures.checkpoints import checkpoint, qwen3_tokenizer_dir


@pytest.fixture(scope="session")
def tokenizer_dir():
    return qwen3_tokenizer_dir()


@pytest.fixture(scope="session")
def make_checkpoint(tmp_path_factory, tokenizer_dir):
    root = tmp_path_factory.mktemp("checkpoints")
    return lambda **options: checkpoint(root, **options)
