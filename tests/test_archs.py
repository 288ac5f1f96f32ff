"""Networks: exact paper parameter counts, shapes for every preset and scale, receptive fields,
tiling exactness of MANet, seeded initialisation, no unused layers."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402

from engine.archs import (  # noqa: E402
    NETWORKS,
    build_network,
    count_parameters,
    example_inputs,
    get_spec,
    ikc,
    init_weights,
    manet,
    rrdb_sft,
)

NOISE_CHANNEL_WEIGHTS = 10 * 2 * 32 * 9
"""RRDB-SFT's noise-level input (our addition): one more input channel in the first conv of the scale
and shift branches (32 hidden, 3×3) of each of the 10 SFT layers."""

SFTMD_NOISE_CHANNEL_WEIGHTS = 33 * 2 * 32 * 9
"""SFTMD's noise-level input (our addition): one more input channel in the first conv of the scale and
shift branches (32 hidden, 3×3) of each of its 33 SFT layers (two per block of 16, and the last)."""

PAPER_COUNTS = {
    ("manet", 4): 1_810_361,
    ("rrdb_sft", 4): 8_086_256 + NOISE_CHANNEL_WEIGHTS,  # the paper's count + the noise channel
    ("sftmd", 4): 4_234_691 + SFTMD_NOISE_CHANNEL_WEIGHTS,  # the paper's count + the noise channel
    ("ikc_predictor", 4): 430_730,
    ("ikc_corrector", 4): 649_930,
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize(("network", "scale"), sorted(PAPER_COUNTS))
def test_paper_parameter_counts(network: str, scale: int) -> None:
    assert count_parameters(build_network(network, "paper", scale)) == PAPER_COUNTS[(network, scale)]


def test_noise_input_added_with_zero_weights_changes_nothing() -> None:
    """Weights trained without the noise channel, loaded through ``with_noise_input``, give the same SR
    whatever the noise map; a noise weight then changes the output."""
    model = build_network("rrdb_sft", "tiny", 2, generator=_gen(3)).eval()
    old = {k: (v[:, :-1] if ".sft." in k and k.endswith(".0.weight") else v) for k, v in model.state_dict().items()}
    model.load_state_dict(rrdb_sft.with_noise_input(old, model.code_len))
    direct = build_network("rrdb_sft", "tiny", 2, generator=_gen(9))
    direct.load_state_dict(old)  # the pre-hook converts weights saved before the noise input
    assert all(torch.equal(a, b) for a, b in zip(direct.state_dict().values(), model.state_dict().values()))
    wrapped = nn.Sequential(build_network("rrdb_sft", "tiny", 2, generator=_gen(9)))  # under a prefix too
    wrapped.load_state_dict({f"0.{k}": v for k, v in old.items()})
    assert torch.equal(wrapped[0].groups[0].sft.shift[0].weight, model.groups[0].sft.shift[0].weight)
    lr, code, _ = example_inputs("rrdb_sft", "tiny", 2, 1, 12, 10, _gen(4))
    with torch.no_grad():
        quiet = model(lr, code, torch.zeros(1, 1, 12, 10))
        loud = model(lr, code, torch.full((1, 1, 12, 10), 15.0))
        assert torch.equal(quiet, loud)
        model.groups[0].sft.shift[0].weight[:, -1] += 0.5
        assert not torch.allclose(model(lr, code, torch.zeros(1, 1, 12, 10)), model(lr, code, torch.full((1, 1, 12, 10), 15.0)))
    assert rrdb_sft.with_noise_input(model.state_dict(), model.code_len).keys() == model.state_dict().keys()


def test_sftmd_weights_from_before_the_noise_input_load_with_it_at_zero() -> None:
    """An SFTMD state without the noise channel loads (under a prefix too) with that channel at zero:
    the same SR whatever the noise map; a noise weight then changes the output."""
    model = build_network("sftmd", "tiny", 3, generator=_gen(5)).eval()
    first_convs = [k for k in model.state_dict() if k.endswith(("scale.0.weight", "shift.0.weight"))]
    assert len(first_convs) == 2 * 3  # tiny: one block (two SFT layers) and the last SFT layer, two branches each
    old = {k: (v[:, :-1] if k in first_convs else v) for k, v in model.state_dict().items()}
    loaded = build_network("sftmd", "tiny", 3, generator=_gen(9)).eval()
    loaded.load_state_dict(old)
    for k in first_convs:
        assert torch.equal(loaded.state_dict()[k][:, :-1], old[k]) and not loaded.state_dict()[k][:, -1].any()
    wrapped = nn.Sequential(build_network("sftmd", "tiny", 3, generator=_gen(9)))
    wrapped.load_state_dict({f"0.{k}": v for k, v in old.items()})
    assert torch.equal(wrapped[0].sft.scale[0].weight, loaded.sft.scale[0].weight)
    lr, code, _ = example_inputs("sftmd", "tiny", 3, 1, 12, 10, _gen(4))
    with torch.no_grad():
        quiet = loaded(lr, code, torch.zeros(1, 1, 12, 10))
        assert torch.equal(quiet, loaded(lr, code, torch.full((1, 1, 12, 10), 15.0)))
        loaded.sft.shift[0].weight[:, -1] += 0.5
        assert not torch.allclose(quiet, loaded(lr, code, torch.full((1, 1, 12, 10), 15.0)))


def test_maconv_is_lighter_than_a_plain_conv() -> None:
    assert count_parameters(manet.MAConv(128, 128)) == 86_464
    assert count_parameters(nn.Conv2d(128, 128, 3, padding=1)) == 147_584
    # MANet + RRDB-SFT together, as published
    total = count_parameters(build_network("manet", "paper", 4)) + count_parameters(
        build_network("rrdb_sft", "paper", 4)
    )
    assert total == 9_896_617 + NOISE_CHANNEL_WEIGHTS  # as published, plus our noise input


def test_sr_parameter_counts_depend_on_scale_only_through_the_upsampler() -> None:
    # RRDB-SFT: last conv 64 → 3·s²; SFTMD: ×4 two conv 64→256, ×3 one 64→576, ×2 one 64→256
    rrdb = {s: count_parameters(build_network("rrdb_sft", "paper", s)) for s in (2, 3, 4)}
    assert rrdb[4] - rrdb[2] == (64 * 9 + 1) * (48 - 12)
    assert rrdb[3] - rrdb[2] == (64 * 9 + 1) * (27 - 12)
    sftmd = {s: count_parameters(build_network("sftmd", "paper", s)) for s in (2, 3, 4)}
    assert sftmd[4] - sftmd[2] == 147_712
    assert sftmd[3] - sftmd[2] == (64 * 9 + 1) * (576 - 256)


CASES = [(net, preset, scale) for net in NETWORKS for preset in ("paper", "small", "tiny") for scale in (2, 3, 4)]


@pytest.mark.parametrize(("network", "preset", "scale"), CASES)
def test_shapes_for_every_preset_and_scale(network: str, preset: str, scale: int) -> None:
    gen = _gen()
    model = build_network(network, preset, scale, generator=gen).eval()
    h, w = 8, 16  # non-square, multiples of 8 (MANet); small, the paper nets are heavy on 2 cores
    args = example_inputs(network, preset, scale, 2 if preset == "tiny" else 1, h, w, gen)
    n = args[0].shape[0]
    with torch.inference_mode():
        out = model(*args)
    spec = get_spec(network)
    (shape,) = spec.output_shapes(preset, scale)
    expected = [
        {"N": n, "H": h, "W": w, f"{scale}*H": scale * h, f"{scale}*W": scale * w}[a] if isinstance(a, str) else a
        for a in shape
    ]
    assert list(out.shape) == expected
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()
    if network == "manet":
        assert out.shape[1] == 441
        assert (out >= 0).all()
        torch.testing.assert_close(out.sum(dim=1), torch.ones(n, h, w), atol=1e-5, rtol=0)
    if network in ("rrdb_sft", "sftmd"):
        assert out.min() >= 0 and out.max() <= 1


@pytest.mark.parametrize("network", list(NETWORKS))
def test_batch_items_are_independent(network: str) -> None:
    """Each sample's output depends on its own inputs only (code stretching keeps the batch axis)."""
    gen = _gen(3)
    model = build_network(network, "tiny", 4, generator=gen).eval()
    args = example_inputs(network, "tiny", 4, 3, 16, 24, gen)
    with torch.inference_mode():
        together = model(*args)
        alone = torch.cat([model(*(a[i : i + 1] for a in args)) for i in range(3)])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-5)
    # and different inputs give different outputs
    assert not torch.allclose(together[0], together[1])


