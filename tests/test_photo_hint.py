"""The studio's one-line hint when a method trained on clean images only runs on a noisy or JPEG photo."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from PIL import Image as PILImage

from app.jobs import photo_input_hint
from engine.degradation.degrade import add_gaussian_noise, quantize_u8
from engine.errors import ModelError
from engine.imageio import Image, decode_image_bytes
from engine.modelcards import find_card
from engine.noise import estimate_noise

PHOTO = {"prob": 0.5, "max_sigma_255": 15.0, "jpeg_prob": 0.3, "jpeg_q": [70, 100]}
CLEAN = {"prob": 0.0, "max_sigma_255": 15.0, "jpeg_prob": 0.0, "jpeg_q": [70, 100]}


def _models(**noise_by_network) -> SimpleNamespace:
    """A stand-in ModelSet whose cards (the shipped ×4 MANet card, renamed) record ``noise``."""
    base = find_card("manet", 4)
    return SimpleNamespace(cards={n: replace(base, network=n, training={"noise": v}) for n, v in noise_by_network.items()})


def _smooth(h: int = 40, w: int = 48) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    return np.stack([0.5 + 0.3 * np.sin(x / 7), 0.5 + 0.3 * np.cos(y / 5), 0.4 + 0.2 * np.sin((x + y) / 9)], axis=2)


def _jpeg(rgb: np.ndarray, quality: int) -> Image:
    buf = io.BytesIO()
    PILImage.fromarray((rgb * 255).round().astype(np.uint8)).save(buf, "JPEG", quality=quality)
    return decode_image_bytes(buf.getvalue())


def test_the_card_flag_reads_the_training_noise_record():
    card = find_card("manet", 4)
    assert replace(card, training={"noise": PHOTO}).trained_on_photo_degradations
    assert replace(card, training={"noise": {**CLEAN, "jpeg_prob": 0.2}}).trained_on_photo_degradations
    assert not replace(card, training={"noise": CLEAN}).trained_on_photo_degradations
    assert not replace(card, training={}).trained_on_photo_degradations


def test_a_clean_trained_method_on_a_noisy_or_jpeg_input_gets_the_photo_trained_one_named():
    sets = {"ikc": _models(ikc_predictor=CLEAN, sftmd=CLEAN, ikc_corrector=CLEAN),
            "manet": _models(manet=PHOTO, rrdb_sft=PHOTO)}

    def models_for(method, scale):
        return sets.get(method)

    clean = Image(_smooth())
    noisy = Image(quantize_u8(add_gaussian_noise(_smooth(), 9.0, np.random.default_rng(1))).astype(np.float32))
    jpeg = _jpeg(_smooth(), 75)
    hint = photo_input_hint("ikc", 4, jpeg, estimate_noise(jpeg.rgb_f32), models_for)
    assert hint is not None and "JPEG q 75" in hint and "MANet + RRDB-SFT" in hint and "IKC ×4" in hint
    hint = photo_input_hint("ikc", 4, noisy, estimate_noise(noisy.rgb_f32), models_for)
    assert hint is not None and "noise ≈ 8.9/255:" in hint and "JPEG q" not in hint
    assert photo_input_hint("ikc", 4, clean, estimate_noise(clean.rgb_f32), models_for) is None
    assert photo_input_hint("ikc", 4, _jpeg(_smooth(), 95), None, models_for) is None  # q 95: not compressed enough
    assert photo_input_hint("manet", 4, jpeg, None, models_for) is None  # the photo-trained method itself
    assert photo_input_hint("bicubic", 4, jpeg, None, models_for) is None  # no networks
    # one of its networks saw noisy inputs: not "clean images only"
    sets["ikc"] = _models(ikc_predictor=PHOTO, sftmd=CLEAN, ikc_corrector=CLEAN)
    assert photo_input_hint("ikc", 4, jpeg, None, models_for) is None
    sets["ikc"] = _models(ikc_predictor=CLEAN, sftmd=CLEAN, ikc_corrector=CLEAN)
    sets["manet"] = _models(manet=PHOTO, rrdb_sft=CLEAN)  # no photo-trained alternative to name
    assert photo_input_hint("ikc", 4, jpeg, None, models_for) is None

    def missing(method, scale):
        if method == "manet":
            raise ModelError("no manet model for x4")
        return sets[method]

    assert photo_input_hint("ikc", 4, jpeg, None, missing) is None  # a hint never costs the result


def test_the_session_shows_a_runs_hint_as_a_notice():
    from tests.test_app_session import BICUBIC, session_with_image

    session, view, engine, _entry = session_with_image()
    job_id = session.start_run(BICUBIC, "cpu")
    output = engine.run(job_id)
    assert output.hint is None  # bicubic on a PNG-like image: nothing to say
    output.hint = "IKC ×4 was trained on clean images only, …"
    session.job_finished(job_id, output)
    assert view.named("notify")[-1] == ("IKC ×4 was trained on clean images only, …",)
