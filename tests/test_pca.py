"""Kernel PCA: fit against the covariance, reconstruction error, reproducibility, files and shipped bases."""

import hashlib
import json
import zipfile

import numpy as np
import pytest

from engine.degradation.kernels import (
    anisotropic_gaussian_kernels,
    isotropic_gaussian_kernels,
    sample_anisotropic_params,
    sample_isotropic_sigma,
)
from engine.errors import ModelError
from engine.pca import (
    SHIPPED_BASES,
    KernelPCA,
    KernelPCAError,
    fit_ikc_basis,
    fit_kernel_pca,
    fit_manet_basis,
    load_shipped_basis,
    shipped_basis_path,
)


def _manet_kernels(seed, scale, n):
    rng = np.random.default_rng(seed)
    return anisotropic_gaussian_kernels(*sample_anisotropic_params(rng, scale, n), scale)


@pytest.fixture(scope="module")
def small_basis():
    return fit_manet_basis(4, np.random.default_rng(0), n_kernels=3000, n_components=15)


def test_fit_gives_the_top_eigenpairs_of_the_covariance():
    # Checked with matrix products only (no second LAPACK call: threaded LAPACK is very slow on
    # the shared 2-core test machine): each component is an eigenvector of an independently
    # computed covariance, and what is left after removing them has no larger eigenvalue.
    ks = _manet_kernels(1, 3, 2000)
    basis = fit_kernel_pca(ks, 8)
    x = ks.reshape(2000, -1).astype(np.float64)
    mean = x.mean(axis=0)
    np.testing.assert_allclose(basis.mean, mean, atol=1e-7)
    cov = np.cov(x.T, bias=True)
    v = basis.components.astype(np.float64)
    lam = basis.explained_variance.astype(np.float64)
    np.testing.assert_allclose(np.einsum("ij,jk,ik->i", v, cov, v), lam, rtol=1e-4)
    resid_vec = cov @ v.T - v.T * lam
    assert np.abs(resid_vec).max() < 1e-3 * lam[0]
    proj = np.eye(441) - v.T @ v
    rest = proj @ cov @ proj
    z = np.random.default_rng(0).standard_normal(441)
    for _ in range(300):  # power iteration for the largest remaining eigenvalue
        z = rest @ z
        z /= np.linalg.norm(z)
    assert z @ rest @ z <= lam[-1] * (1 + 1e-3)
    assert basis.meta["explained_variance_ratio"] == pytest.approx(lam.sum() / np.trace(cov), rel=1e-4)


def test_basis_structure(small_basis):
    b = small_basis
    assert b.mean.shape == (441,) and b.components.shape == (15, 441)
    assert b.mean.dtype == b.components.dtype == b.explained_variance.dtype == np.float32
    np.testing.assert_allclose(b.components @ b.components.T, np.eye(15), atol=1e-5)
    assert np.all(np.diff(b.explained_variance) <= 0) and np.all(b.explained_variance >= 0)
    # kernels sum to 1, so every direction of variation sums to 0
    np.testing.assert_allclose(b.components.sum(axis=1), 0.0, atol=1e-4)
    # sign convention: the entry of largest magnitude is positive
    idx = np.argmax(np.abs(b.components), axis=1)
    assert np.all(b.components[np.arange(15), idx] > 0)
    m = b.meta
    assert m["convention"] == "manet" and m["scale"] == 4 and m["n_kernels"] == 3000 and m["n_components"] == 15
    assert 0.99 < m["explained_variance_ratio"] <= 1.0


def test_refit_is_reproducible(small_basis):
    again = fit_manet_basis(4, np.random.default_rng(0), n_kernels=3000, n_components=15)
    np.testing.assert_array_equal(again.components, small_basis.components)
    np.testing.assert_array_equal(again.mean, small_basis.mean)
    other = fit_manet_basis(4, np.random.default_rng(1), n_kernels=3000, n_components=15)
    assert not np.array_equal(other.mean, small_basis.mean)


def test_project_reconstruct_shapes_and_error(small_basis):
    fresh = _manet_kernels(99, 4, 2000).reshape(40, 50, 21, 21)
    codes = small_basis.project(fresh)
    assert codes.shape == (40, 50, 15) and codes.dtype == np.float32
    np.testing.assert_array_equal(small_basis.project(fresh.reshape(40, 50, 441)), codes)  # flattened input
    rec = small_basis.reconstruct(codes)
    assert rec.shape == fresh.shape
    rel = np.linalg.norm((rec - fresh).reshape(2000, -1), axis=1) / np.linalg.norm(fresh.reshape(2000, -1), axis=1)
    assert rel.mean() < 0.03 and np.median(rel) < 0.02
    # a truncated basis does worse
    trunc = KernelPCA(small_basis.mean, small_basis.components[:3], small_basis.explained_variance[:3])
    rel3 = np.linalg.norm((trunc.reconstruct(trunc.project(fresh)) - fresh).reshape(2000, -1), axis=1)
    assert rel3.mean() > 2 * np.linalg.norm((rec - fresh).reshape(2000, -1), axis=1).mean()
    norm = small_basis.reconstruct(codes, normalise=True)
    assert norm.min() >= 0
    np.testing.assert_allclose(norm.sum(axis=(-2, -1)), 1.0, atol=1e-5)
    with pytest.raises(ValueError):
        small_basis.project(np.zeros((3, 20, 20)))
    with pytest.raises(ValueError):
        small_basis.reconstruct(np.zeros((3, 10)))


