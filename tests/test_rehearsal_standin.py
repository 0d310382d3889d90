"""The rehearsal's stand-in Oxford-IIIT Pet, the download override, and the real path on it, offline.

``tests/rehearsal/standin.py`` builds archives laid out like the real ones; these tests check
that layout and every oddity, that ``COURSE_PETS_RESOURCES`` is the only way around torchvision's
URLs and md5s (and is checked), and that ``download_pets`` -> ``prepare_pets`` works end to end
on the stand-in served over HTTP from 127.0.0.1.
"""

from __future__ import annotations

import io
import json
import sys
import tarfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torchvision
from PIL import Image, ImageOps
from torchvision.datasets import OxfordIIITPet

from course_utils import pets, pets_prep
from course_utils.download import DownloadError, extract_archive

sys.path.insert(0, str(Path(__file__).resolve().parent / "rehearsal"))
import run as rehearsal  # noqa: E402
import standin  # noqa: E402

REAL_NAMES = [  # torchvision's class names for the real data set, in CLASS-ID order
    "Abyssinian", "American Bulldog", "American Pit Bull Terrier", "Basset Hound", "Beagle", "Bengal", "Birman",
    "Bombay", "Boxer", "British Shorthair", "Chihuahua", "Egyptian Mau", "English Cocker Spaniel",
    "English Setter", "German Shorthaired", "Great Pyrenees", "Havanese", "Japanese Chin", "Keeshond",
    "Leonberger", "Maine Coon", "Miniature Pinscher", "Newfoundland", "Persian", "Pomeranian", "Pug", "Ragdoll",
    "Russian Blue", "Saint Bernard", "Samoyed", "Scottish Terrier", "Shiba Inu", "Siamese", "Sphynx",
    "Staffordshire Bull Terrier", "Wheaten Terrier", "Yorkshire Terrier"]


@pytest.fixture(scope="module")
def archives(tmp_path_factory):
    """The stand-in archives (built once for this file: about 150 photo-sized pictures) and their md5s."""
    folder = tmp_path_factory.mktemp("standin")
    return folder, standin.build_archives(folder)


@pytest.fixture
def members(archives):
    folder, _ = archives
    found = {}
    for name in ("images.tar.gz", "annotations.tar.gz"):
        with tarfile.open(folder / name) as tar:
            for member in tar.getmembers():
                found[member.name] = tar.extractfile(member).read() if member.isfile() else None
    return found


@pytest.fixture
def served(archives, tmp_path, monkeypatch):
    """The archives served from 127.0.0.1, with COURSE_PETS_RESOURCES pointing at them; yields the request log."""
    folder, md5s = archives
    server, requests = rehearsal.serve(folder)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv(pets_prep.RESOURCES_ENV_VAR, str(standin.write_resources(tmp_path / "res.json", base, md5s)))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    yield requests
    server.shutdown()


# --- The stand-in looks like the real archives -------------------------------------------------------


def test_breeds_have_their_real_names_and_ids():
    rows = standin.breed_rows()
    assert len(rows) == 37 and sum(s == 1 for _, _, s, _ in rows) == 12  # 12 cat and 25 dog breeds
    assert [c for _, c, _, _ in rows] == list(range(1, 38))
    assert [b for b, *_ in rows] == sorted(standin.BREEDS, key=str.lower)  # CLASS-ID is alphabetical order
    for breed, _, species, _ in rows:
        assert species == (1 if breed[0].isupper() else 2)  # the data set's own convention: cats Capitalised
    by_name = {b: (c, s, i) for b, c, s, i in rows}
    # Spot checks against the real list.txt's numbering
    assert by_name["Abyssinian"] == (1, 1, 1) and by_name["Bengal"] == (6, 1, 2)
    assert by_name["american_bulldog"] == (2, 2, 1) and by_name["Sphynx"] == (34, 1, 12)
    assert by_name["yorkshire_terrier"] == (37, 2, 25)


