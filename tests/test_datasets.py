"""Fashion-MNIST, EMNIST and CelebA: idx parsing, content checks, EMNIST orientation and labels,
CelebA conversion, splits and cache, the missing-files message, and the tfds adapter."""

from __future__ import annotations

import dataclasses
import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from conftest import celeba_attribute_text, celeba_grey, write_celeba_like, write_fashion_like
from manifold_robustness import data
from manifold_robustness.data import celeba, idx, idx_datasets

# ---------------------------------------------------------------------------------------------
# idx format


def test_idx_header_is_parsed_from_hand_made_bytes(tmp_path):
    pixels = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    raw = bytes([0, 0, 0x08, 3]) + struct.pack(">3I", 2, 3, 4) + pixels.tobytes()
    dtype, dims, header_len = idx.parse_header(raw)
    assert (dtype, dims, header_len) == (np.dtype(">u1"), (2, 3, 4), 16)
    np.testing.assert_array_equal(idx.parse(raw), pixels)

    # Multi-byte types are big-endian in the file and come back in native order.
    ints = bytes([0, 0, 0x0C, 1]) + struct.pack(">I", 3) + struct.pack(">3i", 1, 256, -2)
    out = idx.parse(ints)
    assert out.dtype == np.int32 and out.dtype.isnative and out.tolist() == [1, 256, -2]

    # gzip is recognised by content, not by name; write() and read() round-trip.
    (tmp_path / "plain_name").write_bytes(gzip.compress(raw))
    np.testing.assert_array_equal(idx.read(tmp_path / "plain_name"), pixels)
    floats = np.linspace(-1, 1, 6, dtype=np.float32).reshape(3, 2)
    np.testing.assert_array_equal(idx.read(idx.write(tmp_path / "f.idx.gz", floats)), floats)


@pytest.mark.parametrize(
    "raw, message",
    [
        (b"\x1f\x00\x08\x01" + struct.pack(">I", 1) + b"\x00", "two zero bytes"),
        (b"\x00\x00\x07\x01" + struct.pack(">I", 1) + b"\x00", "unknown idx element type 0x07"),
        (b"\x00\x00\x08\x00", "0 dimensions"),
        (b"\x00\x00\x08\x03" + struct.pack(">I", 5), "data ends after 8 bytes"),
        (b"\x00\x00\x08\x01" + struct.pack(">I", 10) + b"\x00" * 9, "10 array of uint8, i.e. 18 bytes"),
        (b"\x00\x00", "too short"),
    ],
)
def test_corrupt_idx_header_is_a_clear_error(tmp_path, raw, message):
    path = tmp_path / "bad-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(raw))
    with pytest.raises(idx.IdxFormatError, match=message) as info:
        idx.read(path)
    assert str(path) in str(info.value) and isinstance(info.value, ValueError)


def test_damaged_gzip_is_a_clear_error(tmp_path):
    path = tmp_path / "cut.gz"
    noise = np.random.default_rng(0).integers(0, 256, 1000, dtype=np.uint8).tobytes()
    whole = gzip.compress(b"\x00\x00\x08\x01" + struct.pack(">I", 1000) + noise)
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(idx.IdxFormatError, match="gzip stream is damaged"):
        idx.read(path)


# ---------------------------------------------------------------------------------------------
# Fashion-MNIST


@pytest.fixture(scope="session")
def fashion_dir(tmp_path_factory) -> Path:
    """Full-size (60k / 10k) Fashion-MNIST idx files with synthetic content (about 1 MB gzip)."""
    return write_fashion_like(tmp_path_factory.mktemp("fashion"), {"train": 60_000, "test": 10_000})