@pytest.mark.parametrize("network", list(NETWORKS))
def test_every_parameter_is_used(network: str) -> None:
    """No dead modules: every parameter gets a non-zero gradient."""
    gen = _gen(1)
    model = build_network(network, "tiny", 4, generator=gen)
    if hasattr(model, "clamp_output"):
        model.clamp_output = False  # clamping zeroes gradients of out-of-range pixels
    args = example_inputs(network, "tiny", 4, 2, 16, 16, gen)
    out = model(*args)
    weights = torch.randn(out.shape, generator=gen)
    (out * weights).sum().backward()
    unused = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert unused == []


def test_init_weights_is_seeded_and_leaves_the_global_rng_alone() -> None:
    state = torch.random.get_rng_state()
    a = build_network("manet", "tiny", 4, generator=_gen(7)).state_dict()
    b = build_network("manet", "tiny", 4, generator=_gen(7)).state_dict()
    c = build_network("manet", "tiny", 4, generator=_gen(8)).state_dict()
    assert torch.equal(torch.random.get_rng_state(), state)
    assert a.keys() == b.keys() == c.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)
    assert all(v.device.type == "cpu" and torch.isfinite(v).all() for v in a.values())
    conv = nn.Conv2d(4, 6, 3)
    init_weights(conv, _gen(7))
    bound = 1 / (4 * 9) ** 0.5
    assert conv.weight.abs().max() <= bound and conv.bias.abs().max() <= bound
    assert conv.weight.std() > bound / 4  # spread over the range, not collapsed
    with pytest.raises(TypeError, match="weight"):
        init_weights(nn.Sequential(nn.Conv2d(3, 3, 1), nn.LayerNorm(3)), _gen(0))


