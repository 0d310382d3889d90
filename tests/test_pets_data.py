"""The pets data layer (course_utils.pets, pets_prep and quick_pets), offline.

Full mode is tested on a tiny fake download laid out like the real Oxford-IIIT Pet archives
and served through file:// URLs (torchvision's resource list is patched, never the internet).
Quick mode is tested on the data set it draws, including that a small CNN can learn it.
"""

from __future__ import annotations

import hashlib
import io
import multiprocessing
import os
import pickle
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader
from torchvision import transforms as v1
from torchvision.datasets import OxfordIIITPet
from torchvision.transforms import functional as tvf
from torchvision.transforms.v2 import functional as v2f

from course_utils import download, pets, pets_prep, plots, quick_pets, transforms
from course_utils.download import DownloadError

# The first six breeds of the real list.txt: their real class ids are 1..6, so this fake is
# an exact prefix of the real annotation files (name, CLASS-ID, SPECIES, BREED ID).
FAKE_BREEDS = [("Abyssinian", 1, 1, 1), ("american_bulldog", 2, 2, 1), ("american_pit_bull_terrier", 3, 2, 2),
               ("basset_hound", 4, 2, 3), ("beagle", 5, 2, 4), ("Bengal", 6, 1, 2)]
FAKE_NAMES = ["Abyssinian", "American Bulldog", "American Pit Bull Terrier", "Basset Hound", "Beagle", "Bengal"]
TEST_NUMBERS = {2, 5}          # of images 1..6 of each breed, these are in test.txt, the rest in trainval.txt
SMALL_ID = "beagle_3"          # smaller than 256 pixels: must not be enlarged
PNG_ID = "Abyssinian_5"        # like the real Abyssinian_5.jpg: a PNG (with alpha) under a .jpg name
GREY_ID = "basset_hound_1"     # a greyscale JPEG


