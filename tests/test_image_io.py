import numpy as np
import pytest
from PIL import Image

from risam.io.images import ImageInputError, load_image


def test_exif_rotation_gives_the_displayed_orientation(tmp_path):
    pixels = np.zeros((20, 40, 3), dtype=np.uint8)
    pixels[:8, :8] = (255, 0, 0)  # red in the stored top-left corner
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = 6  # displayed rotated 90 degrees clockwise
    path = tmp_path / "rotated.jpg"
    image.save(path, exif=exif, quality=100)
    loaded = np.asarray(load_image(path))
    assert loaded.shape == (40, 20, 3)
    corner = loaded[2, -3]  # stored top-left is displayed top-right
    assert corner[0] > 200 and corner[1] < 60 and loaded[-3, 2, 0] < 60


@pytest.mark.parametrize(
    ("mode", "value", "expected"),
    [("L", 128, (128, 128, 128)), ("I;16", 65535, (255, 255, 255)), ("CMYK", (0, 255, 255, 0), (255, 0, 0))],
)
def test_modes_become_rgb(tmp_path, mode, value, expected):
    suffix = ".jpg" if mode == "CMYK" else ".png"
    path = tmp_path / f"image{suffix}"
    Image.new(mode, (6, 4), value).save(path, **({"quality": 100} if suffix == ".jpg" else {}))
    loaded = np.asarray(load_image(path))
    assert loaded.shape == (4, 6, 3)
    np.testing.assert_allclose(loaded[2, 3], expected, atol=3)


def test_rgba_is_composited_on_white():
    image = Image.new("RGBA", (3, 3), (0, 0, 255, 0))
    image.putpixel((1, 1), (0, 0, 255, 255))
    loaded = np.asarray(load_image(image))
    assert tuple(loaded[0, 0]) == (255, 255, 255) and tuple(loaded[1, 1]) == (0, 0, 255)


def test_one_pixel_and_arrays():
    assert load_image(np.full((1, 1, 3), 7, np.uint8)).size == (1, 1)
    assert np.asarray(load_image(np.full((2, 3), 9, np.uint8))).shape == (2, 3, 3)
    with pytest.raises(ImageInputError, match="uint8"):
        load_image(np.zeros((2, 2, 3), np.float32))


def test_oversized_images_are_refused_before_decoding(tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    Image.new("RGB", (300, 200)).save(path)

    def no_decoding(self):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(Image.Image, "load", no_decoding)
    with pytest.raises(ImageInputError, match=r"300x200 = 60,000 pixels is over the limit of 50,000"):
        load_image(path, max_pixels=50_000)


def test_truncated_and_non_image_files_name_the_file(tmp_path):
    good = tmp_path / "good.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(good)
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(good.read_bytes()[:300])
    with pytest.raises(ImageInputError, match=r"truncated\.jpg: the image data is damaged or truncated"):
        load_image(truncated)
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    with pytest.raises(ImageInputError, match=r"notes\.txt: not an image"):
        load_image(text)
    with pytest.raises(ImageInputError, match="no such file"):
        load_image(tmp_path / "missing.png")
