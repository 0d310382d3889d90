"""load_image on every kind of file a learner may feed it. All files are made here."""

import gzip
import io
import tarfile
import zipfile

import numpy as np
import pytest
from PIL import Image, TiffImagePlugin

from course_utils import images
from course_utils.images import BadImageError, folder_files, load_image

RED, GREEN, BLUE = (220, 30, 30), (30, 200, 40), (30, 40, 220)


def save(image: Image.Image, path, **kwargs):
    image.save(path, **kwargs)
    return path


def photo(mode="RGB", size=(40, 30)):
    return Image.new(mode, size, RED if mode == "RGB" else None)


def reason_for(path_or_bytes, name=None) -> str:
    with pytest.raises(BadImageError) as info:
        load_image(path_or_bytes, name=name)
    return info.value.reason


# --- Pictures that load ---------------------------------------------------------------------------

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


def sideways(size=(60, 20)) -> tuple[Image.Image, bytes]:
    """A wide photo, green on its left edge, with EXIF 6: "turn 90 degrees clockwise to show"."""
    wide = Image.new("RGB", size, RED)
    wide.paste(GREEN, (0, 0, size[0] // 6, size[1]))
    exif = Image.Exif()
    exif[images.ORIENTATION] = 6
    return wide, exif.tobytes()


def test_exif_orientation_is_applied(tmp_path):
    wide, exif = sideways()
    path = save(wide, tmp_path / "phone.jpg", exif=exif)
    assert Image.open(path).size == (60, 20)
    upright = load_image(path)
    assert upright.size == (20, 60)
    assert np.asarray(upright)[:5, :, 1].mean() > 150  # the green left edge is now on top


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_a_loaded_picture_is_not_turned_a_second_time(tmp_path, fmt):
    """``Predictor.predict`` prepares what ``load_image`` gave once more: the orientation must be used up."""
    wide, exif = sideways()
    path = save(wide, tmp_path / f"phone.{fmt.lower()}", format=fmt, exif=exif)
    upright = load_image(path)
    assert upright.size == (20, 60) and images.UPRIGHT.get(upright.getexif().get(images.ORIENTATION)) is None
    again = images.prepare_picture(upright)
    assert again.size == (20, 60) and np.array_equal(np.asarray(again), np.asarray(upright))


def test_16_bit_greyscale_is_scaled_not_clipped(tmp_path):
    array = np.full((6, 6), 32768, dtype=np.uint16)  # half of the 16-bit range
    path = save(Image.fromarray(array), tmp_path / "deep.png")
    assert Image.open(path).mode.startswith("I")
    value = np.asarray(load_image(path))[0, 0, 0]
    assert 125 <= value <= 130


def test_32_bit_greyscale_keeps_its_8_bit_range():
    floats = Image.fromarray(np.full((4, 4), 200.0, dtype=np.float32))  # mode F, values within 0..255
    assert tuple(np.asarray(images.to_rgb(floats))[0, 0]) == (200, 200, 200)


# --- Big pictures: refused before decoding, or decoded and shrunk at once -------------------------

def test_huge_image_is_refused_before_decoding(tmp_path):
    path = save(Image.new("L", (3000, 2000)), tmp_path / "big.png")
    with pytest.raises(BadImageError, match="big.png: 3000 x 2000 pixels"):
        load_image(path, max_pixels=1_000_000)


def test_large_jpeg_is_decoded_reduced(tmp_path):
    path = save(Image.new("RGB", (4000, 3000), RED), tmp_path / "large.jpg", quality=80)
    image = load_image(path)
    assert max(image.size) <= 2000 and image.size[0] / image.size[1] == pytest.approx(4 / 3, rel=0.01)


def test_a_jpeg_is_counted_at_the_size_it_is_decoded_at(tmp_path):
    path = save(Image.new("RGB", (4096, 3072), RED), tmp_path / "phone.jpg", quality=80)
    assert load_image(path, max_pixels=4_000_000).size == (2048, 1536)  # 12.6 Mpx in the file, 3.1 decoded
    with pytest.raises(BadImageError, match="4096 x 3072 pixels"):
        load_image(path, max_pixels=4_000_000, decode_size=4096)  # asked for full size: counted in full


@pytest.mark.parametrize("mode, colour", [("RGB", RED), ("RGBA", RED + (255,)), ("P", None), ("1", 1)])
def test_big_pictures_of_every_mode_are_shrunk_right_after_decoding(tmp_path, mode, colour):
    picture = Image.new(mode, (4200, 2100), colour)
    if mode == "P":
        picture.putpalette([*RED, *GREEN] * 128)
    image = load_image(save(picture, tmp_path / "big.png"))
    assert image.size == (2100, 1050)  # halved: the short side stays at least DECODE_SIZE (1024)
    expected = (255, 255, 255) if mode == "1" else RED
    assert tuple(np.asarray(image)[500, 1000]) == expected


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L"])
def test_shrinking_in_bands_gives_what_reduce_gives_on_the_whole(mode, monkeypatch):
    monkeypatch.setattr(images, "BAND_PIXELS", 500_000)  # many bands, the last one short
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (2051, 4101, 4), dtype=np.uint8)).convert(mode)
    shrunk = images.shrink(noise)
    assert shrunk.mode == mode and shrunk.size == (2051, 1026)  # blocks of 2 x 2, partial ones at the edges
    assert np.array_equal(np.asarray(shrunk), np.asarray(noise.reduce(2)))