# --- A fake download, built like the real one ----------------------------------------------------


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _add_dir(tar: tarfile.TarFile, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    tar.addfile(info)


def _photo(image_id: str, rng: np.random.Generator) -> bytes:
    """A smooth random 'photo' (most 300-420 pixels wide) encoded like the real files."""
    w, h = (200, 150) if image_id == SMALL_ID else (int(rng.integers(300, 421)), int(rng.integers(260, 381)))
    base = rng.integers(0, 256, (h // 20 + 2, w // 20 + 2, 3)).astype(np.uint8)
    image = Image.fromarray(base).resize((w, h), Image.Resampling.BICUBIC)
    out = io.BytesIO()
    if image_id == PNG_ID:
        image.convert("RGBA").save(out, format="PNG")
    elif image_id == GREY_ID:
        image.convert("L").save(out, format="JPEG", quality=92)
    else:
        image.save(out, format="JPEG", quality=92)
    return out.getvalue()


def _png(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).save(out, format="PNG")
    return out.getvalue()


def fake_rows() -> list[tuple[str, int, int, int]]:
    return [(f"{name}_{n}", c, s, b) for name, c, s, b in FAKE_BREEDS for n in range(1, 7)]


def build_fake_download(folder):
    """images.tar.gz and annotations.tar.gz with the real archives' layout; returns torchvision-style resources."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    rows = fake_rows()
    with tarfile.open(folder / "images.tar.gz", "w:gz") as tar:
        _add_dir(tar, "images")
        for image_id, *_ in rows:
            _add(tar, f"images/{image_id}.jpg", _photo(image_id, rng))
        _add(tar, "images/Bengal_99.jpg", _photo("Bengal_99", rng))  # on disk but in no list (41 such in the real set)
        _add(tar, "images/Abyssinian_100.mat", b"MATLAB 5.0 MAT-file")  # the real archive has three of these
    lines = [f"{i} {c} {s} {b}\n" for i, c, s, b in rows]
    is_test = [int(i.rsplit("_", 1)[1]) in TEST_NUMBERS for i, *_ in rows]
    with tarfile.open(folder / "annotations.tar.gz", "w:gz") as tar:
        _add_dir(tar, "annotations")
        _add(tar, "annotations/README", b"OXFORD-IIIT PET Dataset\n(a fake for tests)\n")
        _add(tar, "annotations/list.txt", (pets_prep.LIST_HEADER + "".join(lines)).encode())
        _add(tar, "annotations/trainval.txt", "".join(ln for ln, t in zip(lines, is_test) if not t).encode())
        _add(tar, "annotations/test.txt", "".join(ln for ln, t in zip(lines, is_test) if t).encode())
        _add(tar, "annotations/._trimaps", b"\x00\x05\x16\x07 macOS resource fork")
        _add_dir(tar, "annotations/trimaps")
        _add_dir(tar, "annotations/xmls")
        for (image_id, *_), test in zip(rows, is_test):
            trimap = np.full((30, 40), 2, np.uint8)  # 1 pet, 2 background, 3 border
            trimap[5:25, 10:30], trimap[5, 10:30] = 1, 3
            _add(tar, f"annotations/trimaps/{image_id}.png", _png(trimap))
            _add(tar, f"annotations/trimaps/._{image_id}.png", b"\x00\x05\x16\x07 macOS resource fork")
            if not test:  # head boxes exist for trainval images only
                _add(tar, f"annotations/xmls/{image_id}.xml",
                     f"<annotation><filename>{image_id}.jpg</filename></annotation>".encode())
    return tuple((path.as_uri(), hashlib.md5(path.read_bytes()).hexdigest())
                 for path in (folder / "images.tar.gz", folder / "annotations.tar.gz"))


@pytest.fixture
def fake_download(tmp_path, monkeypatch):
    """Point torchvision's resource list at a fake download; return the resources."""
    resources = build_fake_download(tmp_path / "server")
    monkeypatch.setattr(OxfordIIITPet, "_RESOURCES", resources)
    return resources


def test_download_pets_unpacks_the_real_layout(fake_download, monkeypatch):
    root = pets_prep.download_pets(quiet=True)
    base = root / "oxford-iiit-pet"
    assert len(list((base / "images").glob("*.jpg"))) == 37 and (base / "images/Abyssinian_100.mat").exists()
    assert sorted(p.name for p in (base / "annotations").iterdir()) == [
        "._trimaps", "README", "list.txt", "test.txt", "trainval.txt", "trimaps", "xmls"]
    assert not list(base.glob(".extract-*"))  # no temporary folder left behind
    assert (pets_prep.pets_folder() / "images.tar.gz").is_file()

    def no_download(*args, **kwargs):
        raise AssertionError("downloaded again")

    monkeypatch.setattr(pets_prep, "download", no_download)
    assert pets_prep.download_pets(quiet=True) == root  # unpacked folders are reused as they are


def test_full_mode_classes_counts_and_cat_dog_labels(fake_download):
    root = pets.pets_root(quick=False, quiet=True)
    assert root == pets_prep.pets_folder() / "resized-256"
    breeds = OxfordIIITPet(root, split="trainval", target_types="category")
    binary = OxfordIIITPet(root, split="trainval", target_types="binary-category")
    test = OxfordIIITPet(root, split="test", target_types="category")
    assert pets.class_names(breeds, "breeds") == FAKE_NAMES
    assert pets.class_names(binary, "binary") == ["Cat", "Dog"]
    assert (len(breeds), len(test)) == (24, 12)
    ids = pets.split_ids(root, "trainval")
    for i, image_id in enumerate(ids):
        image, label = binary[i]
        assert label == (0 if image_id[0].isupper() else 1), image_id  # cat breeds are Capitalised
        assert FAKE_NAMES[breeds[i][1]].replace(" ", "_").lower() == image_id.rsplit("_", 1)[0].lower()
        assert image.mode == "RGB"


def test_pets_dataloaders_full_mode(fake_download):
    train_dl, valid_dl, names = pets.pets_dataloaders("breeds", image_size=32, batch_size=6, quick=False,
                                                      pretrained_norm=True, device="cpu")
    assert names == FAKE_NAMES
    assert (len(train_dl.dataset), len(valid_dl.dataset)) == (18, 6)  # 24 trainval images, 20% of each breed
    images, labels = next(iter(train_dl))
    assert images.shape == (6, 3, 32, 32) and images.dtype == torch.float32 and labels.dtype == torch.int64
    assert sorted(label for _, label in valid_dl.dataset) == [0, 1, 2, 3, 4, 5]  # one of each breed
    test_dl = pets.pets_test_loader("binary", image_size=32, quick=False, device="cpu")
    assert len(test_dl.dataset) == 12 and not test_dl.drop_last
    torch.testing.assert_close(test_dl.dataset[0][0], test_dl.dataset[0][0])  # no randomness in testing


# --- The split ---------------------------------------------------------------------------------------


def test_split_is_fixed_disjoint_stratified_and_reproducible():
    labels = [b for b in range(37) for _ in range(100)]  # like the real trainval: ~100 per breed
    train, valid = pets.train_valid_indices(labels)
    assert (train, valid) == pets.train_valid_indices(labels)  # the same every time
    assert set(train).isdisjoint(valid) and sorted(train + valid) == list(range(len(labels)))
    assert len(valid) == 37 * 20  # 20% of each breed
    assert all(sum(labels[i] == b for i in valid) == 20 for b in range(37))
    assert pets.train_valid_indices(labels, seed=1)[1] != valid  # the seed matters
    small_train, small_valid = pets.train_valid_indices([0, 0, 0, 1, 2, 2], 0.2)
    assert 3 in small_train and len(small_valid) == 2  # a breed of one image trains; others keep one back
    with pytest.raises(ValueError, match="between 0 and 1"):
        pets.train_valid_indices(labels, valid_fraction=1.0)


def test_split_is_the_same_for_both_tasks(fake_download):
    a_train, a_valid, _ = pets.pets_datasets("binary", image_size=32, quick=False)
    b_train, b_valid, _ = pets.pets_datasets("breeds", image_size=32, quick=False)
    assert a_train.indices == b_train.indices and a_valid.indices == b_valid.indices


# --- Resized copies ------------------------------------------------------------------------------------


def test_resized_copies_have_the_right_size_and_content(fake_download):
    source = pets_prep.download_pets(quiet=True)
    done = pets_prep.resize_pets(source, workers=1, quiet=True)
    originals, copies = source / "oxford-iiit-pet/images", done / "oxford-iiit-pet/images"
    ids = pets.split_ids(source, "trainval") + pets.split_ids(source, "test")
    assert sorted(p.stem for p in copies.iterdir()) == sorted(ids)  # listed images only: no .mat, no Bengal_99
    for image_id in ids:
        with Image.open(originals / f"{image_id}.jpg") as a, Image.open(copies / f"{image_id}.jpg") as b:
            assert b.format == "JPEG" and b.mode == "RGB"
            assert min(b.size) == min(256, min(a.size)), image_id
            assert abs(b.width / b.height - a.width / a.height) < 0.01
            reference = np.asarray(a.convert("RGB").resize(b.size, Image.Resampling.BOX), dtype=float)
            assert np.abs(np.asarray(b, dtype=float) - reference).mean() < 4, image_id  # the same picture
    assert (done / "oxford-iiit-pet/annotations/trainval.txt").read_text() == (
        source / "oxford-iiit-pet/annotations/trainval.txt").read_text()
    assert '"short_side": 256' in (done / "preprocessing.json").read_text()


def test_worker_processes_give_the_same_files(fake_download, monkeypatch):
    source = pets_prep.download_pets(quiet=True)
    serial = pets_prep.resize_pets(source, workers=1, quiet=True)
    serial_bytes = {p.name: p.read_bytes() for p in (serial / "oxford-iiit-pet/images").iterdir()}
    serial.rename(serial.with_name("serial"))
    parallel = pets_prep.resize_pets(source, workers=2, quiet=True)
    assert {p.name: p.read_bytes() for p in (parallel / "oxford-iiit-pet/images").iterdir()} == serial_bytes


def test_finished_cache_is_used_without_any_work(fake_download, monkeypatch):
    done = pets.pets_root(quick=False, quiet=True)
    stamp = (done / "preprocessing.json").stat().st_mtime_ns

    def fail(*args, **kwargs):
        raise AssertionError("should not run")

    monkeypatch.setattr(pets_prep, "_resize_job", fail)
    monkeypatch.setattr(pets_prep, "download", fail)
    assert pets.pets_root(quick=False, quiet=True) == done
    assert pets_prep.resize_pets(pets_prep.pets_folder() / "original", quiet=True) == done
    assert (done / "preprocessing.json").stat().st_mtime_ns == stamp


def test_interrupted_preprocessing_is_finished_by_a_rerun(fake_download, monkeypatch):
    source = pets_prep.download_pets(quiet=True)
    real_job, calls = pets_prep._resize_job, []

    def crash_after_ten(job):
        if len(calls) == 10:
            raise KeyboardInterrupt  # the learner pressed "stop"
        calls.append(job)
        real_job(job)

    monkeypatch.setattr(pets_prep, "_resize_job", crash_after_ten)
    with pytest.raises(KeyboardInterrupt):
        pets_prep.resize_pets(source, workers=1, quiet=True)
    final = pets_prep.pets_folder() / "resized-256"
    partial = pets_prep.pets_folder() / "resized-256.partial"
    assert not final.exists()  # nothing that looks finished
    made = list((partial / "oxford-iiit-pet/images").glob("*.jpg"))
    assert len(made) == 10
    for path in made:  # every file there is whole
        with Image.open(path) as image:
            image.load()
    (partial / "oxford-iiit-pet/images/beagle_1.jpg.part").write_bytes(b"half a JPEG")  # a killed worker's leftover

    rerun = []
    monkeypatch.setattr(pets_prep, "_resize_job", lambda job: (rerun.append(job), real_job(job)))
    assert pets_prep.resize_pets(source, workers=1, quiet=True) == final
    assert len(rerun) == 36 - 10  # picks up where it stopped
    assert not partial.exists() and not list(final.rglob("*.part"))
    assert len(list((final / "oxford-iiit-pet/images").glob("*.jpg"))) == 36
    assert len(OxfordIIITPet(final, split="test")) == 12


# --- Failures: clear messages, nothing half-written ----------------------------------------------------


def test_failed_download_is_clear_and_leaves_nothing(tmp_path, monkeypatch):
    missing = (tmp_path / "nowhere" / "images.tar.gz").as_uri()
    monkeypatch.setattr(OxfordIIITPet, "_RESOURCES", ((missing, "0" * 32),))
    with pytest.raises(DownloadError) as info:
        pets.pets_root(quick=False, quiet=True)
    message = str(info.value)
    assert missing in message and "COURSE_QUICK=1" in message
    leftovers = sorted(str(p.relative_to(pets_prep.pets_folder())) for p in pets_prep.pets_folder().rglob("*"))
    assert leftovers == []


def test_damaged_archive_is_rejected_by_its_checksum(fake_download, monkeypatch):
    (url, md5), annotations = fake_download
    monkeypatch.setattr(OxfordIIITPet, "_RESOURCES", ((url, "f" * 32), annotations))
    with pytest.raises(DownloadError, match="md5 checksum"):
        pets_prep.download_pets(quiet=True)
    assert not (pets_prep.pets_folder() / "images.tar.gz").exists()
    assert not (pets_prep.pets_folder() / "original/oxford-iiit-pet/images").exists()


def _evil_archive(path):
    with tarfile.open(path, "w:gz") as tar:
        _add(tar, "images/ok.jpg", b"fine")
        _add(tar, "../evil.txt", b"outside")
    return path


@pytest.mark.parametrize("python_filter", [True, False], ids=["tarfile-data-filter", "own-check"])
def test_unsafe_archive_is_refused(tmp_path, monkeypatch, python_filter):
    if not python_filter:
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
    elif not hasattr(tarfile, "data_filter"):
        pytest.skip("this Python has no tarfile filters")
    dest = tmp_path / "dest" / "oxford-iiit-pet"
    with pytest.raises(RuntimeError, match="Could not unpack"):
        download.extract_archive(_evil_archive(tmp_path / "evil.tar.gz"), dest, "images")
    assert not (tmp_path / "dest" / "evil.txt").exists() and not (tmp_path / "evil.txt").exists()
    assert sorted(p.name for p in dest.iterdir()) == []  # no images/, no temporary folder


def test_own_check_extracts_a_good_archive(fake_download, monkeypatch):
    monkeypatch.delattr(tarfile, "data_filter", raising=False)
    root = pets_prep.download_pets(quiet=True)
    assert len(pets.split_ids(root, "trainval")) == 24


# --- Transforms ------------------------------------------------------------------------------------------


def _photo_image(w=300, h=220, seed=0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


def test_valid_transform_matches_the_classic_torchvision_pipeline():
    image = _photo_image()
    ours = transforms.valid_transform(224)(image)
    reference = v1.Compose([v1.Resize(256), v1.CenterCrop(224), v1.ToTensor(),
                            v1.Normalize(transforms.IMAGENET_MEAN, transforms.IMAGENET_STD)])(image)
    assert ours.shape == (3, 224, 224) and ours.dtype == torch.float32
    torch.testing.assert_close(ours, reference)
    plain = transforms.valid_transform(64, None, None)(image)
    assert plain.shape == (3, 64, 64) and 0 <= plain.min() and plain.max() <= 1
    torch.testing.assert_close(plain, v1.Compose([v1.Resize(73), v1.CenterCrop(64), v1.ToTensor()])(image))


def test_train_transform_is_random_but_seeded():
    image, transform = _photo_image(), transforms.train_transform(96)
    torch.manual_seed(0)
    a = transform(image)
    b = transform(image)
    torch.manual_seed(0)
    assert a.shape == (3, 96, 96) and a.dtype == torch.float32
    assert not torch.equal(a, b)
    torch.testing.assert_close(transform(image), a)


def _jitter_then_normalize(image: torch.Tensor, factors: list[float], mean, std) -> torch.Tensor:
    """torchvision's own brightness, contrast and saturation functions, one after another, then Normalize."""
    b, c, s = factors
    x = tvf.adjust_saturation(tvf.adjust_contrast(tvf.adjust_brightness(image, b), c), s)
    return x if mean is None else tvf.normalize(x, list(mean), list(std))


@pytest.mark.parametrize("normalise", [True, False])
def test_jitter_and_normalize_is_torchvisions_three_colour_changes_and_normalize_in_one(normalise):
    """Mid-range pixels (nothing clipped): the one matrix gives what the four steps give, to float precision."""
    mean, std = (transforms.IMAGENET_MEAN, transforms.IMAGENET_STD) if normalise else (None, None)
    rng = np.random.default_rng(1)
    photo = Image.fromarray(rng.integers(70, 180, (40, 56, 3), dtype=np.uint8))
    step = transforms.JitterAndNormalize(0.2, mean, std)
    as_tensor = v2f.to_dtype(v2f.to_image(photo), torch.float32, scale=True)
    for seed in range(5):
        torch.manual_seed(seed)
        factors = torch.empty(3).uniform_(0.8, 1.2).tolist()       # the draw the step makes, in its order
        torch.manual_seed(seed)
        ours = step(photo)
        assert ours.shape == (3, 40, 56) and ours.dtype == torch.float32
        expected = _jitter_then_normalize(as_tensor, factors, mean, std)
        torch.testing.assert_close(ours, expected, atol=1e-4, rtol=0)
        torch.manual_seed(seed)
        torch.testing.assert_close(step(v2f.to_image(photo)), ours)  # a uint8 tensor gives the same
        torch.manual_seed(seed)
        torch.testing.assert_close(step(as_tensor), ours)             # and so does a float one in 0..1
    assert all(0.8 <= f <= 1.2 for f in factors)


def test_jitter_and_normalize_clips_like_colorjitter_and_strength_zero_is_plain_normalising():
    white = Image.new("RGB", (8, 8), (255, 255, 255))
    for seed in range(10):  # white, brighter or darker: only the brightness factor b matters, and 1.2 x white is white
        torch.manual_seed(seed)
        b = torch.empty(3).uniform_(0.8, 1.2)[0].item()
        torch.manual_seed(seed)
        seen = transforms.JitterAndNormalize(0.2, None, None)(white)
        torch.testing.assert_close(seen, torch.full((3, 8, 8), min(b, 1.0)))
    step = transforms.JitterAndNormalize(0.2)
    normalised_white = (1 - torch.tensor(transforms.IMAGENET_MEAN)) / torch.tensor(transforms.IMAGENET_STD)
    torch.testing.assert_close(step(white)[:, 0, 0], normalised_white)
    photo = _photo_image()
    plain = v1.Compose([v1.ToTensor(), v1.Normalize(transforms.IMAGENET_MEAN, transforms.IMAGENET_STD)])(photo)
    torch.testing.assert_close(transforms.JitterAndNormalize(0.0)(photo), plain, atol=1e-5, rtol=0)
    torch.testing.assert_close(transforms.JitterAndNormalize(0.0)(photo.convert("L")),  # grey in: 3 channels out
                               transforms.JitterAndNormalize(0.0)(photo.convert("L").convert("RGB")))
    with pytest.raises(ValueError, match="strength"):
        transforms.JitterAndNormalize(1.5)


def test_denormalize_undoes_normalize():
    x = torch.rand(4, 3, 16, 16)
    normalized = tvf.normalize(x, list(transforms.IMAGENET_MEAN), list(transforms.IMAGENET_STD))
    torch.testing.assert_close(transforms.denormalize(normalized), x)
    torch.testing.assert_close(transforms.denormalize(normalized[0]), x[0])  # one image works too
    assert transforms.denormalize(torch.full((3, 2, 2), 5.0)).max() == 1  # clipped for display
    torch.testing.assert_close(transforms.denormalize(x, None, None), x)
    assert transforms.norm_stats(True) == (list(transforms.IMAGENET_MEAN), list(transforms.IMAGENET_STD))
    assert transforms.norm_stats(False) == (None, None)


def test_an_augmented_batch_can_be_shown():
    train_dl, _, names = pets.pets_dataloaders("breeds", batch_size=8, quick=True, device="cpu")
    images, labels = next(iter(train_dl))
    shown = transforms.denormalize(images)
    assert shown.min() >= 0 and shown.max() <= 1 and shown.shape == images.shape
    fig = plots.show_images(shown, titles=[names[i] for i in labels], suptitle="Augmented batch")
    assert [ax.get_title() for ax in fig.axes] == [names[i] for i in labels]


# --- Loader settings ---------------------------------------------------------------------------------------


def _cores(monkeypatch, cores: int, start_method: str) -> None:
    """Pretend to run on ``cores`` CPU cores, with worker processes started by ``start_method``."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cores)), raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: cores)
    monkeypatch.setattr(multiprocessing, "get_start_method", lambda allow_none=False: start_method)


def test_loader_settings_on_cpu_and_cuda(monkeypatch):
    _cores(monkeypatch, 2, "fork")  # like Colab
    cpu_train = pets.loader_kwargs(torch.device("cpu"), train=True)
    assert cpu_train == {"shuffle": True, "drop_last": True, "num_workers": 2,
                         "persistent_workers": True, "pin_memory": False}
    cuda_valid = pets.loader_kwargs(torch.device("cuda"), train=False)  # only the device type is read
    assert cuda_valid == {"shuffle": False, "drop_last": False, "num_workers": 2,
                          "persistent_workers": False, "pin_memory": True}  # validation workers do not linger
    quick = pets.loader_kwargs("cuda", train=True, quick=True)
    assert quick["num_workers"] == 0 and not quick["persistent_workers"] and quick["pin_memory"]


def test_a_laptop_gets_few_workers_where_they_are_spawned(monkeypatch):
    _cores(monkeypatch, 12, "spawn")  # Windows or macOS: every worker is a new Python importing torch
    assert pets.loader_kwargs("cpu", train=True)["num_workers"] == 2
    _cores(monkeypatch, 32, "fork")  # a big Linux machine
    assert pets.loader_kwargs("cuda", train=True)["num_workers"] == 4


def test_the_resize_pool_is_capped_too(fake_download, monkeypatch):
    source = pets_prep.download_pets(quiet=True)
    _cores(monkeypatch, 12, "spawn")
    sizes = []

    class SerialPool:  # records its size, does the work here
        def __init__(self, processes):
            sizes.append(processes)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def imap_unordered(self, job, jobs, chunksize=1):
            return map(job, jobs)

    monkeypatch.setattr(pets_prep.multiprocessing, "get_context", lambda *a: type("Ctx", (), {"Pool": SerialPool}))
    pets_prep.resize_pets(source, quiet=True)
    assert sizes == [2]


def test_dataloaders_follow_the_device(monkeypatch):
    train_dl, valid_dl, _ = pets.pets_dataloaders(batch_size=16, quick=True, device=torch.device("cuda"))
    assert train_dl.pin_memory and valid_dl.pin_memory and train_dl.num_workers == 0
    assert valid_dl.batch_size == 32 and train_dl.drop_last and not valid_dl.drop_last
    train_dl, _, _ = pets.pets_dataloaders(batch_size=16, quick=True, device="cpu")
    assert not train_dl.pin_memory


def test_datasets_survive_pickling_for_worker_processes():
    train_ds, valid_ds, _ = pets.pets_datasets("breeds", quick=True)
    copy = pickle.loads(pickle.dumps(valid_ds))  # what spawn-started DataLoader workers need
    torch.testing.assert_close(copy[3][0], valid_ds[3][0])
    assert copy[3][1] == valid_ds[3][1]
    pickle.dumps(train_ds)


def test_bad_arguments_give_clear_errors():
    with pytest.raises(ValueError, match="task must be one of"):
        pets.pets_datasets("dogs", quick=True)
    with pytest.raises(ValueError, match="smaller batch size"):
        pets.pets_dataloaders(batch_size=10_000, quick=True, device="cpu")


# --- Quick mode ----------------------------------------------------------------------------------------------


def test_quick_data_has_the_real_layout():
    root = quick_pets.make_quick_pets(quiet=True)
    base = root / "oxford-iiit-pet"
    rows = [line.split() for line in (base / "annotations/list.txt").read_text().splitlines()]
    header, rows = rows[:6], rows[6:]
    assert (base / "annotations/list.txt").read_text().startswith(pets_prep.LIST_HEADER) and header[0][0] == "#Image"
    assert len(rows) == 240 and all(len(r) == 4 for r in rows)
    assert sorted(p.stem for p in (base / "images").glob("*.jpg")) == sorted(r[0] for r in rows)
    names = sorted({r[0].rsplit("_", 1)[0] for r in rows}, key=str.lower)
    for image_id, class_id, species, _ in rows:  # class ids in alphabetical order, cats Capitalised
        assert int(class_id) == names.index(image_id.rsplit("_", 1)[0]) + 1
        assert species == ("1" if image_id[0].isupper() else "2")
    trainval, test = pets.split_ids(root, "trainval"), pets.split_ids(root, "test")
    assert (len(trainval), len(test)) == (180, 60) and not set(trainval) & set(test)
    dataset = OxfordIIITPet(root, split="test", target_types="category")  # the real reader
    assert dataset.classes == ["Beagle", "Bengal", "Pug", "Russian Blue", "Samoyed", "Siamese"]
    with Image.open(base / "images/Siamese_1.jpg") as image:
        assert image.format == "JPEG" and 76 <= image.height <= 104 and 84 <= image.width <= 112


def test_quick_data_is_deterministic_and_made_once(tmp_path, monkeypatch):
    first = quick_pets.make_quick_pets(quiet=True)
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in sorted(first.rglob("*.*")))).hexdigest()
    stamp = (first / "oxford-iiit-pet/annotations/list.txt").stat().st_mtime_ns
    assert quick_pets.make_quick_pets(quiet=True) == first
    assert (first / "oxford-iiit-pet/annotations/list.txt").stat().st_mtime_ns == stamp
    monkeypatch.setenv("COURSE_DATA", str(tmp_path / "elsewhere"))
    second = quick_pets.make_quick_pets(quiet=True)
    assert second != first
    assert hashlib.sha256(b"".join(p.read_bytes() for p in sorted(second.rglob("*.*")))).hexdigest() == digest


def test_interrupted_quick_generation_leaves_nothing(monkeypatch):
    real, count = quick_pets.draw_quick_pet, []

    def crash(*args):
        count.append(1)
        if len(count) > 20:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(quick_pets, "draw_quick_pet", crash)
    with pytest.raises(KeyboardInterrupt):
        quick_pets.make_quick_pets(quiet=True)
    assert list(pets_prep.pets_folder().iterdir()) == []
    monkeypatch.setattr(quick_pets, "draw_quick_pet", real)
    assert len(pets.split_ids(quick_pets.make_quick_pets(quiet=True), "trainval")) == 180


def test_quick_mode_is_the_default_size_and_shape(monkeypatch):
    monkeypatch.setenv("COURSE_QUICK", "1")
    train_dl, valid_dl, names = pets.pets_dataloaders(batch_size=16, device="cpu")
    assert names == ["Cat", "Dog"]
    images, labels = next(iter(train_dl))
    assert images.shape == (16, 3, transforms.QUICK_IMAGE_SIZE, transforms.QUICK_IMAGE_SIZE)
    assert (len(train_dl.dataset), len(valid_dl.dataset)) == (144, 36)


def _small_cnn(num_classes: int) -> nn.Sequential:
    def block(c_in, c_out):
        return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(), nn.MaxPool2d(2)]
    return nn.Sequential(*block(3, 16), *block(16, 32), *block(32, 32), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(32, num_classes))


def _train_and_validate(task: str, epochs: int = 10) -> float:
    """A plain PyTorch loop on quick mode's data at 48 pixels; returns the validation accuracy."""
    torch.manual_seed(0)
    train_ds, valid_ds, names = pets.pets_datasets(task, image_size=48, quick=True, pretrained_norm=False)
    train_dl = DataLoader(train_ds, batch_size=16, shuffle=True, drop_last=True)
    model = _small_cnn(len(names))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=1e-2, total_steps=epochs * len(train_dl))
    for _ in range(epochs):
        model.train()
        for images, labels in train_dl:
            loss = nn.functional.cross_entropy(model(images), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    model.eval()
    with torch.no_grad():
        images, labels = next(iter(DataLoader(valid_ds, batch_size=len(valid_ds))))
        return (model(images).argmax(1) == labels).float().mean().item()


@pytest.fixture
def one_thread():
    """A tiny model trains fastest on one thread (and is not slowed down by a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_quick_mode_cat_vs_dog_is_learnable(one_thread):
    assert _train_and_validate("binary", epochs=14) >= 0.8  # chance is 0.5


def test_quick_mode_breeds_are_learnable(one_thread):
    assert _train_and_validate("breeds") >= 0.6  # chance is 1/6