def test_fashion_mnist_from_a_folder(fashion_dir, monkeypatch):
    train = data.load("fashion_mnist", "train", source_dir=str(fashion_dir))
    assert train.images.shape == (60_000, 28, 28, 1) and train.images.dtype == np.float32
    assert train.labels.dtype == np.int32 and train.num_classes == 10 and len(train) == 60_000
    assert 0.0 <= train.images.min() and train.images.max() <= 1.0
    np.testing.assert_array_equal(train.labels[:12], np.arange(12) % 10)
    assert train.class_names[0] == "T-shirt/top" and train.class_names[9] == "Ankle boot"
    # Images stay in file order and uint8 is the raw bytes: image i stores i in pixels (0, 0), (0, 1).
    monkeypatch.setenv(data.FASHION_MNIST_ENV, str(fashion_dir))
    test = data.load("fashion_mnist", "test", dtype=np.uint8)
    assert test.images.dtype == np.uint8 and test.images.shape == (10_000, 28, 28, 1)
    index = test.images[:, 0, 0, 0].astype(int) + 256 * test.images[:, 0, 1, 0].astype(int)
    np.testing.assert_array_equal(index, np.arange(10_000))
    np.testing.assert_allclose(train.images[7, 12, 12, 0], (7 * 25 + 5) / 255, rtol=1e-6)
    first = data.load("fashion_mnist", "test", limit=30)
    np.testing.assert_array_equal(first.images, test.images[:30].astype(np.float32) / 255)
    np.testing.assert_array_equal(first.labels, test.labels[:30])


def test_fashion_mnist_content_is_checked(tmp_path):
    short = write_fashion_like(tmp_path / "short", {"train": 100, "test": 10_000})
    with pytest.raises(idx_datasets.DatasetContentError, match="100 examples, expected 60000"):
        data.load("fashion_mnist", "train", source_dir=str(short))
    skewed = write_fashion_like(tmp_path / "skewed", {"train": 60_000, "test": 10_000}, num_classes=8)
    with pytest.raises(idx_datasets.DatasetContentError, match="class counts"):
        data.load("fashion_mnist", "test", source_dir=str(skewed))