def test_big_16_bit_greyscale_is_shrunk_and_scaled(tmp_path):
    ramp = np.tile(np.linspace(0, 65535, 4200).astype(np.uint16), (2100, 1))
    image = load_image(save(Image.fromarray(ramp), tmp_path / "deep.png"))
    assert image.size == (2100, 1050)
    row = np.asarray(image)[0, :, 0].astype(int)
    assert row[0] <= 1 and row[-1] >= 254 and row[1050] == pytest.approx(127.5, abs=1.5)  # scaled, not clipped


# --- Extreme shapes keep their middle (the guard against "resize the short side" blowing them up) --

@pytest.mark.parametrize("size, loaded", [((100_000, 1), (4, 1)), ((1, 100_000), (1, 4)), ((40_000, 3), (12, 3))])
def test_extreme_shapes_are_cut_to_4_to_1(tmp_path, size, loaded):
    path = save(Image.new("RGB", size, GREEN), tmp_path / "banner.png")
    assert path.stat().st_size < 5_000  # a few kilobytes of file ...
    image = load_image(path)
    assert image.size == loaded and image.info["cropped_from"] == size  # ... never billions of pixels
    assert images.describe_size(image) == f"{loaded[0]} x {loaded[1]} pixels, the middle of {size[0]} x {size[1]}"


def test_the_middle_is_kept(tmp_path):
    strip = Image.new("RGB", (1200, 100), RED)
    strip.paste(GREEN, (400, 0, 800, 100))
    strip.paste(BLUE, (800, 0, 1200, 100))
    image = load_image(save(strip, tmp_path / "panorama.png"))
    assert image.size == (400, 100)
    assert (np.abs(np.asarray(image).astype(int) - GREEN) <= 1).all()  # all of the middle, only the middle


def test_a_sideways_strip_is_turned_upright_then_described_upright(tmp_path):
    wide, exif = sideways((400, 40))
    image = load_image(save(wide, tmp_path / "sideways.jpg", exif=exif))
    assert image.size == (40, 160) and image.info["cropped_from"] == (40, 400)
    assert images.describe_size(load_image(save(photo(), tmp_path / "ok.png"))) == "40 x 30 pixels"


def test_a_pil_image_given_directly_is_prepared_the_same_way():
    banner = Image.new("RGBA", (50_000, 2), (0, 0, 0, 0))
    prepared = images.prepare_picture(banner)
    assert prepared.mode == "RGB" and prepared.size == (8, 2)
    assert tuple(np.asarray(prepared)[0, 0]) == (255, 255, 255)
    assert banner.size == (50_000, 2)  # the caller's picture is left alone


# --- Phone formats ----------------------------------------------------------------------------------

