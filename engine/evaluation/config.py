"""What an evaluation runs: the methods it knows, :class:`EvalConfig`, which cells apply, how many cases."""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from engine.data import ALL_PROTOCOLS, BENCHMARKS, GAUSSIAN8_SIGMAS_BY_SCALE, base_protocol, benchmark_paths
from engine.methods import EVALUATE, METHOD_TABLE, method, methods_for


FORMAT = "kernelscope-results/1"
"""Value of the ``format`` entry of the results JSON."""

METHODS: tuple[str, ...] = methods_for(EVALUATE)
"""The methods evaluated by default (the rows of :data:`engine.methods.METHOD_TABLE` for ``evaluate``)."""

PREVIOUS_METHODS: dict[str, str] = {m: METHOD_TABLE[m].base for m in methods_for(EVALUATE, previous=True)}
"""Methods run with the networks of ``EvalConfig.previous_models_dir``: name → the method they repeat."""

ALL_METHODS: tuple[str, ...] = METHODS + tuple(PREVIOUS_METHODS)

STEP_RULE_BENCHMARK = "Set5"
STEP_RULE_PROTOCOL = "gaussian8"
"""The only benchmark and protocol the automatic IKC iteration is chosen on."""

_INVARIANT_KERNEL_COUNT = {"manet9": 9}

_NO_TRUE_KERNEL = {
    "manet": ("RRDB-SFT is conditioned on MANet-convention kernels (direct subsampling); Gaussian8 "
              "uses bicubic downsampling, so no true MANet kernel exists — see the SFTMD oracle"),
    "ikc": ("SFTMD is conditioned on one isotropic IKC-convention kernel per image; this protocol's "
            "kernels are anisotropic (MANet convention), so no true SFTMD code exists"),
}
"""Why an oracle fed true kernels of one convention (the key) has no score under the other."""


def base_method(name: str) -> str:
    """A method name → the method it repeats (``ikc_previous`` → ``ikc``), or itself."""
    return METHOD_TABLE[name].base if name in METHOD_TABLE else name


