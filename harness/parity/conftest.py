import pytest

from harness.fixtures.checkpoints import checkpoint, qwen3_tokenizer_dir
from harness.fixtures.device import TEST_DEVICE

from .record import ParityRecord


@pytest.fixture(scope="session")
def tokenizer_dir():
    return qwen3_tokenizer_dir()


@pytest.fixture(scope="session")
def make_checkpoint(tmp_path_factory, tokenizer_dir):
    root = tmp_path_factory.mktemp("checkpoints")
    return lambda **options: checkpoint(root, **options)


@pytest.fixture(scope="session")
def parity_record():
    """Collects the worst error per operator and dtype; written to build/results/<device>/parity.json."""
    record = ParityRecord()
    yield record
    record.write(TEST_DEVICE)
