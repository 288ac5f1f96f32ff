"""engine.methods: one table of methods that upscale, the CLI, the evaluation and the studio all read."""

from __future__ import annotations

import argparse

import pytest

from engine.backends import BACKENDS, DEVICES
from engine.methods import (
    DEFAULT_METHOD,
    ESTIMATE,
    EVALUATE,
    KERNEL_KINDS,
    METHOD_TABLE,
    UPSCALE,
    method,
    methods_for,
    networks_for,
)
from engine.modelcards import NETWORKS


def _choices(command: str) -> dict[str, argparse.Action]:
    from engine.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return {a.dest: a for a in sub.choices[command]._actions}


def test_every_row_names_known_networks_jobs_and_kernels() -> None:
    for name, m in METHOD_TABLE.items():
        assert m.name == name
        assert set(m.networks) <= set(NETWORKS), name
        assert m.jobs and m.jobs <= {UPSCALE, EVALUATE, ESTIMATE}, name
        assert m.kernel is None or m.kernel in KERNEL_KINDS, name
        assert (m.truth is not None) == (m.kernel == "true"), name  # only oracles are fed a true kernel
        assert m.truth in (None, "manet", "ikc"), name


def test_previous_rows_repeat_an_evaluated_method_with_its_networks() -> None:
    previous = methods_for(EVALUATE, previous=True)
    assert previous == ("manet_previous", "ikc_previous")
    for name in previous:
        row, base = METHOD_TABLE[name], METHOD_TABLE[METHOD_TABLE[name].repeats]
        assert row.base == base.name and EVALUATE in base.jobs and base.repeats is None
        assert row.networks == base.networks and row.iterative == base.iterative and row.kernel == base.kernel
    assert methods_for(EVALUATE, previous=None) == methods_for(EVALUATE) + previous


def test_questions_the_table_answers() -> None:
    assert [m for m in METHOD_TABLE if METHOD_TABLE[m].blind] == ["manet", "ikc", "estimate", "manet_previous",
                                                                  "ikc_previous"]
    assert [m for m in METHOD_TABLE if METHOD_TABLE[m].iterative] == ["ikc", "ikc_previous"]
    assert [m for m in METHOD_TABLE if METHOD_TABLE[m].user_kernel] == ["nonblind"]
    assert [m for m in METHOD_TABLE if not METHOD_TABLE[m].needs_models] == ["bicubic"]
    assert networks_for("estimate") == ("manet",)
    assert networks_for("manet") == ("manet", "rrdb_sft")


def test_unknown_method_is_one_line_naming_the_choices() -> None:
    with pytest.raises(ValueError, match=r"unknown method 'sharpen'; choose one of bicubic, manet, .*ikc_previous"):
        method("sharpen")
    from engine.pipeline.models import load_for_method

    with pytest.raises(ValueError, match="unknown method 'sharpen'"):
        load_for_method("sharpen", 4)


def test_upscale_runs_exactly_the_upscale_methods_of_the_table() -> None:
    from engine.upscale import _RUNNERS, METHODS, UpscaleOptions

    assert METHODS == methods_for(UPSCALE) == ("bicubic", "manet", "ikc", "nonblind")
    assert set(_RUNNERS) == set(METHODS)
    assert UpscaleOptions().method == DEFAULT_METHOD == "manet"
    with pytest.raises(ValueError, match="unknown method 'manet_oracle'"):
        UpscaleOptions(method="manet_oracle")  # an evaluation-only row


def test_cli_choices_read_the_tables() -> None:
    upscale = _choices("upscale")
    assert tuple(upscale["method"].choices) == methods_for(UPSCALE)
    assert upscale["method"].default == DEFAULT_METHOD
    for command, dest in (("upscale", "provider"), ("estimate", "provider"), ("evaluate", "device"),
                          ("train", "device")):
        assert tuple(_choices(command)[dest].choices) == DEVICES, command
    for command in ("upscale", "estimate", "evaluate"):
        assert tuple(_choices(command)["backend"].choices) == BACKENDS, command
    evaluate = _choices("evaluate")
    assert tuple(evaluate["methods"].choices) == methods_for(EVALUATE, previous=None)
    assert tuple(evaluate["methods"].default) == methods_for(EVALUATE)


def test_training_config_accepts_exactly_the_backend_devices() -> None:
    from engine.training.config import DEVICES as TRAIN_DEVICES

    assert TRAIN_DEVICES is DEVICES