def test_archives_have_the_real_layout(members):
    assert {name.split("/")[0] for name in members} == {"images", "annotations"}
    listed = standin.image_rows()
    for image_id, *_ in listed:
        assert f"images/{image_id}.jpg" in members and f"annotations/trimaps/{image_id}.png" in members
    list_txt = members["annotations/list.txt"].decode()
    assert list_txt.startswith(pets_prep.LIST_HEADER) and list_txt.count("\n") == 6 + len(listed)
    trainval = members["annotations/trainval.txt"].decode().splitlines()
    test = members["annotations/test.txt"].decode().splitlines()
    assert not any(line.startswith("#") for line in trainval + test)  # only list.txt has a header
    assert (len(trainval), len(test)) == (37 * standin.TRAINVAL_PER_BREED, 37 * standin.TEST_PER_BREED)
    assert sorted(trainval + test) == sorted(list_txt.splitlines()[6:])
    assert all(f"annotations/xmls/{line.split()[0]}.xml" in members for line in trainval)
    assert not any(f"annotations/xmls/{line.split()[0]}.xml" in members for line in test)
    for name in ("annotations/README", "annotations/._trimaps", *(f"images/{f}" for f in standin.STRAY_FILES),
                 f"images/{standin.UNLISTED_PHOTO}.jpg"):
        assert name in members, name


def test_torchvision_reads_the_stand_in_like_the_real_data_set(archives, tmp_path):
    folder, _ = archives
    for name in ("images", "annotations"):
        extract_archive(folder / f"{name}.tar.gz", tmp_path / "oxford-iiit-pet", name)
    breeds = OxfordIIITPet(tmp_path, split="trainval", target_types="category")
    species = OxfordIIITPet(tmp_path, split="test", target_types="binary-category")
    assert breeds.classes == REAL_NAMES and len(breeds) == 111 and len(species) == 37
    assert [species[i][1] for i in range(3)] == [0, 1, 1]  # Abyssinian (cat), American Bulldog, Pit Bull (dogs)


def test_every_oddity_of_the_real_archive_is_there(members, capfd):
    def image(image_id):
        return Image.open(io.BytesIO(members[f"images/{image_id}.jpg"]))

    kinds = {kind: image_id for image_id, kind in standin.ODDITIES.items()}
    assert (image(kinds["png-rgba"]).format, image(kinds["png-rgba"]).mode) == ("PNG", "RGBA")
    assert (image(kinds["png"]).format, image(kinds["png"]).mode) == ("PNG", "RGB")
    assert image(kinds["gif"]).format == "GIF"
    assert (image(kinds["cmyk"]).format, image(kinds["cmyk"]).mode) == ("JPEG", "CMYK")
    assert (image(kinds["grey"]).format, image(kinds["grey"]).mode) == ("JPEG", "L")
    rotated = image(kinds["exif-rotated"])
    assert rotated.getexif()[0x0112] == 6
    assert ImageOps.exif_transpose(rotated).size == rotated.size[::-1]  # stored sideways
    warned = members[f"images/{kinds['libjpeg-warning']}.jpg"]
    capfd.readouterr()
    assert cv2.imdecode(np.frombuffer(warned, np.uint8), cv2.IMREAD_COLOR) is not None  # it decodes ...
    assert "Corrupt JPEG data" in capfd.readouterr().err  # ... and libjpeg complains
    assert all(members[f"images/{f}"].startswith(b"MATLAB") for f in standin.STRAY_FILES)


def test_photos_are_photo_sized_and_photo_like(members):
    plain = [image_id for image_id, *_ in standin.image_rows() if image_id not in standin.ODDITIES]
    for image_id in plain:
        data = members[f"images/{image_id}.jpg"]
        with Image.open(io.BytesIO(data)) as picture:
            assert picture.format == "JPEG" and picture.mode == "RGB" and picture.size in standin.SIZES
            # Texture and grain: a flat cartoon of this size compresses to a few KB, a photo to tens
            assert len(data) > 0.2 * picture.width * picture.height, image_id
    assert len({members[f"images/{i}.jpg"] for i in plain}) == len(plain)  # no two alike


