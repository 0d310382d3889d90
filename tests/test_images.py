"""load_image on every kind of file a learner may feed it. All files are made here."""

import io

import numpy as np
import pytest
from PIL import Image

from course_utils.images import BadImageError, folder_files, load_image

RED = (220, 30, 30)


def save(image: Image.Image, path, **kwargs):
    image.save(path, **kwargs)
    return path


def photo(mode="RGB", size=(40, 30)):
    return Image.new(mode, size, RED if mode == "RGB" else None)


@pytest.mark.parametrize("suffix, fmt", [(".jpg", "JPEG"), (".png", "PNG"), (".webp", "WEBP"), (".bmp", "BMP"),
                                         (".gif", "GIF"), (".tif", "TIFF")])
def test_formats_load_as_rgb(tmp_path, suffix, fmt):
    path = save(photo(), tmp_path / f"red{suffix}", format=fmt)
    image = load_image(path)
    assert image.mode == "RGB" and image.size == (40, 30)
    r, g, b = np.asarray(image)[15, 20]
    assert r > 180 and g < 80 and b < 80


def test_animated_gif_gives_first_frame(tmp_path):
    frames = [Image.new("RGB", (10, 10), c) for c in [(255, 0, 0), (0, 0, 255)]]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert np.asarray(load_image(path))[5, 5, 0] > 200  # red, not blue


def test_greyscale_and_palette(tmp_path):
    grey = load_image(save(Image.new("L", (8, 8), 100), tmp_path / "grey.png"))
    assert grey.mode == "RGB" and tuple(np.asarray(grey)[0, 0]) == (100, 100, 100)
    palette = photo().convert("P", palette=Image.ADAPTIVE)
    assert load_image(save(palette, tmp_path / "pal.png")).mode == "RGB"


def test_transparency_is_composited_on_white(tmp_path):
    rgba = Image.new("RGBA", (8, 8), (0, 0, 0, 0))  # fully transparent black
    rgba.putpixel((0, 0), (0, 0, 255, 255))         # one opaque blue pixel
    image = np.asarray(load_image(save(rgba, tmp_path / "t.png")))
    assert tuple(image[4, 4]) == (255, 255, 255) and tuple(image[0, 0]) == (0, 0, 255)
    la = Image.new("LA", (4, 4), (0, 0))
    assert tuple(np.asarray(load_image(save(la, tmp_path / "la.png")))[0, 0]) == (255, 255, 255)
    transparent_palette = Image.new("P", (4, 4), 0)
    transparent_palette.putpalette([0, 0, 0] * 256)
    path = tmp_path / "tp.gif"
    transparent_palette.save(path, transparency=0)
    assert tuple(np.asarray(load_image(path))[0, 0]) == (255, 255, 255)


def test_cmyk_jpeg(tmp_path):
    path = save(Image.new("CMYK", (8, 8), (0, 255, 255, 0)), tmp_path / "cmyk.jpg")  # red in CMYK
    r, g, b = np.asarray(load_image(path))[4, 4]
    assert r > 200 and g < 60 and b < 60


def test_exif_orientation_is_applied(tmp_path):
    wide = Image.new("RGB", (60, 20), RED)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    path = save(wide, tmp_path / "phone.jpg", exif=exif.tobytes())
    assert Image.open(path).size == (60, 20)
    assert load_image(path).size == (20, 60)


def test_16_bit_greyscale_is_scaled_not_clipped(tmp_path):
    array = np.full((6, 6), 32768, dtype=np.uint16)  # half of the 16-bit range
    path = save(Image.fromarray(array), tmp_path / "deep.png")
    assert Image.open(path).mode.startswith("I")
    value = np.asarray(load_image(path))[0, 0, 0]
    assert 125 <= value <= 130


def test_huge_image_is_refused_before_decoding(tmp_path):
    path = save(Image.new("L", (3000, 2000)), tmp_path / "big.png")
    with pytest.raises(BadImageError, match="big.png: 3000 x 2000 pixels"):
        load_image(path, max_pixels=1_000_000)


def test_large_jpeg_is_decoded_reduced(tmp_path):
    path = save(Image.new("RGB", (4000, 3000), RED), tmp_path / "large.jpg", quality=80)
    image = load_image(path)
    assert max(image.size) <= 2000 and image.size[0] / image.size[1] == pytest.approx(4 / 3, rel=0.01)


def test_truncated_empty_and_non_image_files(tmp_path):
    good = save(Image.effect_noise((200, 200), 50).convert("RGB"), tmp_path / "good.jpg", quality=95)
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    text = tmp_path / "notes.jpg"
    text.write_text("this is not a photo")
    for path, reason in [(truncated, "truncated"), (empty, "empty"), (text, "not an image")]:
        with pytest.raises(BadImageError, match=reason) as info:
            load_image(path)
        assert str(path) in str(info.value)
    with pytest.raises(BadImageError, match="no such file"):
        load_image(tmp_path / "missing.jpg")


def test_bytes_from_an_upload():
    buffer = io.BytesIO()
    photo().save(buffer, format="PNG")
    assert load_image(memoryview(buffer.getvalue()), name="upload.png").size == (40, 30)
    with pytest.raises(BadImageError, match="upload.png: the file is empty"):
        load_image(b"", name="upload.png")


def test_folder_files_lists_visible_files(tmp_path):
    for name in ["b.jpg", "a.txt", ".hidden.jpg"]:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    assert [p.name for p in folder_files(tmp_path)] == ["a.txt", "b.jpg"]
    with pytest.raises(FileNotFoundError):
        folder_files(tmp_path / "nope")
