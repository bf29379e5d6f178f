"""One photo reader: training, evaluation, packing and inference see a photo alike.

The reference is the decoder training and evaluation used before they shared
:func:`dlnet.io.imageio.read_rgb8` (Pillow: EXIF transpose, convert to RGB; bicubic resize of the
shorter side, centre crop), so ordinary JPEGs read exactly as they did.
"""

import numpy as np
import pytest
from PIL import Image, ImageOps

from dlnet.train.data import PhotoDataset
from dlnet.evaluate.protocol import Truth, _Photos
from dlnet.io.imageio import read_image, read_rgb8, resize_crop

from conftest import gradient_photo


def _old_decoder(path, size=None) -> np.ndarray:
    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im).convert("RGB")
    if size is not None:
        w, h = im.size
        scale = size / min(w, h)
        im = im.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.BICUBIC)
        x, y = (im.width - size) // 2, (im.height - size) // 2
        im = im.crop((x, y, x + size, y + size))
    return np.asarray(im)


@pytest.fixture(params=["rgb", "grey", "exif-rotated"])
def jpeg(request, tmp_path):
    im = Image.fromarray(gradient_photo(48, 80, seed=3))
    path = tmp_path / f"{request.param}.jpg"
    if request.param == "grey":
        im.convert("L").save(path, quality=90)
    elif request.param == "exif-rotated":
        exif = Image.Exif()
        exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
        im.save(path, quality=90, exif=exif)
    else:
        im.save(path, quality=90)
    return path


def test_training_evaluation_and_inference_read_the_same_rgb(jpeg):
    full = _old_decoder(jpeg)
    if jpeg.stem == "exif-rotated":
        assert full.shape == (80, 48, 3)  # the rotation was applied
    inference = read_image(jpeg).rgb
    assert inference.dtype == np.uint8 and np.array_equal(inference, full)
    assert np.array_equal(read_rgb8(jpeg), full)
    evaluation = _Photos([Truth("x", jpeg)], {}, None)[0]["truth"]
    assert np.array_equal(evaluation, full)

    crop = _old_decoder(jpeg, 32)
    assert np.array_equal(resize_crop(read_rgb8(jpeg), 32), crop)
    training = PhotoDataset([jpeg], 32, train=False, skip_grey=False)[0].permute(1, 2, 0).numpy()
    evaluation = _Photos([Truth("x", jpeg)], {}, 32)[0]["truth"]
    assert np.array_equal(training, crop) and np.array_equal(evaluation, crop)


def test_training_reads_16_bit_photos_as_inference_does(tmp_path):
    grey16 = (np.linspace(0, 65535, 40 * 40).reshape(40, 40)).astype(np.uint16)
    Image.fromarray(grey16).save(tmp_path / "deep.png")
    training = PhotoDataset([tmp_path / "deep.png"], 40, train=False, skip_grey=False)[0]
    expected = np.round(read_image(tmp_path / "deep.png").rgb * 255).astype(np.uint8)
    assert np.array_equal(training.permute(1, 2, 0).numpy(), expected)
    assert training.max() == 255  # the full range, not clipped at 255 of 65535


def test_a_bad_file_is_one_clear_skip(tmp_path, capsys):
    (tmp_path / "bad.jpg").write_bytes(b"not a jpeg")
    assert PhotoDataset([tmp_path / "bad.jpg"], 32, train=True)[0] == "bad"
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bad.jpg: cannot read image: not an image" in err
