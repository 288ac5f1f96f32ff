"""Kernel PCA: the low-dimensional code of a 21 x 21 blur kernel (MANet: 15-d, IKC: 10-d).

Kernels (``(..., 21, 21)`` float32, sum 1, see :mod:`engine.degradation.kernels`) are flattened
row-major to 441-d vectors. A basis holds the mean kernel ``mean`` (441,), the principal directions
``components`` (d, 441, orthonormal rows, ordered by decreasing variance) and their
``explained_variance`` (d,). ``project(k) = (k - mean) @ components.T`` and
``reconstruct(c) = c @ components + mean``.

Determinism: the covariance is accumulated in float64 over chunks and eigen-decomposed with
``numpy.linalg.eigh``; each component's sign is chosen so that its entry of largest magnitude is
positive (the first such entry on ties). The same kernels therefore give the same basis.

The shipped bases (``models/pca_manet_x{2,3,4}.npz``, ``models/pca_ikc_x{2,3,4}.npz``, each with a JSON
card ``"kind": "pca"``) are fitted with seed 0 by ``python -m engine.pca``. The ``.npz`` files are
written byte-reproducibly (fixed zip timestamps), so the card's ``sha256`` identifies the basis.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import sys
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.degradation.kernels import (
    IKC_SIGMA_RANGE,
    KERNEL_SIZE,
    N_TAPS,
    MANET_VARIANCE_RANGE,
    anisotropic_gaussian_kernels,
    isotropic_gaussian_kernels,
    kernel_center,
    normalise_kernels,
    sample_anisotropic_params,
    sample_isotropic_sigma,
)
from engine.atomic import write_atomic
from engine.errors import ModelError

FORMAT = "kernelscope-kernel-pca/1"
"""Value of the ``format`` entry of every basis file."""

_CHUNK = 10_000
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


class KernelPCAError(ModelError):
    """A kernel PCA basis file is missing, not a basis, or corrupt (the message names the file)."""


@dataclass
class KernelPCA:
    """A kernel PCA basis: ``mean`` (441,), ``components`` (d, 441), ``explained_variance`` (d,).

    ``meta`` records how it was made (kind, scale, n_kernels, seed, sampling ranges, explained
    variance ratio...); it must be JSON-serialisable.
    """

    mean: np.ndarray
    components: np.ndarray
    explained_variance: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.mean = np.asarray(self.mean, dtype=np.float32).reshape(N_TAPS)
        self.components = np.asarray(self.components, dtype=np.float32)
        self.explained_variance = np.asarray(self.explained_variance, dtype=np.float32).reshape(-1)
        if self.components.ndim != 2 or self.components.shape[1] != N_TAPS:
            raise ValueError(f"components must be (d, {N_TAPS}), got {self.components.shape}")
        if self.explained_variance.shape[0] != self.components.shape[0]:
            raise ValueError("explained_variance must have one value per component")

    @property
    def n_components(self) -> int:
        return int(self.components.shape[0])

    def project(self, kernels: np.ndarray) -> np.ndarray:
        """Codes ``(..., d)`` float32 of kernels ``(..., 21, 21)`` (or row-major flattened ``(..., 441)``)."""
        k = np.asarray(kernels, dtype=np.float32)
        if k.shape[-2:] == (KERNEL_SIZE, KERNEL_SIZE):
            flat = k.reshape(k.shape[:-2] + (N_TAPS,))
        elif k.ndim >= 1 and k.shape[-1] == N_TAPS:
            flat = k
        else:
            raise ValueError(f"kernels must end in ({KERNEL_SIZE}, {KERNEL_SIZE}) or ({N_TAPS},), got {k.shape}")
        return (flat - self.mean) @ self.components.T

    def reconstruct(self, codes: np.ndarray, normalise: bool = False) -> np.ndarray:
        """Kernels ``(..., 21, 21)`` float32 from codes ``(..., d)``.

        The plain reconstruction is linear and may hold small negative taps; with
        ``normalise=True`` negatives are clipped to 0 and each kernel rescaled to sum 1 (for display
        and for blurring with an estimated kernel).
        """
        c = np.asarray(codes, dtype=np.float32)
        if c.shape[-1] != self.n_components:
            raise ValueError(f"codes must end in {self.n_components}, got {c.shape}")
        k = c @ self.components + self.mean
        if normalise:
            k = normalise_kernels(k, axes=(-1,), clip_negative=True)
        return k.reshape(c.shape[:-1] + (KERNEL_SIZE, KERNEL_SIZE)).astype(np.float32, copy=False)

    # files ---------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write an ``.npz`` (float32 arrays, meta as a JSON string; byte-reproducible)."""
        p = Path(path)
        arrays = {
            "format": np.array(FORMAT),
            "mean": self.mean,
            "components": self.components,
            "explained_variance": self.explained_variance,
            "meta": np.array(json.dumps(self.meta, sort_keys=True)),
        }
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for name, arr in arrays.items():
                one = io.BytesIO()
                np.lib.format.write_array(one, np.asarray(arr), allow_pickle=False)
                info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_DATE)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                zf.writestr(info, one.getvalue())
        p.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(p, buf.getvalue(), overwrite=True)
        return p

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "KernelPCA":
        """Read a basis written by :meth:`save`; :class:`KernelPCAError` names the file on problems."""
        p = Path(path)
        if not p.is_file():
            raise KernelPCAError(f"kernel PCA basis {p} not found (refit with `python -m engine.pca`)")
        try:
            with np.load(p, allow_pickle=False) as npz:
                data = {name: npz[name] for name in npz.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as exc:
            raise KernelPCAError(f"kernel PCA basis {p} is not a readable .npz file: {exc}") from exc
        missing = [k for k in ("format", "mean", "components", "explained_variance", "meta") if k not in data]
        if missing:
            raise KernelPCAError(f"{p} is not a kernel PCA basis (missing {', '.join(missing)})")
        fmt = _text(data["format"])
        if fmt != FORMAT:
            raise KernelPCAError(f"{p}: unsupported basis format {fmt!r} (expected {FORMAT!r})")
        try:
            meta = json.loads(_text(data["meta"]))
            if not isinstance(meta, dict):
                raise ValueError("meta is not a JSON object")
            basis = cls(data["mean"], data["components"], data["explained_variance"], meta)
        except (ValueError, TypeError) as exc:
            raise KernelPCAError(f"kernel PCA basis {p} is corrupt: {exc}") from exc
        if not (np.all(np.isfinite(basis.mean)) and np.all(np.isfinite(basis.components))):
            raise KernelPCAError(f"kernel PCA basis {p} is corrupt: non-finite values")
        return basis


def _text(arr: np.ndarray) -> str:
    """The string held by a 0-d (or one-element) string array; ``""`` for anything else."""
    a = np.asarray(arr)
    if a.size != 1 or a.dtype.kind not in "US":
        return ""
    value = a.reshape(-1)[0]
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


# fitting -------------------------------------------------------------------------------------

def _chunks_of(kernels: np.ndarray) -> Iterator[np.ndarray]:
    k = np.asarray(kernels, dtype=np.float32)
    if k.shape[-2:] == (KERNEL_SIZE, KERNEL_SIZE):
        k = k.reshape(-1, N_TAPS)
    if k.ndim != 2 or k.shape[1] != N_TAPS:
        raise ValueError(f"kernels must be (N, {KERNEL_SIZE}, {KERNEL_SIZE}) or (N, {N_TAPS}), got {k.shape}")
    for start in range(0, k.shape[0], _CHUNK):
        yield k[start : start + _CHUNK]


def _fit_chunks(chunks: Iterable[np.ndarray], n_components: int) -> KernelPCA:
    """PCA from an iterable of ``(n_i, 441)`` float32 chunks (covariance accumulated in float64)."""
    if not 1 <= n_components <= N_TAPS:
        raise ValueError(f"n_components must be in [1, {N_TAPS}], got {n_components}")
    ref: np.ndarray | None = None  # shift (first chunk's mean) keeps float32 products well-conditioned
    total = 0
    s1 = np.zeros(N_TAPS)
    s2 = np.zeros((N_TAPS, N_TAPS))
    for chunk in chunks:
        x = np.asarray(chunk, dtype=np.float32)
        if x.shape[0] == 0:
            continue
        if ref is None:
            ref = x.mean(axis=0, dtype=np.float64).astype(np.float32)
        d = x - ref
        s1 += d.sum(axis=0, dtype=np.float64)
        s2 += (d.T @ d).astype(np.float64)
        total += x.shape[0]
    if ref is None or total < 2:
        raise ValueError("need at least two kernels to fit a PCA basis")
    mean_shift = s1 / total
    cov = s2 / total - np.outer(mean_shift, mean_shift)
    cov = 0.5 * (cov + cov.T)
    evals, evecs = np.linalg.eigh(cov)
    order = np.argsort(evals)[::-1][:n_components]
    evals = np.maximum(evals[order], 0.0)
    comps = evecs[:, order].T  # (d, 441)
    signs = np.sign(comps[np.arange(n_components), np.argmax(np.abs(comps), axis=1)])
    comps *= np.where(signs == 0, 1.0, signs)[:, None]
    total_var = float(max(np.trace(cov), 1e-30))
    meta = {
        "n_kernels": int(total),
        "n_components": int(n_components),
        "explained_variance_ratio": float(evals.sum() / total_var),
        "explained_variance_ratio_per_component": [round(float(v / total_var), 6) for v in evals],
    }
    mean = ref.astype(np.float64) + mean_shift
    return KernelPCA(mean, comps, evals, meta)


def fit_kernel_pca(kernels: np.ndarray, n_components: int) -> KernelPCA:
    """Fit a basis to kernels ``(N, 21, 21)`` (or ``(N, 441)``): mean removed, top ``n_components``."""
    return _fit_chunks(_chunks_of(kernels), n_components)


def fit_manet_basis(
    scale: int, rng: np.random.Generator, n_kernels: int = 150_000, n_components: int = 15
) -> KernelPCA:
    """Basis for MANet-convention kernels at ``scale`` (parameters from :func:`sample_anisotropic_params`)."""
    var1, var2, theta = sample_anisotropic_params(rng, scale, int(n_kernels))

    def chunks() -> Iterator[np.ndarray]:
        for start in range(0, int(n_kernels), _CHUNK):
            sl = slice(start, start + _CHUNK)
            yield anisotropic_gaussian_kernels(var1[sl], var2[sl], theta[sl], scale).reshape(-1, N_TAPS)

    basis = _fit_chunks(chunks(), n_components)
    lo, hi = MANET_VARIANCE_RANGE[scale]
    basis.meta.update(
        {
            "convention": "manet",
            "scale": int(scale),
            "kernel_size": KERNEL_SIZE,
            "kernel_center": kernel_center(scale),
            "variance_range": [lo, hi],
            "sampling": "var1~U[lo,hi], var2~U[lo,var1], theta~U[0,pi] (variances)",
        }
    )
    return basis


def fit_ikc_basis(
    rng: np.random.Generator, n_kernels: int = 30_000, n_components: int = 10, scale: int = 4
) -> KernelPCA:
    """Basis for IKC-convention (centred isotropic) kernels, ``sigma ~ U[IKC_SIGMA_RANGE[scale]]``."""
    sigma = sample_isotropic_sigma(rng, scale, int(n_kernels))
    chunks = (
        isotropic_gaussian_kernels(sigma[s : s + _CHUNK]).reshape(-1, N_TAPS)
        for s in range(0, int(n_kernels), _CHUNK)
    )
    basis = _fit_chunks(chunks, n_components)
    lo, hi = IKC_SIGMA_RANGE[scale]
    basis.meta.update(
        {
            "convention": "ikc",
            "scale": int(scale),
            "kernel_size": KERNEL_SIZE,
            "kernel_center": float(KERNEL_SIZE // 2),
            "sigma_range": [lo, hi],
            "sampling": "sigma~U[lo,hi] (standard deviation), isotropic, centred",
        }
    )
    return basis


# shipped bases -------------------------------------------------------------------------------

SHIPPED_BASES: tuple[tuple[str, int], ...] = (("manet", 2), ("manet", 3), ("manet", 4), ("ikc", 2), ("ikc", 3), ("ikc", 4))
"""``(convention, scale)`` of the bases shipped in ``models/``."""


def basis_id(convention: str, scale: int) -> str:
    """File stem of a shipped basis, e.g. ``pca_manet_x4``."""
    return f"pca_{convention}_x{int(scale)}"


def shipped_basis_path(convention: str, scale: int, models_dir: str | os.PathLike[str] | None = None) -> Path:
    """Path of the shipped ``.npz`` basis for ``convention`` ("manet" or "ikc") and ``scale``."""
    if models_dir is None:
        from engine.paths import models_dir as _models_dir

        models_dir = _models_dir()
    return Path(models_dir) / f"{basis_id(convention, scale)}.npz"


def load_shipped_basis(
    convention: str, scale: int, models_dir: str | os.PathLike[str] | None = None
) -> KernelPCA:
    """Load the shipped basis after checking its sha256 (:func:`load_checked_basis`); raises
    :class:`KernelPCAError` naming the file when it is missing, changed or corrupt."""
    return load_checked_basis(shipped_basis_path(convention, scale, models_dir))


def load_checked_basis(npz_path: str | os.PathLike[str]) -> KernelPCA:
    """Load a basis whose bytes have the sha256 its card (``<stem>.json`` beside it, ``"kind":
    "pca"``) records. The hash is computed once per process per file (size and mtime unchanged).

    Raises :class:`KernelPCAError` naming the file when the card is missing or unreadable, records
    no sha256, or the file differs from it (an edited basis would silently change every code).
    """
    from engine.modelcards import cached_sha256

    p = Path(npz_path)
    card_path = p.with_suffix(".json")
    refit = f"refit it with `python -m engine.pca --only {p.stem}`"
    if not p.is_file():
        raise KernelPCAError(f"kernel PCA basis {p} not found; {refit}")
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise KernelPCAError(
            f"kernel PCA basis {p} has no card {card_path.name} recording its sha256; {refit}"
        ) from None
    except (OSError, ValueError) as exc:
        raise KernelPCAError(f"kernel PCA card {card_path} cannot be read: {exc}") from exc
    expected = str(card.get("sha256") or "").lower() if isinstance(card, dict) else ""
    if not isinstance(card, dict) or card.get("kind") != "pca" or card.get("file", p.name) != p.name:
        raise KernelPCAError(f"{card_path} is not the PCA card of {p.name}")
    if not expected:
        raise KernelPCAError(f"kernel PCA card {card_path} records no sha256 for {p.name}")
    found = cached_sha256(p)
    if found != expected:
        raise KernelPCAError(
            f"kernel PCA basis {p} does not match the sha256 in {card_path.name} (expected "
            f"{expected[:12]}…, found {found[:12]}…): the file was changed or corrupted; {refit}"
        )
    return KernelPCA.load(p)


def fit_shipped_basis(convention: str, scale: int, seed: int = 0) -> KernelPCA:
    """Refit one shipped basis with the paper's sizes (MANet 150k kernels/15-d, IKC 30k/10-d)."""
    rng = np.random.default_rng(seed)
    if convention == "manet":
        basis = fit_manet_basis(scale, rng)
    elif convention == "ikc":
        basis = fit_ikc_basis(rng, scale=scale)
    else:
        raise ValueError(f"unknown convention {convention!r} (expected 'manet' or 'ikc')")
    basis.meta["seed"] = int(seed)
    return basis


def write_card(basis: KernelPCA, npz_path: Path) -> Path:
    """Write the JSON card (``"kind": "pca"``) beside ``npz_path``, with the file's sha256."""
    meta = basis.meta
    card = {
        "kind": "pca",
        "id": npz_path.stem,
        "file": npz_path.name,
        "sha256": hashlib.sha256(npz_path.read_bytes()).hexdigest(),
        "format": FORMAT,
        **{k: meta[k] for k in sorted(meta)},
        "reproduce": f"python -m engine.pca --only {npz_path.stem} --seed {meta.get('seed', 0)}",
    }
    path = npz_path.with_suffix(".json")
    write_atomic(path, (json.dumps(card, indent=2) + "\n").encode("utf-8"), overwrite=True)
    return path


def main(argv: list[str] | None = None) -> int:
    """Fit and write the shipped bases (``python -m engine.pca [--out models] [--seed 0]``)."""
    parser = argparse.ArgumentParser(prog="python -m engine.pca", description="Fit the shipped kernel PCA bases.")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: the models folder)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", default=None, help="one basis id, e.g. pca_manet_x4")
    args = parser.parse_args(argv)
    for convention, scale in SHIPPED_BASES:
        if args.only and args.only != basis_id(convention, scale):
            continue
        basis = fit_shipped_basis(convention, scale, args.seed)
        path = basis.save(shipped_basis_path(convention, scale, args.out))
        write_card(basis, path)
        ratio = basis.meta["explained_variance_ratio"]
        print(f"{path}: {basis.n_components} components, explained variance {ratio:.6f}, {path.stat().st_size} bytes")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
