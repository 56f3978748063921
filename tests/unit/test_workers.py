"""The ``--workers`` default (``auto``) and its parsing."""

from __future__ import annotations

import argparse

import pytest
import torch

from evalbench.cli import main
from evalbench.cli.common import workers_arg
from evalbench.embed import loader
from evalbench.embed.loader import auto_workers


def test_auto_decodes_in_process_on_cpu() -> None:
    assert auto_workers(torch.device("cpu")) == 0


@pytest.mark.parametrize(
    ("cores", "local_ranks", "expected"),
    [(16, "1", 4), (3, "1", 2), (1, "1", 0), (16, "8", 1), (8, "8", 0)],
)
def test_auto_on_cuda_uses_the_free_cores_of_each_rank(
    cores: int, local_ranks: str, expected: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(loader.os, "sched_getaffinity", lambda _: set(range(cores)), raising=False)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", local_ranks)
    assert auto_workers(torch.device("cuda")) == expected


def test_workers_argument() -> None:
    assert workers_arg("auto") is None and workers_arg("0") == 0 and workers_arg("3") == 3
    for bad in ("-1", "two", "1.5"):
        with pytest.raises(argparse.ArgumentTypeError, match="worker processes >= 0, or auto"):
            workers_arg(bad)


def test_a_bad_workers_value_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["run", "--encoder", "logmel", "--tasks", "synth_pitch", "--workers", "-2"])
    assert exc.value.code == 2 and "'-2': give a number of worker processes >= 0, or auto" in capsys.readouterr().err