@dataclass(frozen=True)
class EvalConfig:
    """What to evaluate.

    Args:
        benchmarks: names from :data:`engine.data.BENCHMARKS`.
        protocols: names from :data:`engine.data.ALL_PROTOCOLS` (clean and photo-like).
        methods: names from :data:`ALL_METHODS` (the ``*_previous`` ones need ``previous_models_dir``).
        scale: SR factor (the shipped models are ×4).
        ikc_steps: IKC corrections after the prediction (t = 0 … ikc_steps, so ikc_steps + 1 SR images).
        ikc_fixed_step: the IKC iteration reported; ``None`` chooses it on Set5 Gaussian8
            (:func:`engine.evaluation.aggregate.choose_ikc_step`).
        max_images: per benchmark, use only its first N images (absent: all of them).
        skip: ``(method, protocol, benchmark)`` patterns not to run (to fit a time budget); protocol
            and benchmark are shell-style patterns (``variant*``, ``*``). Their cells say "not run".
        seed: evaluation seed of the test sets.
        device, backend, threads, tile, models_dir: how the networks run (see
            :func:`engine.pipeline.models.load_models` and :mod:`engine.pipeline.blind`).
        previous_models_dir: the models folder the ``*_previous`` methods load (e.g. the shipped
            models before a retraining, extracted with ``git show``).
        previous_results_path: an earlier results JSON of the previous models (same seed, scale and
            IKC steps): its ``manet`` / ``ikc`` case records become the ``*_previous`` records of every
            cell it covers (same LR images, so nothing is run twice); other cells need
            ``previous_models_dir``. See :func:`engine.evaluation.run.load_previous_results`.
        command: the command line recorded in the results (for reproduction).
    """

    benchmarks: tuple[str, ...] = BENCHMARKS
    protocols: tuple[str, ...] = ALL_PROTOCOLS
    methods: tuple[str, ...] = METHODS
    scale: int = 4
    ikc_steps: int = 7
    ikc_fixed_step: int | None = None
    max_images: Mapping[str, int] = field(default_factory=dict)
    skip: frozenset[tuple[str, str, str]] = frozenset()
    seed: int = 0
    device: str = "auto"
    backend: str = "auto"
    threads: int | None = None
    tile: int | None = None
    models_dir: str | Path | None = None
    previous_models_dir: str | Path | None = None
    previous_results_path: str | Path | None = None
    command: str = ""

    def validate(self) -> None:
        """Raise ``ValueError`` for unknown names, empty lists, or a fixed-step rule that cannot hold."""
        for what, given, known in (
            ("benchmark", self.benchmarks, BENCHMARKS),
            ("protocol", self.protocols, ALL_PROTOCOLS),
            ("method", self.methods, ALL_METHODS),
        ):
            if not given:
                raise ValueError(f"no {what} given")
            unknown = [g for g in given if g not in known]
            if unknown:
                raise ValueError(f"unknown {what}(s) {', '.join(unknown)}; choose from {', '.join(known)}")
            if len(set(given)) != len(given):
                raise ValueError(f"a {what} is listed twice: {', '.join(given)}")
        if self.scale not in (2, 3, 4):
            raise ValueError(f"scale must be 2, 3 or 4, got {self.scale}")
        if self.ikc_steps < 0:
            raise ValueError(f"ikc_steps must be ≥ 0, got {self.ikc_steps}")
        for name, n in self.max_images.items():
            if name not in BENCHMARKS:
                raise ValueError(f"max_images names an unknown benchmark {name!r}")
            if int(n) < 1:
                raise ValueError(f"max_images for {name} must be ≥ 1, got {n}")
        previous = [m for m in self.methods if m in PREVIOUS_METHODS]
        if previous and self.previous_models_dir is None and self.previous_results_path is None:
            raise ValueError(f"{', '.join(previous)} need the previous models folder (--previous-models DIR) "
                             "or their earlier results (--previous-results JSON)")
        if self.previous_models_dir is not None and not Path(self.previous_models_dir).is_dir():
            raise ValueError(f"previous models folder not found: {self.previous_models_dir}")
        for name, protocol, bench in self.skip:
            if (name not in ALL_METHODS or not fnmatch.filter(ALL_PROTOCOLS, protocol)
                    or not fnmatch.filter(BENCHMARKS, bench)):
                raise ValueError(f"cannot skip {name}@{protocol}@{bench}: it names no known method, "
                                 "protocol or benchmark")
        for ikc in [m for m in self.methods if METHOD_TABLE[m].iterative]:
            if self.ikc_fixed_step is None:
                if (STEP_RULE_BENCHMARK not in self.benchmarks or STEP_RULE_PROTOCOL not in self.protocols
                        or self.is_skipped(ikc, STEP_RULE_PROTOCOL, STEP_RULE_BENCHMARK)):
                    raise ValueError(
                        "the automatic IKC iteration is chosen on Set5 gaussian8 only: include Set5 in the "
                        "benchmarks and gaussian8 in the protocols, or give a fixed step (--ikc-fixed-step N)"
                    )
            elif not 0 <= self.ikc_fixed_step <= self.ikc_steps:
                raise ValueError(f"ikc_fixed_step must be in 0 … {self.ikc_steps}, got {self.ikc_fixed_step}")

    def images_for(self, benchmark: str) -> int | None:
        """A benchmark name → its ``max_images`` limit (``None``: all)."""
        n = self.max_images.get(benchmark)
        return None if n is None else int(n)

    def is_skipped(self, method: str, protocol: str, benchmark: str) -> bool:
        """A cell (method, protocol, benchmark) → True when a ``skip`` pattern covers it."""
        return any(method == m and fnmatch.fnmatchcase(protocol, p) and fnmatch.fnmatchcase(benchmark, b)
                   for m, p, b in self.skip)

    def methods_for(self, protocol: str, benchmark: str) -> tuple[str, ...]:
        """A protocol and benchmark → the requested methods that apply there and are not skipped."""
        return tuple(m for m in self.methods
                     if not self.is_skipped(m, protocol, benchmark) and not_applicable(m, protocol) is None)

    def networks(self, previous: bool = False) -> tuple[str, ...]:
        """The networks the requested methods need, each once (``previous``: the ``*_previous`` methods')."""
        out: list[str] = []
        for m in self.methods:
            if (m in PREVIOUS_METHODS) != previous:
                continue
            for n in METHOD_TABLE[m].networks:
                if n not in out:
                    out.append(n)
        return tuple(out)


def protocol_convention(protocol: str) -> str:
    """A protocol name → the degradation convention of its kernels: ``"ikc"`` (Gaussian8) or ``"manet"``."""
    return "ikc" if base_protocol(protocol) == "gaussian8" else "manet"


def not_applicable(name: str, protocol: str) -> str | None:
    """A method and a protocol → why the method has no score there (``None`` when it has one).

    Only an oracle lacks cells: it is fed true kernels of one convention, and a protocol of the
    other convention has none. Raises ``ValueError`` for an unknown method or protocol."""
    convention = protocol_convention(protocol)
    truth = method(name).truth
    return None if truth is None or truth == convention else _NO_TRUE_KERNEL[truth]


def cases_per_image(protocol: str, scale: int) -> int:
    """A protocol and scale → test cases per image (Gaussian8: 8, nine kernels: 9, a variant mode: 1)."""
    protocol = base_protocol(protocol)
    if protocol == "gaussian8":
        return len(GAUSSIAN8_SIGMAS_BY_SCALE[scale])
    return _INVARIANT_KERNEL_COUNT.get(protocol, 1)


def images_used(config: EvalConfig) -> dict[str, dict[str, int]]:
    """A config → per benchmark ``{"used": images evaluated, "total": images it has}``."""
    out = {}
    for b in config.benchmarks:
        total = len(benchmark_paths(b))
        limit = config.images_for(b)
        out[b] = {"used": total if limit is None else min(total, limit), "total": total}
    return out


def count_cases(config: EvalConfig) -> int:
    """A config → the number of test cases :func:`engine.evaluation.run_evaluation` will run (progress, ETAs)."""
    used = images_used(config)
    return sum(used[b]["used"] * cases_per_image(p, config.scale) for p in config.protocols for b in config.benchmarks)