@pytest.mark.skipif(not idx_datasets.DEBIAN_FASHION_MNIST.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
def test_fashion_mnist_from_debian_package():
    for split, n in (("train", 60_000), ("test", 10_000)):
        ds = data.load("fashion_mnist", split, dtype=np.uint8)  # default folder: /usr/share/datasets/fashion-mnist
        assert ds.images.shape == (n, 28, 28, 1) and ds.images.dtype == np.uint8
        assert ds.labels.min() == 0 and ds.labels.max() == 9
        np.testing.assert_array_equal(np.bincount(ds.labels), [n // 10] * 10)
        assert ds.images.max() == 255 and ds.images.mean() > 50  # real clothes, not an empty file
    assert data.load("fashion_mnist", "test", limit=5).labels.tolist() == [9, 2, 1, 1, 6]


# ---------------------------------------------------------------------------------------------
# EMNIST

# An "L": asymmetric under transposition and mirroring, so only the upright image matches.
UPRIGHT_L = np.zeros((28, 28), np.uint8)
UPRIGHT_L[4:24, 6:9] = 255
UPRIGHT_L[21:24, 6:21] = 255


def _write_emnist(folder: Path, variant: str, labels: dict[str, np.ndarray]) -> Path:
    """EMNIST idx files as NIST ships them: each image stored transposed."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, lab in labels.items():
        upright = np.zeros((len(lab), 28, 28), np.uint8)
        upright[:] = UPRIGHT_L
        upright[:, 0, 0] = np.arange(len(lab))
        idx.write(folder / f"emnist-{variant}-{split}-images-idx3-ubyte.gz", upright.transpose(0, 2, 1))
        idx.write(folder / f"emnist-{variant}-{split}-labels-idx1-ubyte.gz", np.asarray(lab, np.uint8))
    return folder


def test_emnist_images_come_out_upright(tmp_path, monkeypatch):
    folder = _write_emnist(tmp_path, "digits", {"train": np.arange(6) % 10, "test": np.array([3, 1, 4, 1])})
    monkeypatch.setitem(
        idx_datasets.SPECS, "emnist", dataclasses.replace(idx_datasets.EMNIST_DIGITS, sizes={"train": 6, "test": 4})
    )
    monkeypatch.setenv(data.EMNIST_ENV, str(folder))
    ds = data.load("emnist", "train", dtype=np.uint8)
    assert ds.images.shape == (6, 28, 28, 1) and ds.num_classes == 10
    np.testing.assert_array_equal(ds.images[0, 1:, :, 0], UPRIGHT_L[1:])
    glyph = ds.images[3, :, :, 0]
    assert glyph[23, 20] == 255 and glyph[4, 20] == 0  # the foot points right, at the bottom
    assert ds.images[3, 0, 0, 0] == 3  # and rows keep their order
    assert data.load("emnist", "test").labels.tolist() == [3, 1, 4, 1]


def test_emnist_digits_size_is_checked(tmp_path):
    folder = _write_emnist(tmp_path, "digits", {"train": np.arange(6) % 10, "test": np.arange(4)})
    with pytest.raises(idx_datasets.DatasetContentError, match="expected 240000"):
        data.load("emnist", "train", source_dir=str(folder))


def test_emnist_letters_labels_are_shifted_to_start_at_zero(tmp_path):
    folder = _write_emnist(tmp_path, "letters", {"train": np.array([1, 2, 26, 13]), "test": np.array([26])})
    ds = data.load("emnist_letters", "train", source_dir=str(folder))
    assert ds.labels.tolist() == [0, 1, 25, 12] and ds.num_classes == 26
    assert [ds.class_names[k] for k in ds.labels] == ["a", "b", "z", "m"]
    bad = _write_emnist(tmp_path / "bad", "letters", {"train": np.array([0, 1]), "test": np.array([1])})
    with pytest.raises(idx_datasets.DatasetContentError, match="labels span 0..1, expected 1..26"):
        data.load("emnist_letters", "train", source_dir=str(bad))


# ---------------------------------------------------------------------------------------------
# Missing files, names, splits


def test_missing_files_error_says_what_goes_where(tmp_path):
    folder = _write_emnist(tmp_path / "emnist", "digits", {"train": np.arange(6) % 10})  # no test files
    with pytest.raises(FileNotFoundError) as info:
        data.load("emnist", "train", source_dir=str(folder))
    msg = str(info.value)
    assert isinstance(info.value, data.MissingDatasetFilesError)
    assert "emnist-digits-test-images-idx3-ubyte.gz" in msg and "emnist-digits-test-labels-idx1-ubyte.gz" in msg
    assert "emnist-digits-train-images" not in msg  # present files are not listed
    assert str(folder) in msg and "MANIFOLD_ROBUSTNESS_EMNIST" in msg and "tfds.load('emnist/digits')" in msg

    with pytest.raises(FileNotFoundError) as info:
        data.load("celeba", "test", source_dir=str(tmp_path / "nowhere"))
    msg = str(info.value)
    for expected in ("img_align_celeba/", "list_attr_celeba.txt", "list_eval_partition.txt", str(tmp_path / "nowhere"),
                     "MANIFOLD_ROBUSTNESS_CELEBA", "tfds.load('celeb_a')", "does not exist"):
        assert expected in msg

    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte.gz(.|\n)*MANIFOLD_ROBUSTNESS_FASHION_MNIST"):
        data.load("fashion_mnist", "test", source_dir=str(tmp_path))


def test_names_splits_and_arguments_are_validated(small_fashion):
    with pytest.raises(ValueError, match="known datasets: fonts, fashion_mnist, emnist, emnist_letters, celeba"):
        data.load("mnist", "train")
    with pytest.raises(ValueError, match="fashion_mnist has splits 'train' and 'test'; got 'validation'"):
        data.load("fashion_mnist", "validation", source_dir=str(small_fashion))
    with pytest.raises(ValueError, match="larger than the fashion_mnist test split, which has 10"):
        data.load("fashion_mnist", "test", limit=11, source_dir=str(small_fashion))
    with pytest.raises(ValueError, match="must be a CelebAConfig"):
        data.load("celeba", "train", config=data.FontsConfig())
    with pytest.raises(ValueError, match="has no config"):
        data.load("fashion_mnist", "train", config=data.CelebAConfig(), source_dir=str(small_fashion))
    with pytest.raises(ValueError, match="official"):
        data.CelebAConfig(split="random")


# ---------------------------------------------------------------------------------------------
# CelebA

PARTITION = [0, 0, 2, 0, 0, 1, 0, 0, 2, 0, 0, 0, 1, 0, 2, 0, 0, 2, 0, 1]  # 16 train + val, 4 test
MALE = [1 if i % 3 == 0 else -1 for i in range(len(PARTITION))]


@pytest.fixture()
def celeba_dir(tmp_path) -> Path:
    return write_celeba_like(tmp_path / "celeba", PARTITION, MALE)


def test_celeba_is_resized_cropped_and_labelled_male(celeba_dir, tmp_path):
    train = data.load("celeba", "train", source_dir=str(celeba_dir), data_dir=str(tmp_path / "cache"))
    test = data.load("celeba", "test", source_dir=str(celeba_dir), data_dir=str(tmp_path / "cache"), dtype=np.uint8)
    assert train.images.shape == (16, 56, 48, 3) and train.images.dtype == np.float32
    assert test.images.shape == (4, 56, 48, 3) and test.images.dtype == np.uint8
    assert train.num_classes == 2 and train.class_names == ("female", "male")
    test_rows = [i for i, p in enumerate(PARTITION) if p == 2]
    assert test.labels.tolist() == [int(MALE[i] > 0) for i in test_rows]
    assert train.labels.tolist() == [int(MALE[i] > 0) for i, p in enumerate(PARTITION) if p != 2]
    img = test.images.astype(int)
    # The white frame is cropped away, the red quarter is upper left, the grey square encodes the row.
    assert img[:, 0].max() < 40 and img[:, -1].max() < 40 and img[:, :, 0].max() < 40 and img[:, :, -1].max() < 40
    np.testing.assert_allclose(img[:, 21, 17], [[255, 0, 0]] * 4, atol=12)
    np.testing.assert_allclose(img[:, 36, 32, 1], [celeba_grey(i) for i in test_rows], atol=6)
    assert 0.0 <= train.images.min() and train.images.max() <= 1.0


def test_celeba_first90_split_and_limit(celeba_dir, tmp_path):
    kw = dict(source_dir=str(celeba_dir), data_dir=str(tmp_path / "cache"), dtype=np.uint8)
    cfg = data.CelebAConfig(split="first90")
    train, test = (data.load("celeba", s, config=cfg, **kw) for s in ("train", "test"))
    assert (len(train), len(test)) == (18, 2)
    np.testing.assert_allclose(test.images[:, 36, 32, 1].astype(int), [celeba_grey(18), celeba_grey(19)], atol=6)
    first = data.load("celeba", "train", limit=3, **kw)
    assert first.labels.tolist() == [1, 0, 1]  # official train rows 0, 1, 3
    smiling = data.load("celeba", "train", config=data.CelebAConfig(attribute="Smiling"), **kw)
    assert smiling.class_names == ("not Smiling", "Smiling")
    with pytest.raises(ValueError, match="unknown CelebA attribute 'Beard'"):
        data.load("celeba", "train", config=data.CelebAConfig(attribute="Beard"), **kw)


def test_male_is_found_by_name_not_position():
    names = ["Young", "Male", "Smiling"]
    text = celeba_attribute_text(names, [("000001.jpg", [1, -1, 1]), ("000002.jpg", [-1, 1, -1])])
    parsed_names, files, values = celeba.parse_attributes(text)
    assert parsed_names == names and files == ["000001.jpg", "000002.jpg"]
    assert values[:, parsed_names.index("Male")].tolist() == [0, 1] and values.dtype == np.uint8
    with pytest.raises(ValueError, match="announces 3 images but 2 follow"):
        celeba.parse_attributes(text.replace("2\n", "3\n", 1))
    with pytest.raises(ValueError, match="must be -1 or 1"):
        celeba.parse_attributes(text.replace(" 1 -1  1", " 1  0  1", 1))


def test_celeba_cache_is_reused_and_keyed_by_the_files(celeba_dir, tmp_path, monkeypatch, capsys):
    kw = dict(source_dir=str(celeba_dir), data_dir=str(tmp_path / "cache"), dtype=np.uint8)
    first = data.load("celeba", "test", progress=True, **kw)
    assert "convert CelebA" in capsys.readouterr().err  # the tqdm bar
    entries = list((tmp_path / "cache" / "celeba").iterdir())
    assert len(entries) == 1 and (entries[0] / "meta.json").exists()
    monkeypatch.setattr(celeba, "_convert_images", lambda *a, **k: pytest.fail("converted again instead of reading the cache"))
    again = data.load("celeba", "test", **kw)
    np.testing.assert_array_equal(again.images, first.images)
    # Changed annotations change the fingerprint, hence the cache entry.
    before = celeba.fingerprint(celeba_dir)
    (celeba_dir / "list_eval_partition.txt").write_text((celeba_dir / "list_eval_partition.txt").read_text().replace("jpg 2", "jpg 1", 1))
    assert celeba.fingerprint(celeba_dir)["partition_crc32"] != before["partition_crc32"]


def test_celeba_missing_images_are_listed(celeba_dir, tmp_path):
    (celeba_dir / "img_align_celeba" / "000007.jpg").unlink()
    with pytest.raises(FileNotFoundError, match=r"img_align_celeba/000007\.jpg"):
        data.load("celeba", "train", source_dir=str(celeba_dir), data_dir=str(tmp_path / "cache"))
    assert not list((tmp_path / "cache").glob("celeba/*/meta.json"))  # nothing half-built is left


# ---------------------------------------------------------------------------------------------
# tensorflow-datasets consumers of these names


def test_from_tfds_adapts_mocked_emnist_digits(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    # tfds.load would need TensorFlow; tfds.data_source is mocked without it.
    with tfds.testing.mock_data(num_examples=6):
        raw = tfds.data_source("emnist/digits", split="train", data_dir=str(tmp_path))
        ds = data.from_tfds("emnist", "train", tfds_data_dir=str(tmp_path))
        assert ds.images.shape == (6, 28, 28, 1) and ds.images.dtype == np.float32 and ds.num_classes == 10
        for i in range(6):
            ex = raw[i]
            np.testing.assert_array_equal(ds.images[i] * 255, ex["image"].transpose(1, 0, 2).astype(np.float32))
            assert ds.labels[i] == ex["label"]
        assert len(data.from_tfds("emnist", "test", limit=4, tfds_data_dir=str(tmp_path), dtype=np.uint8)) == 4
        with pytest.raises(ValueError, match="larger than the emnist train split, which has 6"):
            data.from_tfds("emnist", "train", limit=7, tfds_data_dir=str(tmp_path))


def test_from_tfds_adapts_mocked_celeb_a(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=3):
        raw = tfds.data_source("celeb_a", split="test", data_dir=str(tmp_path))
        ds = data.from_tfds("celeba", "test", tfds_data_dir=str(tmp_path), dtype=np.uint8)
        assert ds.images.shape == (3, 56, 48, 3) and ds.labels.tolist() == [int(raw[i]["attributes"]["Male"]) for i in range(3)]
        np.testing.assert_array_equal(ds.images[1], celeba.resize_and_crop(raw[1]["image"]))
    with pytest.raises(ValueError, match="split='official'"):
        data.from_tfds("celeba", "train", config=data.CelebAConfig(split="first90"))


def test_from_tfds_never_downloads_and_says_how_to_prepare(tmp_path):
    pytest.importorskip("tensorflow_datasets")
    with pytest.raises(FileNotFoundError, match=r"tfds.builder\('emnist/digits'\).download_and_prepare\(file_format='array_record'\)"):
        data.from_tfds("emnist", "train", tfds_data_dir=str(tmp_path / "tfds"))
    assert not (tmp_path / "tfds").exists()  # nothing was fetched or written