def test_heic_photos_load_upright(tmp_path):
    pillow_heif = pytest.importorskip("pillow_heif")
    buffer = io.BytesIO()
    pillow_heif.from_pillow(photo(size=(64, 48))).save(buffer, quality=90)
    path = tmp_path / "IMG_0001.HEIC"
    path.write_bytes(buffer.getvalue())
    assert images.sniff(path.read_bytes()[:64]) == "heif"
    image = load_image(path)
    assert image.mode == "RGB" and image.size == (64, 48)
    r, g, b = np.asarray(image)[24, 32]
    assert r > 180 and g < 80 and b < 80


def test_heic_exif_orientation_is_applied(tmp_path):
    pillow_heif = pytest.importorskip("pillow_heif")
    pillow_heif.register_heif_opener()  # only to write one; load_image registers it by itself
    wide, exif = sideways((96, 32))
    path = save(wide, tmp_path / "sideways.heic", format="HEIF", exif=exif, quality=90)
    upright = load_image(path)
    assert upright.size == (32, 96)
    assert np.asarray(upright)[:8, :, 1].mean() > 150  # the green left edge on top, as for the JPEG
    assert load_image(path.read_bytes(), name="sideways.heic").size == (32, 96)


def test_heic_without_pillow_heif_names_the_format_and_the_fix(tmp_path, monkeypatch):
    Image.init()  # every plugin registered now, so none is registered into the stand-in list below
    monkeypatch.setattr(images, "_heif_opener", lambda: False)
    monkeypatch.delitem(Image.OPEN, "HEIF", raising=False)
    monkeypatch.setattr(Image, "ID", [i for i in Image.ID if i != "HEIF"])
    path = tmp_path / "IMG_0002.HEIC"
    path.write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(200))
    reason = reason_for(path)
    assert "HEIC" in reason and "pip install pillow-heif" in reason and "JPEG" in reason


@pytest.mark.skipif(not images._pillow_reads_avif(), reason="this Pillow has no AVIF support")
def test_avif_loads(tmp_path):
    image = load_image(save(photo(size=(64, 48)), tmp_path / "web.avif", quality=90))
    r, g, b = np.asarray(image)[24, 32]
    assert image.size == (64, 48) and r > 180 and g < 80 and b < 80


@pytest.mark.skipif(not images._pillow_reads_avif(), reason="this Pillow has no AVIF support")
def test_avif_exif_orientation_is_applied(tmp_path):
    wide, exif = sideways((96, 32))
    upright = load_image(save(wide, tmp_path / "sideways.avif", exif=exif, quality=90))
    assert upright.size == (32, 96) and np.asarray(upright)[:8, :, 1].mean() > 150  # green edge on top


def test_avif_without_support_says_how_to_get_it(monkeypatch):
    monkeypatch.delitem(Image.OPEN, "AVIF", raising=False)  # as in a Pillow before 11.3
    reason = images._unreadable("avif")
    assert "AVIF" in reason and "Pillow 11.3" in reason and "JPEG or PNG" in reason


def test_a_damaged_heic_is_called_damaged_when_pillow_heif_is_there(tmp_path):
    pytest.importorskip("pillow_heif")
    path = tmp_path / "IMG_0010.HEIC"
    path.write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(200))
    reason = reason_for(path)
    assert "HEIC/HEIF" in reason and "damaged" in reason and "pip install" not in reason


def test_a_photoshop_file_with_its_flattened_picture_loads_and_a_damaged_one_says_what_it_is(tmp_path):
    height, width = 4, 6
    header = b"8BPS" + (1).to_bytes(2, "big") + bytes(6) + (3).to_bytes(2, "big") + height.to_bytes(4, "big")
    header += width.to_bytes(4, "big") + (8).to_bytes(2, "big") + (3).to_bytes(2, "big")  # 8-bit RGB
    planes = b"".join(bytes([c]) * (width * height) for c in RED)  # raw (uncompressed) R, G and B planes
    psd = header + bytes(12) + (0).to_bytes(2, "big") + planes
    good = tmp_path / "design.psd"
    good.write_bytes(psd)
    assert tuple(np.asarray(load_image(good))[1, 1]) == RED
    damaged = tmp_path / "broken.psd"
    damaged.write_bytes(psd[:30])
    reason = reason_for(damaged)
    assert "Photoshop" in reason and ("damaged" in reason or "JPEG or PNG" in reason)