def _input_support(model: nn.Module, args: tuple, out_index: tuple, grad_arg: int = 0) -> torch.Tensor:
    """Boolean (H, W) map of input pixels that influence one output element (random projection)."""
    args = tuple(a.double().clone().requires_grad_(i == grad_arg) for i, a in enumerate(args))
    out = model.double()(*args)
    target = out[out_index]
    proj = torch.randn(target.shape, generator=_gen(5), dtype=torch.float64)
    (target * proj).sum().backward()
    return args[grad_arg].grad.abs().sum(dim=(0, 1)) > 0


def _extent(support: torch.Tensor) -> tuple[int, int, int, int]:
    rows = torch.nonzero(support.any(dim=1)).flatten()
    cols = torch.nonzero(support.any(dim=0)).flatten()
    return int(rows.min()), int(rows.max()), int(cols.min()), int(cols.max())


@pytest.mark.parametrize(("y", "x"), [(32, 32), (33, 33), (32, 33)])
def test_manet_receptive_field_is_22_lr_pixels(y: int, x: int) -> None:
    model = build_network("manet", "tiny", 4, generator=_gen(2))
    args = (torch.rand(1, 3, 64, 64, generator=_gen(4)),)
    support = _input_support(model, args, (slice(None), slice(None), y, x))
    top, bottom, left, right = _extent(support)
    assert bottom - top + 1 == manet.RECEPTIVE_FIELD_LR_PX
    assert right - left + 1 == manet.RECEPTIVE_FIELD_LR_PX
    # even pixels see 11 before and 10 after, odd ones 10 before and 11 after
    assert (top, bottom) == ((y - 11, y + 10) if y % 2 == 0 else (y - 10, y + 11))
    assert max(y - top, bottom - y) <= manet.CONTEXT_LR_PX


def test_manet_tiles_are_exact_with_12_px_context_and_aligned_origins() -> None:
    model = build_network("manet", "tiny", 4, generator=_gen(2)).eval()
    image = torch.rand(1, 3, 64, 72, generator=_gen(9))
    with torch.inference_mode():
        full = model(image)
        tile = model(image[:, :, 8:56, 16:64])  # origin (8, 16): multiples of 8
    c = manet.CONTEXT_LR_PX
    torch.testing.assert_close(tile[:, :, c:-c, c:-c], full[:, :, 8 + c : 56 - c, 16 + c : 64 - c], atol=1e-6, rtol=0)


