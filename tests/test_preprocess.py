"""Pictures brought to MNIST's form: MNIST's own test digits, scaled up, inverted, in colour, off-centre
on a large canvas, come back as the model saw the originals."""

import chex
import numpy as np
import pytest
from PIL import Image

from mnistjax import preprocess
from mnistjax.errors import MnistjaxError


def photo_like(digit: np.ndarray, i: int) -> Image.Image:
    """A test digit as a person might have it: 5–10× bigger, dark ink on light paper (every other one),
    RGB (every third), somewhere on a larger canvas."""
    scale = 5 + i % 6
    big = np.asarray(Image.fromarray(digit).resize((28 * scale, 28 * scale), Image.Resampling.BILINEAR), np.float32) / 255
    h, w = 28 * scale + 60 + 7 * (i % 5), 28 * scale + 90 + 11 * (i % 7)
    canvas = np.zeros((h, w), np.float32)
    top, left = (i * 37) % (h - big.shape[0]), (i * 53) % (w - big.shape[1])
    canvas[top:top + big.shape[0], left:left + big.shape[1]] = big
    if i % 2:
        canvas = 1 - canvas
    im = Image.fromarray((canvas * 255).round().astype(np.uint8))
    return im.convert("RGB") if i % 3 == 0 else im


def test_mnist_digits_come_back_close_to_themselves(tiny, tmp_path):
    diffs = []
    for i, digit in enumerate(tiny.test.images[:200]):
        path = tmp_path / f"{i}.{'jpg' if i % 4 == 0 else 'png'}"
        photo_like(digit, i).save(path, quality=95)
        out = preprocess.to_mnist(preprocess.read_image(path))
        assert out.shape == (28, 28) and out.dtype == np.float32 and 0 <= out.min() and out.max() == pytest.approx(1)
        diffs.append(np.abs(out - digit / 255).mean())
    assert np.mean(diffs) < 0.05  # MNIST's mean pixel is ≈ 0.13


def test_the_centre_of_mass_is_the_frames_and_the_digit_fits_20_pixels():
    canvas = np.ones((300, 200), np.float32)
    canvas[20:120, 150:170] = 0  # a tall bar near a corner, dark on light
    out = preprocess.to_mnist(canvas)
    rows, cols = np.nonzero(out > 0.5)
    assert rows.max() - rows.min() + 1 == 20 and cols.max() - cols.min() + 1 <= 5
    com = [(out.sum(1) * np.arange(28)).sum() / out.sum(), (out.sum(0) * np.arange(28)).sum() / out.sum()]
    np.testing.assert_allclose(com, [14, 14], atol=0.6)


def test_blank_and_unreadable_pictures_are_clear_errors(tmp_path):
    with pytest.raises(MnistjaxError, match="blank image"):
        preprocess.to_mnist(np.full((50, 50), 0.7, np.float32))
    (tmp_path / "x.png").write_bytes(b"not a png")
    with pytest.raises(MnistjaxError, match="x.png: not a readable image"):
        preprocess.read_image(tmp_path / "x.png")
    with pytest.raises(MnistjaxError, match="y.png: no such file; expected a PNG or JPEG"):
        preprocess.read_image(tmp_path / "y.png")


def test_transparent_and_sixteen_bit_pictures(tmp_path):
    rgba = np.zeros((40, 40, 4), np.uint8)
    rgba[10:30, 18:22] = [0, 0, 0, 255]  # black ink, transparent elsewhere: laid on white paper
    Image.fromarray(rgba).save(tmp_path / "t.png")
    gray = preprocess.read_image(tmp_path / "t.png")
    assert gray[0, 0] == 1.0 and gray[20, 20] == 0.0
    Image.fromarray((np.eye(30) * 65535).astype(np.uint16)).save(tmp_path / "w.png")
    assert preprocess.read_image(tmp_path / "w.png").max() == 1.0


def test_a_model_sees_the_pictures_as_it_saw_the_originals(tiny, tmp_path):
    """Predictions on photo-like pictures of 300 test digits agree with those on the digits themselves."""
    from mnistjax import experiment, saved
    from mnistjax.config import RunConfig

    report = experiment.train(RunConfig(model="cnn", classes="all", opt="adam", lr=3e-3, schedule="onecycle", epochs=3,
                                     batch_size=64, augment=1), experiment.prepare(tiny, "all"), progress=False)
    model = saved.load_model(saved.save_training(tmp_path / "m.safetensors", report))
    digits = tiny.test.images[::2][:300]
    pictures = []
    for i, digit in enumerate(digits):
        photo_like(digit, i).save(tmp_path / "p.png")
        pictures.append(preprocess.to_mnist(preprocess.read_image(tmp_path / "p.png")))
    original = saved.probabilities(model, digits / np.float32(255)).argmax(1)
    seen = saved.probabilities(model, np.stack(pictures)).argmax(1)
    assert (original == seen).mean() >= 0.95, (original == seen).mean()


def _moments(im):
    r, c = np.mgrid[:im.shape[0], :im.shape[1]]
    m = im.sum()
    mr, mc = (r * im).sum() / m, (c * im).sum() / m
    return mr, mc, ((r - mr) * (c - mc) * im).sum() / ((r - mr) ** 2 * im).sum()


class DeskewTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_deskew_straightens_a_slanted_stroke_and_centres_it(self):
        x = np.zeros((2, 28, 28), np.float32)
        for i in range(4, 22):  # a stroke leaning right by 1 column every 2 rows, off centre
            x[0, i, 6 + (21 - i) // 2: 9 + (21 - i) // 2] = 1.0
        x[1, 6:22, 13:15] = 1.0  # upright already
        out = np.asarray(self.variant(preprocess.deskew)(x))
        chex.assert_shape(out, (2, 28, 28))
        assert abs(_moments(x[0])[2]) > 0.4
        for im, before in zip(out, x):
            mr, mc, slant = _moments(im)
            assert abs(slant) < 0.05 and abs(mr - 14) < 0.6 and abs(mc - 14) < 0.6  # upright, centred as scipy does
            np.testing.assert_allclose(im.sum(), before.sum(), rtol=0.05)  # the ink stays


def test_deskew_keeps_uint8_images_uint8(tiny):
    out = np.asarray(preprocess.deskew(tiny.test.images[:5]))
    assert out.dtype == np.uint8 and out.shape == (5, 28, 28)
    assert np.all(np.abs([_moments(o.astype(np.float64))[2] for o in out]) < 0.1)