def test_ikc_basis():
    b = fit_ikc_basis(np.random.default_rng(0), n_kernels=3000, n_components=10)
    assert b.components.shape == (10, 441) and b.meta["convention"] == "ikc" and b.meta["scale"] == 4
    fresh = isotropic_gaussian_kernels(sample_isotropic_sigma(np.random.default_rng(5), 4, 500))
    err = np.abs(b.reconstruct(b.project(fresh)) - fresh).max()
    assert err < 1e-4


def test_save_load_round_trip(tmp_path, small_basis):
    p = small_basis.save(tmp_path / "basis.npz")
    loaded = KernelPCA.load(p)
    np.testing.assert_array_equal(loaded.mean, small_basis.mean)
    np.testing.assert_array_equal(loaded.components, small_basis.components)
    np.testing.assert_array_equal(loaded.explained_variance, small_basis.explained_variance)
    assert loaded.meta == json.loads(json.dumps(small_basis.meta))
    # byte-reproducible files
    q = small_basis.save(tmp_path / "again.npz")
    assert p.read_bytes() == q.read_bytes()
    with np.load(p, allow_pickle=False) as npz:  # plain arrays, no pickles
        assert {"mean", "components", "explained_variance", "meta", "format"} <= set(npz.files)


def test_load_errors_name_the_file(tmp_path, small_basis):
    missing = tmp_path / "nope.npz"
    with pytest.raises(KernelPCAError, match="nope.npz"):
        KernelPCA.load(missing)
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"this is not a zip file" * 10)
    with pytest.raises(KernelPCAError, match="garbage.npz"):
        KernelPCA.load(garbage)
    other = tmp_path / "other.npz"
    np.savez(other, weights=np.zeros(3))
    with pytest.raises(KernelPCAError, match="other.npz.*missing"):
        KernelPCA.load(other)
    # truncated file
    good = small_basis.save(tmp_path / "good.npz").read_bytes()
    cut = tmp_path / "cut.npz"
    cut.write_bytes(good[: len(good) // 2])
    with pytest.raises(KernelPCAError, match="cut.npz"):
        KernelPCA.load(cut)
    # wrong shapes
    bad = tmp_path / "bad.npz"
    with zipfile.ZipFile(tmp_path / "good.npz") as zf:
        names = zf.namelist()
    assert "components.npy" in names
    np.savez(bad, format=np.array("kernelscope-kernel-pca/1"), mean=np.zeros(441, np.float32),
             components=np.zeros((4, 400), np.float32), explained_variance=np.zeros(4, np.float32),
             meta=np.array("{}"))
    with pytest.raises(KernelPCAError, match="bad.npz.*corrupt"):
        KernelPCA.load(bad)
    assert issubclass(KernelPCAError, ModelError)


@pytest.mark.parametrize("convention, scale", SHIPPED_BASES)
def test_shipped_bases(convention, scale):
    path = shipped_basis_path(convention, scale)
    basis = load_shipped_basis(convention, scale)
    d = 15 if convention == "manet" else 10
    assert basis.components.shape == (d, 441)
    assert path.stat().st_size < 60_000
    card = json.loads(path.with_suffix(".json").read_text())
    assert card["kind"] == "pca" and card["file"] == path.name
    assert card["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert card["convention"] == convention and card["scale"] == scale and card["seed"] == 0
    assert card["n_components"] == d
    assert card["n_kernels"] == (150_000 if convention == "manet" else 30_000)
    assert card["explained_variance_ratio"] == pytest.approx(basis.meta["explained_variance_ratio"])
    # fresh kernels of the matching convention reconstruct well
    rng = np.random.default_rng(2024)
    if convention == "manet":
        fresh = anisotropic_gaussian_kernels(*sample_anisotropic_params(rng, scale, 1000), scale)
        tol = 0.02
    else:
        fresh = isotropic_gaussian_kernels(sample_isotropic_sigma(rng, scale, 1000))
        tol = 1e-3
    rec = basis.reconstruct(basis.project(fresh))
    rel = np.linalg.norm((rec - fresh).reshape(1000, -1), axis=1) / np.linalg.norm(fresh.reshape(1000, -1), axis=1)
    assert rel.mean() < tol