def test_manet_pad_and_crop() -> None:
    x = torch.rand(2, 3, 13, 21, generator=_gen(6))
    padded, size = manet.pad_to_multiple(x, 8)
    assert padded.shape == (2, 3, 16, 24) and size == (13, 21)
    torch.testing.assert_close(padded[:, :, :13, :21], x)
    torch.testing.assert_close(padded[:, :, 15, :21], x[:, :, 12, :])  # replicate, bottom
    torch.testing.assert_close(padded[:, :, :13, 23], x[:, :, :, 20])  # replicate, right
    assert manet.crop_to(padded, size).shape == x.shape
    same, _ = manet.pad_to_multiple(padded, 8)
    assert same.shape == padded.shape
    model = build_network("manet", "tiny", 4, generator=_gen(0)).eval()
    with torch.inference_mode():
        kernels = manet.estimate_kernels(model, x)
    assert kernels.shape == (2, 441, 13, 21)
    torch.testing.assert_close(kernels.sum(dim=1), torch.ones(2, 13, 21), atol=1e-5, rtol=0)


@pytest.mark.parametrize(("network", "scale"), [("rrdb_sft", 4), ("rrdb_sft", 3), ("sftmd", 4), ("sftmd", 2)])
def test_sr_receptive_radius_bounds_the_influence(network: str, scale: int) -> None:
    """Input pixels beyond the documented radius never influence an output pixel; the radius is tight."""
    model = build_network(network, "tiny", scale, generator=_gen(2))
    model.clamp_output = False
    args = example_inputs(network, "tiny", scale, 1, 64, 64, _gen(4))
    radius = (
        rrdb_sft.receptive_radius_lr_px("tiny", scale)
        if network == "rrdb_sft"
        else ikc.sftmd_receptive_radius_lr_px("tiny", scale)
    )
    cy = cx = 32
    oy, ox = cy * scale + scale // 2, cx * scale  # an SR pixel inside LR pixel (32, 32)
    support = _input_support(model, args, (slice(None), slice(None), oy, ox))
    top, bottom, left, right = _extent(support)
    reach = max(cy - top, bottom - cy, cx - left, right - cx)
    assert reach <= radius
    assert reach >= radius - 1


def test_sftmd_output_is_clamped_unless_switched_off() -> None:
    model = build_network("sftmd", "tiny", 4, generator=_gen(0)).eval()
    with torch.no_grad():
        model.tail.bias.fill_(5.0)  # push every pixel above 1
    args = example_inputs("sftmd", "tiny", 4, 1, 8, 8, _gen(1))
    with torch.inference_mode():
        assert model(*args).max() == 1.0
        model.clamp_output = False
        assert model(*args).max() > 1.0


@pytest.mark.parametrize("network", ["ikc_predictor", "ikc_corrector"])
def test_small_code_nets_see_the_standardised_image_and_the_paper_ones_the_raw_one(network: str) -> None:
    args = example_inputs(network, "tiny", 4, 2, 24, 24, _gen(3))
    image = args[0] * 0.5 + 0.25
    model = build_network(network, "tiny", 4, generator=_gen(4)).eval()
    assert model.normalize_input and not build_network(network, "paper", 4).normalize_input
    with torch.inference_mode():
        normed = model(image, *args[1:])
        model.normalize_input = False
        assert torch.allclose(normed, model(ikc.standardize_image(image), *args[1:]), atol=1e-6)
        assert not torch.allclose(normed, model(image, *args[1:]), atol=1e-6)
    # brightness and contrast do not matter (up to ε); each image on its own; flat images stay finite
    std = ikc.standardize_image(image)
    assert torch.allclose(std.mean(dim=(1, 2, 3)), torch.zeros(2), atol=1e-5)
    assert torch.allclose(ikc.standardize_image(image * 0.6 + 0.3), std, rtol=0.1, atol=0.01)
    both = ikc.standardize_image(torch.cat([image[:1], image[1:] * 0.2]))
    assert torch.allclose(both[0], std[0], atol=1e-6)
    assert torch.isfinite(ikc.standardize_image(torch.full_like(image, 0.4))).all()