def test_weight_standins_are_where_torchvision_looks(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    (path,) = standin.write_weight_standins(tmp_path / "torch", ["resnet18"])
    assert path.parent == Path(torch.hub.get_dir()) / "checkpoints"
    assert path.name == torchvision.models.ResNet18_Weights.DEFAULT.url.rsplit("/", 1)[-1]
    from course_utils.models import build_resnet

    model, loaded = build_resnet("resnet18", pretrained=True, num_classes=3)  # no download: the file is used
    assert loaded and model.fc.out_features == 3
    torch.testing.assert_close(model.conv1.weight, torch.load(path, weights_only=True)["conv1.weight"])


def test_architectures_are_found_in_the_notebooks_and_the_recipes(tmp_path):
    nb = {"cells": [{"cell_type": "code", "source": ['ARCH = "resnet18" if quick else "resnet34"\n', "x = 'pets'"]},
                    {"cell_type": "markdown", "source": ['"resnet50"']}]}
    (tmp_path / "a.ipynb").write_text(json.dumps(nb))
    (tmp_path / "recipes.py").write_text('FULL = Recipe("resnet152", pretrained=True)\n')
    assert standin.architectures_named_in([tmp_path / "a.ipynb", tmp_path / "recipes.py"]) == [
        "resnet152", "resnet18", "resnet34"]


# --- The download override ---------------------------------------------------------------------------


def test_without_the_override_torchvision_gives_urls_and_md5s(monkeypatch):
    monkeypatch.delenv(pets_prep.RESOURCES_ENV_VAR, raising=False)
    assert [(url, md5) for _, url, md5 in pets_prep.pets_resources()] == list(OxfordIIITPet._RESOURCES)
    assert [name for name, _, _ in pets_prep.pets_resources()] == ["images.tar.gz", "annotations.tar.gz"]


@pytest.mark.parametrize("content, message", [
    ("not json", "cannot be read as JSON"),
    ('{"images.tar.gz": {"url": "http://x/i", "md5": "' + "0" * 32 + '"}}', "exactly the keys"),
    ('{"images.tar.gz": {"url": "http://x/i", "md5": "abc"}, "annotations.tar.gz": {"url": "u", "md5": "'
     + "0" * 32 + '"}}', "32 hex digits"),
])
def test_a_bad_override_is_refused_with_a_clear_message(tmp_path, monkeypatch, content, message):
    (tmp_path / "res.json").write_text(content)
    monkeypatch.setenv(pets_prep.RESOURCES_ENV_VAR, str(tmp_path / "res.json"))
    with pytest.raises(ValueError, match=message) as info:
        pets_prep.download_pets(quiet=True)
    assert "tests and the rehearsal only" in str(info.value)
    assert not (pets_prep.pets_folder() / "original").exists()


def test_the_override_is_used_and_verified(served):
    root = pets_prep.download_pets(quiet=True)
    assert sorted(path for path, _ in served) == ["/annotations.tar.gz", "/images.tar.gz"]  # from 127.0.0.1
    base = root / "oxford-iiit-pet"
    assert len(list((base / "images").glob("*.jpg"))) == len(standin.image_rows()) + 1  # + the unlisted photo
    assert (pets_prep.pets_folder() / "images.tar.gz").is_file()


def test_a_wrong_md5_in_the_override_is_refused(served, monkeypatch, tmp_path):
    resources = json.loads(Path(pets_prep.os.environ[pets_prep.RESOURCES_ENV_VAR]).read_text())
    resources["images.tar.gz"]["md5"] = "f" * 32
    (tmp_path / "wrong.json").write_text(json.dumps(resources))
    monkeypatch.setenv(pets_prep.RESOURCES_ENV_VAR, str(tmp_path / "wrong.json"))
    with pytest.raises(DownloadError, match="md5 checksum"):
        pets_prep.download_pets(quiet=True)
    assert not (pets_prep.pets_folder() / "images.tar.gz").exists()  # nothing unverified is kept
    assert not (pets_prep.pets_folder() / "original" / "oxford-iiit-pet" / "images").exists()


# --- End to end: download, unpack, resize, read ------------------------------------------------------


def test_download_then_prepare_on_the_stand_in(served):
    done = pets.pets_root(quick=False, quiet=True)  # full mode: download_pets -> prepare_pets
    assert done == pets_prep.pets_folder() / "resized-256"
    copies = done / "oxford-iiit-pet" / "images"
    listed = [row[0] for row in standin.image_rows()]
    assert sorted(p.stem for p in copies.iterdir()) == sorted(listed)  # no .mat, no unlisted photo
    for image_id in listed:
        with Image.open(copies / f"{image_id}.jpg") as copy:
            assert copy.format == "JPEG" and copy.mode == "RGB" and min(copy.size) == pets_prep.SHORT_SIDE, image_id
    train_dl, valid_dl, names = pets.pets_dataloaders("breeds", image_size=224, batch_size=8, quick=False,
                                                      device="cpu")
    images, labels = next(iter(train_dl))
    assert names == REAL_NAMES and images.shape == (8, 3, 224, 224) and len(valid_dl.dataset) == 37


# --- The rehearsal's verdict on a notebook's outputs -------------------------------------------------


def executed(*outputs, setup="device: cpu (2 threads) | mode: FULL | seed: 42 | training CAPPED at 2 epochs"):
    """A notebook as nbclient leaves it: a set-up cell that printed ``setup``, then a cell with ``outputs``."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("env = setup()", outputs=[nbformat.v4.new_output("stream", text=setup)]),
                nbformat.v4.new_code_cell("fit(model, ...)", outputs=list(outputs))]
    return nb


def verdict(nb, cap=2) -> list[str]:
    outcome = rehearsal.Outcome("x.ipynb", cap)
    rehearsal.check_outputs(nb, cap, outcome)
    return outcome.problems


def test_a_clean_full_mode_notebook_passes():
    import nbformat

    bars = "\r epochs:  50%|#####     | 1/2 [00:03<00:03,  3.1s/it]\r epochs: 100%|##########| 2/2 [00:06<00:00]"
    nb = executed(nbformat.v4.new_output("stream", name="stderr", text=bars),   # progress bars are fine
                  nbformat.v4.new_output("stream", text="best epoch: 1 of 2, error rate 97.3%\n"))
    assert verdict(nb) == []


@pytest.mark.parametrize("output, says", [
    ({"output_type": "error", "ename": "KeyError", "evalue": "'valley'", "traceback": []}, "KeyError: 'valley'"),
    ({"output_type": "stream", "name": "stderr",
      "text": "/x/lr_scheduler.py:198: UserWarning: Detected call of `lr_scheduler.step()` before "
              "`optimizer.step()`.\n  warnings.warn(\n"}, "lr_scheduler.step()"),
    ({"output_type": "stream", "name": "stderr",
      "text": "Corrupt JPEG data: 240 extraneous bytes before marker 0xd9\n"},
     "Corrupt JPEG data"),
    ({"output_type": "stream", "name": "stdout", "text": "x.py:3: FutureWarning: `weights` is deprecated\n"},
     "FutureWarning"),
    ({"output_type": "stream", "name": "stdout",
      "text": "NOTE: could not load the ImageNet weights for resnet152 (URLError: offline).\n"}, "weights not loaded"),
])
def test_errors_warnings_and_missing_weights_fail_the_rehearsal(output, says):
    import nbformat

    (problem,) = verdict(executed(nbformat.from_dict(output)))
    assert problem.startswith("cell 1 [fit(model, ...)]") and says in problem


@pytest.mark.parametrize("setup, cap, says", [
    ("device: cpu | mode: QUICK (small data, few steps: numbers are not real results) | seed: 42", 2, "mode: FULL"),
    ("", 2, "(none printed)"),
    ("device: cpu | mode: FULL | seed: 42", 2, "training cap"),                    # capped, but does not say so
    ("device: cpu | mode: FULL | seed: 42 | training CAPPED at 2 epochs", None, "uncapped"),
])
def test_a_notebook_that_does_not_say_full_mode_as_run_fails(setup, cap, says):
    (problem,) = verdict(executed(setup=setup), cap)
    assert says in problem


def test_lessons_without_the_pets_run_uncapped():
    assert rehearsal.cap_for("04_lr_find.ipynb", 2) is None  # a finder capped at 2 steps suggests nothing
    assert rehearsal.cap_for("06_training.ipynb", 2) == 2
