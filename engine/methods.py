"""The methods table: every way Kernelscope turns an LR image into an SR image, in one place.

Each :class:`Method` says what a method is called (its name on the command line and in the
results, its labels), which networks it runs (model-card ``network`` names), what it applies to
(``jobs``: the studio's and ``upscale``'s choices, the ``evaluate`` benchmark, the ``estimate``
command) and how it is run (the kernel it works with, whether it iterates, whether it repeats
another method with the previous models). :data:`METHOD_TABLE` holds the rows in presentation order
(the bicubic baseline first, each oracle after the blind method it bounds); everything else
(``engine.upscale``, the CLI choices, ``engine.evaluation``, the studio's method lists) reads it.

The code that runs a method keys its per-method function by the method's name
(``engine.upscale._RUNNERS``, ``engine.evaluation.cases._SCORERS``); the tests check those keys
against this table.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "UPSCALE",
    "EVALUATE",
    "ESTIMATE",
    "KERNEL_KINDS",
    "Method",
    "METHOD_TABLE",
    "DEFAULT_METHOD",
    "method",
    "methods_for",
    "networks_for",
]

UPSCALE = "upscale"
"""Job: the studio's method list and ``kernelscope-cli upscale --method``."""
EVALUATE = "evaluate"
"""Job: ``kernelscope-cli evaluate --methods`` (the tables of docs/RESULTS.md)."""
ESTIMATE = "estimate"
"""Job: the kernel map alone (``kernelscope-cli estimate``, the studio's kernel estimate)."""

KERNEL_KINDS = {
    "per_pixel": "estimates one kernel per LR pixel (MANet)",
    "per_image": "estimates one kernel for the whole image, correcting it iteratively (IKC)",
    "given": "uses the kernel the user gives (non-blind)",
    "true": "is fed the true kernel of a benchmark case (an oracle: the upper bound of a blind method)",
}
"""What :attr:`Method.kernel` may say; ``None``: no kernel at all (bicubic)."""


@dataclass(frozen=True)
class Method:
    """One row of the methods table.

    Args:
        name: the method's name on the command line, in ``UpscaleResult.method`` and in results JSON.
        label: what the studio (run panel, status bar) calls it.
        short: a short name for titles, pickers and report rows about its kernels.
        report_label: its row in docs/RESULTS.md; ``{step}`` stands for the IKC iteration reported.
        networks: the model-card ``network`` names it loads, in loading order.
        jobs: what it applies to: :data:`UPSCALE`, :data:`EVALUATE`, :data:`ESTIMATE`.
        kernel: the kernel it works with, a key of :data:`KERNEL_KINDS` (``None``: none).
        truth: oracles only: the degradation convention (``"manet"`` or ``"ikc"``) of the true
            kernel it is fed; it has no score under a protocol of the other convention.
        iterative: runs IKC's correction loop (``ikc_steps``); scored at every iteration.
        repeats: the method it repeats with the networks of the previous models folder
            (``evaluate --previous-models``); ``None`` for the methods that run the current models.
    """

    name: str
    label: str
    short: str
    report_label: str
    networks: tuple[str, ...]
    jobs: frozenset[str]
    kernel: str | None = None
    truth: str | None = None
    iterative: bool = False
    repeats: str | None = None

    def __post_init__(self) -> None:
        if self.kernel is not None and self.kernel not in KERNEL_KINDS:
            raise ValueError(f"method {self.name}: unknown kernel kind {self.kernel!r}")

    @property
    def blind(self) -> bool:
        """True when it estimates the kernel from the LR image itself (MANet, IKC)."""
        return self.kernel in ("per_pixel", "per_image")

    @property
    def user_kernel(self) -> bool:
        """True when the user gives the kernel (non-blind σ1, σ2, θ)."""
        return self.kernel == "given"

    @property
    def needs_models(self) -> bool:
        """True when it runs networks (everything but bicubic)."""
        return bool(self.networks)

    @property
    def base(self) -> str:
        """The method it repeats (``ikc_previous`` → ``ikc``), or its own name."""
        return self.repeats or self.name


def _previous(of: Method) -> Method:
    """``of`` run with the previous models folder: same networks and kernel, labelled as such."""
    return Method(
        name=f"{of.name}_previous", label=f"{of.label}, previous models",
        short=f"{of.short} (previous models)", report_label=f"{of.report_label}, previous models",
        networks=of.networks, jobs=frozenset({EVALUATE}), kernel=of.kernel, truth=of.truth,
        iterative=of.iterative, repeats=of.name,
    )


_MANET = Method(
    "manet", "MANet + RRDB-SFT (blind)", "MANet", "MANet + RRDB-SFT (blind)",
    networks=("manet", "rrdb_sft"), jobs=frozenset({UPSCALE, EVALUATE}), kernel="per_pixel",
)
_IKC = Method(
    "ikc", "IKC (iterative correction)", "IKC", "IKC (blind, fixed t = {step})",
    networks=("ikc_predictor", "sftmd", "ikc_corrector"), jobs=frozenset({UPSCALE, EVALUATE}),
    kernel="per_image", iterative=True,
)

METHOD_TABLE: dict[str, Method] = {m.name: m for m in (
    Method("bicubic", "Bicubic (baseline)", "bicubic", "Bicubic", networks=(),
           jobs=frozenset({UPSCALE, EVALUATE})),
    _MANET,
    Method("manet_oracle", "RRDB-SFT oracle (true kernels)", "RRDB-SFT oracle", "RRDB-SFT oracle (true kernels)",
           networks=("rrdb_sft",), jobs=frozenset({EVALUATE}), kernel="true", truth="manet"),
    _IKC,
    Method("sftmd_oracle", "SFTMD oracle (true σ)", "SFTMD oracle", "SFTMD oracle (true σ)",
           networks=("sftmd",), jobs=frozenset({EVALUATE}), kernel="true", truth="ikc"),
    Method("nonblind", "Non-blind RRDB-SFT (σ1, σ2, θ)", "non-blind", "Non-blind RRDB-SFT",
           networks=("rrdb_sft",), jobs=frozenset({UPSCALE}), kernel="given"),
    Method("estimate", "MANet kernel map", "MANet kernels", "MANet kernel map",
           networks=("manet",), jobs=frozenset({ESTIMATE}), kernel="per_pixel"),
    _previous(_MANET),
    _previous(_IKC),
)}
"""Every method by name, in presentation order (lists of choices follow it)."""

DEFAULT_METHOD = "manet"
"""What the studio and ``kernelscope-cli upscale`` run unless told otherwise."""


def method(name: str) -> Method:
    """The row of ``name``; ``ValueError`` (one line naming the choices) for an unknown name."""
    try:
        return METHOD_TABLE[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; choose one of {', '.join(METHOD_TABLE)}") from None


def methods_for(job: str, *, previous: bool | None = False) -> tuple[str, ...]:
    """A job → the names of the methods that apply to it, in table order.

    ``previous``: only the ones that repeat a method with the previous models (True), only the
    others (False), or both (None)."""
    return tuple(m.name for m in METHOD_TABLE.values()
                 if job in m.jobs and (previous is None or (m.repeats is not None) == previous))


def networks_for(name: str) -> tuple[str, ...]:
    """The networks method ``name`` loads; ``ValueError`` for an unknown name."""
    return method(name).networks
