"""Which device each rank of a model runs on, from the command-line options."""

import argparse

import pytest

from infini_qwen3.devices import add_device_arguments, model_device_kwargs, rank_devices


def parse(*argv):
    p = argparse.ArgumentParser()
    add_device_arguments(p)
    return p.parse_args(list(argv))


def test_one_device_by_default():
    assert model_device_kwargs(parse()) == {"device": "cpu", "device_ids": [0]}


def test_cpu_ranks_are_all_on_the_host():
    assert rank_devices("cpu", 0, 4) == [0, 0, 0, 0]
    assert model_device_kwargs(parse("--ndev", "2")) == {"device": "cpu", "device_ids": [0, 0]}


def test_accelerator_ranks_take_consecutive_devices_or_the_named_ones():
    assert rank_devices("nvidia", 2, 2) == [2, 3]
    assert model_device_kwargs(parse("--device", "nvidia", "--device-ids", "3,1")) == {
        "device": "nvidia", "device_ids": [3, 1]}
    assert rank_devices("nvidia", 0, 2, [5, 6]) == [5, 6]


@pytest.mark.parametrize("ndev, ids, message", [(0, None, "ndev must be >= 1"), (3, [0, 1], "does not match"),
                                                (1, [], "at least one")])
def test_inconsistent_requests_are_refused(ndev, ids, message):
    with pytest.raises(ValueError, match=message):
        rank_devices("nvidia", 0, ndev, ids)


@pytest.mark.parametrize("text", ["a,b", ",", "1;2"])
def test_malformed_device_lists_are_usage_errors(text, capsys):
    with pytest.raises(SystemExit):
        parse("--device-ids", text)
    assert "device id" in capsys.readouterr().err
