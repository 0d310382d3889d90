"""The pets resize cache reads photos exactly as prediction does: orientation, colours, size guard.

``pets_prep.resize_image`` makes the 256-pixel copies that lessons 5-7 train on; lesson 7 predicts
with ``images.load_image``. If the two read a photo differently, the model is trained on one
picture and asked about another. All files are made here.
"""

import numpy as np
import pytest
from PIL import Image, JpegImagePlugin

from course_utils import images, pets_prep
from course_utils.images import BadImageError


def quadrants(size=(500, 375)) -> Image.Image:
    """Four colours, one per corner, so that any turn or flip shows."""
    width, height = size
    picture = Image.new("RGB", size, (220, 30, 30))
    picture.paste((30, 200, 40), (width // 2, 0, width, height // 2))
    picture.paste((30, 40, 220), (0, height // 2, width // 2, height))
    picture.paste((240, 220, 30), (width // 2, height // 2, width, height))
    return picture


def cached(src, tmp_path, **kwargs) -> Image.Image:
    dst = tmp_path / "cache" / src.name
    dst.parent.mkdir(exist_ok=True)
    pets_prep.resize_image(src, dst, **kwargs)
    with Image.open(dst) as copy:
        assert copy.format == "JPEG"
        return copy.convert("RGB")


def as_prediction_sees_it(src, size) -> np.ndarray:
    return np.asarray(images.load_image(src).resize(size, Image.Resampling.BICUBIC), dtype=float)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_a_rotated_jpeg_is_the_same_upright_picture_in_the_cache_and_for_prediction(tmp_path, orientation):
    exif = Image.Exif()
    exif[images.ORIENTATION] = orientation
    src = tmp_path / f"phone_{orientation}.jpg"
    quadrants().save(src, exif=exif.tobytes(), quality=95)
    copy = cached(src, tmp_path)
    expected_size = (341, 256) if orientation <= 4 else (256, 341)  # 5 to 8 stand the photo up
    with Image.open(tmp_path / "cache" / src.name) as saved:
        assert saved.getexif().get(images.ORIENTATION) in (None, 1)  # upright, and not turned again when read
    assert copy.size == expected_size
    difference = np.abs(np.asarray(copy, dtype=float) - as_prediction_sees_it(src, copy.size))
    assert difference.mean() < 3  # the same picture, up to JPEG's rounding (a wrong turn gives about 100)


def test_the_cache_still_lets_libjpeg_decode_big_photos_at_reduced_size(tmp_path, monkeypatch):
    drafts = []
    real_draft = JpegImagePlugin.JpegImageFile.draft

    def spy(self, mode, size):
        drafts.append(size)
        return real_draft(self, mode, size)

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    src = tmp_path / "big.jpg"
    quadrants((3000, 2000)).save(src, quality=90)
    assert cached(src, tmp_path).size == (384, 256)
    assert drafts == [(256, 256)]  # decoded at 1/4 (750 x 500), then resized


def test_the_cache_has_the_same_size_guard_as_prediction(tmp_path):
    bomb = tmp_path / "bomb.jpg"  # a PNG named .jpg, as a few of the real pets photos are
    Image.new("1", (14_000, 14_000)).save(bomb, format="PNG")
    with pytest.raises(BadImageError, match="bomb.jpg: far too many pixels"):
        pets_prep.resize_image(bomb, tmp_path / "out.jpg")
    for size, kept in [((100_000, 1), (4, 1)), ((1, 40_000), (1, 4)), ((40_000, 3), (12, 3))]:
        banner = tmp_path / f"banner_{size[0]}x{size[1]}.jpg"
        Image.new("RGB", size, (30, 200, 40)).save(banner, format="PNG")  # JPEG cannot even hold 100,000 wide
        assert cached(banner, tmp_path).size == kept  # the middle 4:1, at most short_side on its short side


def test_the_cache_composites_transparency_and_scales_16_bit_like_prediction(tmp_path):
    clear = tmp_path / "clear.jpg"
    Image.new("RGBA", (300, 300), (0, 0, 0, 0)).save(clear, format="PNG")
    assert np.asarray(cached(clear, tmp_path)).min() > 245  # white, as load_image shows it (not black)
    deep = tmp_path / "deep.jpg"
    Image.fromarray(np.full((300, 300), 32768, dtype=np.uint16)).save(deep, format="PNG")
    assert abs(float(np.asarray(cached(deep, tmp_path)).mean()) - 128) < 3  # scaled, not clipped to white