@pytest.mark.parametrize("name, data", [
    ("IMG_0003.CR2", b"II*\x00\x10\x00\x00\x00CR\x02\x00" + bytes(100)),         # Canon: a TIFF with "CR"
    ("IMG_0004.CR3", b"\x00\x00\x00\x18ftypcrx \x00\x00\x00\x01crx isom" + bytes(50)),
    ("DSCF0005.RAF", b"FUJIFILMCCD-RAW 0201FF383501" + bytes(100)),
    ("P0006.ORF", b"IIRO\x08\x00\x00\x00" + bytes(100)),
])
def test_camera_raw_files_say_how_to_convert(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    reason = reason_for(path)
    assert "RAW" in reason and "JPEG" in reason


def test_tiff_based_raw_files_are_told_apart_from_tiffs(tmp_path):
    nikon = save(photo(), tmp_path / "DSC_0007.NEF", format="TIFF")  # Nikon's NEF is a TIFF inside
    assert "RAW" in reason_for(nikon)
    dng_tag = TiffImagePlugin.ImageFileDirectory_v2()
    dng_tag[50706] = b"\x01\x04\x00\x00"  # DNGVersion 1.4
    dng_tag.tagtype[50706] = 1
    dng = save(photo(), tmp_path / "renamed_dng.tif", format="TIFF", tiffinfo=dng_tag)
    assert "RAW" in reason_for(dng)
    assert load_image(save(photo(), tmp_path / "scan.tif", format="TIFF")).size == (40, 30)


# --- Clear reasons for everything that is not a picture ---------------------------------------------

def zip_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("cat.jpg", b"not really")
    return buffer.getvalue()


def tar_bytes(mode: str = "w") -> bytes:
    """A tar archive holding one small cat.jpg; ``mode="w:gz"`` makes it a .tar.gz."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as archive:
        info = tarfile.TarInfo("cat.jpg")
        info.size = 3
        archive.addfile(info, io.BytesIO(b"abc"))
    return buffer.getvalue()


MP4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + b"\x00\x00\x00\x08mdat"
MOV = b"\x00\x00\x00\x14ftypqt  \x00\x00\x02\x00qt  " + b"\x00\x00\x00\x08wide" + b"\x00\x00\x00\x08mdat"
OLD_MOV = b"\x00\x00\x00\x08wide\x00\x00\x00\x08mdat" + bytes(20)


@pytest.mark.parametrize("name, data, words", [
    ("report.jpg", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n", ["PDF", "export"]),
    ("logo.png", b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="10"/>', ["SVG", "PNG"]),
    ("icon.svg", b'<svg xmlns="http://www.w3.org/2000/svg"><circle r="4"/></svg>', ["SVG"]),
    ("cat.jpg", b"<!DOCTYPE html>\n<html><head><title>Cute cat</title></head><body></body></html>",
     ["web page", "Save image as"]),
    ("notes.jpg", "Shopping list: milk, eggs, café".encode(), ["text file", "not an image"]),
    ("photos.zip", zip_bytes(), ["ZIP", "unpack"]),
    ("photos.jpg", tar_bytes("w:gz"), ["gzip", "unpack"]),
    ("photos.tar", tar_bytes(), ["tar archive", "unpack"]),
    ("IMG_0008.MP4", MP4, ["video", "screenshot"]),
    ("IMG_0009.MOV", MOV, ["video"]),
    ("clip.jpg", OLD_MOV, ["video"]),
    ("song.jpg", b"ID3\x03\x00\x00\x00" + bytes(100), ["sound"]),
    ("Thumbs.db", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(100), ["Thumbs.db"]),
    ("setup.jpg", b"MZ\x90\x00\x03" + bytes(100), ["program"]),
    ("photo.jxl", b"\xff\x0a\xfa\x7f" + bytes(50), ["JPEG XL", "JPEG or PNG"]),
    ("half.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", ["PNG", "damaged or truncated"]),
    ("mystery.bin", b"\x13\x37" + np.random.default_rng(0).bytes(1000), ["not an image"]),
])
def test_non_images_get_a_reason_from_their_first_bytes_not_their_name(tmp_path, name, data, words):
    path = tmp_path / name
    path.write_bytes(data)
    for source in (path, data):  # a file on disk, or the same bytes from an upload
        reason = reason_for(source, name=name)
        assert all(word in reason for word in words), reason
    with pytest.raises(BadImageError) as info:
        load_image(path)
    assert str(path) in str(info.value)


def test_an_svg_is_named_as_such_even_when_its_first_bytes_do_not_say_so(tmp_path):
    long_prolog = b'<?xml version="1.0"?>\n<!-- ' + b"made by a drawing program " * 200 + b"-->\n<svg/>"
    assert images.sniff(long_prolog[:images.HEAD_BYTES]) == "text"  # the <svg> tag is beyond what is read
    drawing = tmp_path / "drawing.svg"
    drawing.write_bytes(long_prolog)
    assert "SVG" in reason_for(drawing) and "export it as PNG" in reason_for(drawing)
    compressed = tmp_path / "drawing.svgz"
    with gzip.open(compressed, "wb") as f:
        f.write(long_prolog)
    assert "SVG" in reason_for(compressed)


def test_a_file_that_starts_like_a_picture_but_cannot_be_read_says_what_to_try(tmp_path):
    odd = tmp_path / "scan.tif"
    odd.write_bytes(b"II*\x00" + (8).to_bytes(4, "little") + bytes(40))  # a TIFF header with an empty directory
    reason = reason_for(odd)
    assert "TIFF" in reason and "save a copy as JPEG or PNG" in reason


def test_truncated_empty_and_missing_files(tmp_path):
    good = save(Image.effect_noise((200, 200), 50).convert("RGB"), tmp_path / "good.jpg", quality=95)
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    for path, reason in [(truncated, "truncated"), (empty, "empty")]:
        with pytest.raises(BadImageError, match=reason) as info:
            load_image(path)
        assert str(path) in str(info.value)
    with pytest.raises(BadImageError, match="no such file"):
        load_image(tmp_path / "missing.jpg")


def test_a_folder_named_like_a_photo_is_called_a_folder(tmp_path):
    (tmp_path / "holiday.jpg").mkdir()
    reason = reason_for(tmp_path / "holiday.jpg")
    assert reason.startswith("a folder, not a photo") and "predict_folder" in reason


def test_bytes_from_an_upload():
    buffer = io.BytesIO()
    photo().save(buffer, format="PNG")
    assert load_image(memoryview(buffer.getvalue()), name="upload.png").size == (40, 30)
    with pytest.raises(BadImageError, match="upload.png: the file is empty"):
        load_image(b"", name="upload.png")


@pytest.mark.parametrize("head, kind", [
    (b"\x00\x00\x00\x1cftypheic\x00\x00\x00\x00mif1heicmiaf", "heif"),
    (b"\x00\x00\x00\x18ftypmif1\x00\x00\x00\x00mif1heic", "heif"),
    (b"\x00\x00\x00\x20ftypavif\x00\x00\x00\x00avifmif1miafMA1B", "avif"),
    (b"\x00\x00\x00\x1cftypmif1\x00\x00\x00\x00mif1avifmiaf", "avif"),
    (b"\x00\x00\x00\x1cftypM4A \x00\x00\x00\x00M4A isom", "audio"),
    (MP4, "video"), (MOV, "video"), (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "webp"), (b"RIFF\x00\x00\x00\x00AVI ", "video"),
    (b"\x1a\x45\xdf\xa3\x01", "video"), (b"II*\x00\x08\x00\x00\x00", "tiff"), (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff\xe0", "jpeg"), (b"  \n<svg>", "svg"), (b"\xef\xbb\xbf<html>", "html"), (bytes(range(256)), None),
])
def test_sniff(head, kind):
    assert images.sniff(head) == kind


def test_folder_files_lists_visible_files_and_sub_folders(tmp_path):
    for name in ["b.jpg", "a.txt", ".hidden.jpg"]:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    (tmp_path / ".ipynb_checkpoints").mkdir()
    assert [p.name for p in folder_files(tmp_path)] == ["a.txt", "b.jpg", "sub"]
    with pytest.raises(FileNotFoundError, match="no such folder"):
        folder_files(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="is a file, not a folder.*predictor.predict"):
        folder_files(tmp_path / "b.jpg")