def test_unknown_names_are_reported() -> None:
    with pytest.raises(KeyError, match="known: manet"):
        build_network("esrgan", "small", 4)
    with pytest.raises(KeyError, match="paper"):
        build_network("manet", "huge", 4)
    with pytest.raises(ValueError, match="scale"):
        build_network("sftmd", "small", 8)


def _area_matrix(n_lr: int, src: int, dst: int) -> torch.Tensor:
    """(n_lr·dst, n_lr·src) matrix resampling a row of n_lr LR pixels' src sub-samples to dst by
    exact footprint overlap, built from fractions on a common 1/(src·dst) grid (×4 → ×2: pairs)."""
    fine = src * dst  # one LR pixel = src·dst fine cells; a source sub-pixel spans dst, an output one src
    m = torch.zeros(n_lr * dst, n_lr * src, dtype=torch.float64)
    for cell in range(n_lr * fine):
        m[cell // src, cell // dst] += 1.0 / src
    return m


@pytest.mark.parametrize("scale", [2, 3])
def test_rrdb_sft_from_x4_weights_starts_as_the_area_resampled_x4_output(scale):
    """An RRDB-SFT at ×2 or ×3 started from ×4 weights (upsampling conv resampled to its sub-pixel
    grid) gives the ×4 network's output with each pixel the area-weighted mean of the ×4 pixels its
    footprint overlaps (unclamped): the 2×2 box mean at ×2, fractional overlaps at ×3."""
    from engine.archs import rrdb_sft

    torch.manual_seed(scale)
    m4 = rrdb_sft.build("tiny", 4, clamp_output=False)
    m = rrdb_sft.build("tiny", scale, clamp_output=False)
    m.load_state_dict(m.adapt_state_from_scale(m4.state_dict(), 4), strict=True)
    x = torch.rand(1, 3, 10, 10)
    code = 0.1 * torch.randn(1, m4.code_len, 10, 10)
    noise = torch.full((1, 1, 10, 10), 5.0)
    with torch.no_grad():
        sr4 = m4(x, code, noise).to(torch.float64)[0]
        sr = m(x, code, noise).to(torch.float64)[0]
    a = _area_matrix(10, 4, scale)
    expected = torch.einsum("ih,chw,jw->cij", a, sr4, a)
    assert sr.shape == expected.shape == (3, 10 * scale, 10 * scale)
    assert torch.allclose(sr, expected, atol=1e-5)
    if scale == 2:  # the same as plain 2×2 average pooling
        assert torch.allclose(torch.nn.functional.avg_pool2d(sr4, 2), sr, atol=1e-5)


def test_rrdb_sft_adapting_to_its_own_scale_changes_nothing():
    from engine.archs import rrdb_sft

    m4 = rrdb_sft.build("tiny", 4)
    same = m4.adapt_state_from_scale(m4.state_dict(), 4)
    assert torch.equal(same["upsample.0.weight"], m4.state_dict()["upsample.0.weight"])


def test_detail_weights_match_their_numpy_definition() -> None:
    """The corrector's pooling weights (torch) and the pipeline's piece weights (numpy) are one definition."""
    from engine.archs.ikc import detail_weights
    from engine.detail import DETAIL_FLOOR, detail_weights_np

    rng = np.random.default_rng(0)
    for h, w in [(16, 16), (17, 30), (5, 9)]:
        img = rng.random((3, h, w), dtype=np.float32)
        got = detail_weights(torch.from_numpy(img)[None])[0, 0].numpy()
        want = detail_weights_np(img)
        assert got.shape == want.shape == (-(-h // 4), -(-w // 4))
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    assert detail_weights_np(np.zeros((3, 8, 8))) == pytest.approx(np.full((2, 2), DETAIL_FLOOR))


def test_detail_pooling_listens_to_the_textured_part_of_the_image() -> None:
    """Per-location corrections of +1 over a flat half and −1 over a textured half: the plain mean is 0,
    the detail-weighted pooling follows the textured half."""
    from engine.archs.ikc import Corrector, build_corrector

    rng = np.random.default_rng(1)
    img = np.full((1, 3, 32, 64), 0.5, np.float32)
    img[..., 32:] = rng.random((1, 3, 32, 32), dtype=np.float32)
    sr = torch.from_numpy(img)

    class Halves(nn.Module):
        def forward(self, x):  # (N, C, 8, 16) features → +1 left, −1 right, 10 components
            out = torch.ones(x.shape[0], 10, x.shape[2], x.shape[3])
            out[..., x.shape[3] // 2:] = -1.0
            return out

    for pooling, low, high in [(False, -0.01, 0.01), (True, -1.0, -0.9)]:
        net = Corrector(nf=8, normalize_input=True, detail_pooling=pooling)
        net.fuse = Halves()
        value = float(net(sr, torch.zeros(1, 10))[0, 0])
        assert low <= value <= high, (pooling, value)
    assert build_corrector("small", 4).detail_pooling and not build_corrector("small", 2).detail_pooling


@pytest.mark.parametrize("scale", [2, 4])
def test_rrdb_sft_widened_from_small_computes_the_same_image_and_can_learn(scale: int) -> None:
    """``adapt_state_from_preset``: trained small weights in the wider ``medium`` preset give the same
    output (new channels unconnected), and the zeroed connections get gradients, so training uses them."""
    small = build_network("rrdb_sft", "small", scale, generator=_gen()).eval()
    medium = build_network("rrdb_sft", "medium", scale, generator=torch.Generator().manual_seed(9)).eval()
    medium.load_state_dict(medium.adapt_state_from_preset(small.state_dict(), "small"))
    g = torch.Generator().manual_seed(4)
    lr, code = torch.rand((1, 3, 12, 10), generator=g), torch.randn((1, 15, 12, 10), generator=g)
    noise = torch.rand((1, 1, 12, 10), generator=g) * 15.0
    with torch.no_grad():
        torch.testing.assert_close(medium(lr, code, noise), small(lr, code, noise), atol=1e-5, rtol=0)
    medium.clamp_output = False
    medium(lr, code, noise).square().mean().backward()
    trunk = medium.trunk.weight.grad  # old outputs (first 32) from new inputs (32..47): weights 0, gradient not
    assert torch.count_nonzero(medium.trunk.weight[:32, 32:]) == 0
    assert torch.count_nonzero(trunk[:32, 32:]) > 0
    with pytest.raises(ValueError, match="narrower"):
        small.adapt_state_from_preset(medium.state_dict(), "medium")
    with pytest.raises(ValueError, match="depth"):
        build_network("rrdb_sft", "paper", scale).adapt_state_from_preset(small.state_dict(), "small")


@pytest.mark.parametrize("scale", [2, 4])
def test_sftmd_deepened_from_small_computes_the_same_image_and_can_learn(scale: int) -> None:
    """SFTMD ``adapt_state_from_preset``: trained small weights in the deeper ``medium`` preset give the
    same output (each added residual block's last conv is zero), and those convs get gradients."""
    small = build_network("sftmd", "small", scale, generator=_gen()).eval()
    medium = build_network("sftmd", "medium", scale, generator=torch.Generator().manual_seed(9)).eval()
    assert len(medium.blocks) == 2 * len(small.blocks)
    medium.load_state_dict(medium.adapt_state_from_preset(small.state_dict(), "small"))
    g = torch.Generator().manual_seed(4)
    lr, code = torch.rand((1, 3, 12, 10), generator=g), torch.randn((1, 10), generator=g)
    noise = torch.rand((1, 1, 12, 10), generator=g) * 15.0
    with torch.no_grad():
        torch.testing.assert_close(medium(lr, code, noise), small(lr, code, noise), atol=1e-5, rtol=0)
    medium.clamp_output = False
    medium(lr, code, noise).square().mean().backward()
    added = medium.blocks[len(small.blocks)]
    assert torch.count_nonzero(added.conv2.weight) == 0 and torch.count_nonzero(added.conv2.weight.grad) > 0
    assert torch.count_nonzero(added.conv1.weight) > 0  # the rest of an added block starts as initialised
    with pytest.raises(ValueError, match="deepening"):
        small.adapt_state_from_preset(medium.state_dict(), "medium")
    with pytest.raises(ValueError, match="deepening"):
        build_network("sftmd", "paper", scale).adapt_state_from_preset(small.state_dict(), "small")
