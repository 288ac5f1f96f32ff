"""The training stages: one table of static facts per stage (no torch; the config checks names here).

What a stage does with them (losses, validation, frozen networks) is in :mod:`engine.training.stages`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StageSpec:
    """Static facts about a stage.

    Attributes:
        name: stage name (``TrainConfig.stage``).
        network: the trained network (``engine.archs.NETWORKS`` key, card ``network``).
        protocol: degradation convention of its batches (``"manet"`` or ``"ikc"``).
        with_hr: batches carry the HR patch.
        pca: which PCA basis the stage needs (``"manet"``, ``"ikc"`` or ``None``).
        frozen: networks loaded frozen from their shipped cards (same preset and scale).
        lr: default learning rate.
        betas: default Adam betas.
        val_protocol: ``build_test_set`` protocol used for validation.
        val_metric: name of the validation number.
        higher_is_better: direction of the validation number.
    """

    name: str
    network: str
    protocol: str
    with_hr: bool
    pca: str | None
    lr: float
    betas: tuple[float, float]
    val_protocol: str
    val_metric: str
    higher_is_better: bool
    frozen: tuple[str, ...] = ()


# shared by several stages: the data convention (degradation, PCA basis, validation set) and the task
_MANET_DATA = dict(protocol="manet", pca="manet", val_protocol="manet9")
_IKC_DATA = dict(protocol="ikc", pca="ikc", val_protocol="gaussian8")
_SR = dict(with_hr=True, val_metric="psnr_y", higher_is_better=True)
_CODE = dict(with_hr=False, val_metric="code_mse", higher_is_better=False, lr=1e-4, betas=(0.9, 0.99))

STAGE_SPECS: dict[str, StageSpec] = {
    # MANet (official code): Adam betas (0.9, 0.999), lr 2e-4; no PCA (it predicts whole kernels).
    "manet": StageSpec(name="manet", network="manet", protocol="manet", pca=None, val_protocol="manet9",
                       with_hr=False, val_metric="kernel_l1_sum", higher_is_better=False,
                       lr=2e-4, betas=(0.9, 0.999)),
    # RRDB-SFT non-blind: L1, lr 2e-4; BasicSR-style betas (0.9, 0.99).
    "rrdb_sft": StageSpec(name="rrdb_sft", network="rrdb_sft", **_MANET_DATA, **_SR, lr=2e-4, betas=(0.9, 0.99)),
    # blind fine-tuning on MANet's per-pixel codes: lr 5e-5.
    "rrdb_sft_blind": StageSpec(name="rrdb_sft_blind", network="rrdb_sft", **_MANET_DATA, **_SR,
                                frozen=("manet",), lr=5e-5, betas=(0.9, 0.99)),
    # IKC: SFTMD L1 lr 1e-4, predictor/corrector L2 lr 1e-4; betas (0.9, 0.99) as in the IKC code.
    "sftmd": StageSpec(name="sftmd", network="sftmd", **_IKC_DATA, **_SR, lr=1e-4, betas=(0.9, 0.99)),
    "ikc_predictor": StageSpec(name="ikc_predictor", network="ikc_predictor", **_IKC_DATA, **_CODE),
    "ikc_corrector": StageSpec(name="ikc_corrector", network="ikc_corrector", **_IKC_DATA, **_CODE,
                               frozen=("sftmd", "ikc_predictor")),
}


def get_stage(name: str) -> StageSpec:
    """The :class:`StageSpec` of stage ``name``; ``KeyError`` names the known stages."""
    try:
        return STAGE_SPECS[name]
    except KeyError:
        raise KeyError(f"unknown stage {name!r}; known: {', '.join(STAGE_SPECS)}") from None
