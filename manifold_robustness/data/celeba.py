"""CelebA at 56×48 with a binary attribute label (paper §6.1; reference digest "original code" §3).

Source folder (``$MANIFOLD_ROBUSTNESS_CELEBA``, default ``<data dir>/celeba``)::

    img_align_celeba/000001.jpg … 202599.jpg   aligned faces, 178×218 (W×H)
    list_attr_celeba.txt                       line 1: count; line 2: the 40 attribute names;
                                               then "000001.jpg  -1  1 …" (one ±1 per attribute)
    list_eval_partition.txt                    "000001.jpg 0" with 0 = train, 1 = val, 2 = test

Conversion, as in the original code: resize each image to width 54 and height
int(54·218/178) = 66, then crop 5 rows at the top and bottom and 3 columns at the left and right:
uint8[56, 48, 3].  We resize with Pillow's bilinear filter (antialiased when shrinking); the
original used skimage's ``resize``, so pixels agree closely but not bit for bit.  The converted
arrays (all 40 attributes, −1 → 0) are cached once under ``<data dir>/celeba/<key>`` (atomic,
checksummed), keyed by the conversion settings and a fingerprint of the source files.

Splits (:class:`CelebAConfig`): ``"official"`` (default) trains on the official train + val
partitions (182,637 images) and tests on the official test partition (19,962), which is the
paper's 182k / 20k.  ``"first90"`` reproduces the original code instead: the first 90 % of the
images in file order train (182,339), the last 10 % test (20,260).  Both are the paper's sizes up
to rounding; the official split keeps the test identities disjoint from the training ones.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import json
import logging
import os
import time
from pathlib import Path

import numpy as np

from manifold_robustness.data import cache, sources

log = logging.getLogger(__name__)

CELEBA_ENV = "MANIFOLD_ROBUSTNESS_CELEBA"
IMAGE_DIR = "img_align_celeba"
ATTR_FILE = "list_attr_celeba.txt"
PARTITION_FILE = "list_eval_partition.txt"
SOURCE_HW = (218, 178)
RESIZED_WH = (54, int(54 * 218 / 178))  # (54, 66)
CROP_ROWS, CROP_COLS = 5, 3
IMAGE_SHAPE = (RESIZED_WH[1] - 2 * CROP_ROWS, RESIZED_WH[0] - 2 * CROP_COLS, 3)  # (56, 48, 3)
SPLITS = ("official", "first90")
CONVERSION = {"dataset": "celeba", "resize_wh": list(RESIZED_WH), "crop_rows": CROP_ROWS, "crop_cols": CROP_COLS, "resample": "pillow-bilinear"}
HOW_TO_GET = (
    "CelebA's license asks you to download it yourself: from the CelebA project page take 'Align&Cropped Images' "
    f"(img_align_celeba.zip, 202,599 JPEGs; unzip it so that {IMAGE_DIR}/000001.jpg exists) and, from the annotations, "
    f"{ATTR_FILE} and {PARTITION_FILE}. On a machine with internet, tensorflow-datasets can fetch the same files: "
    "tfds.load('celeb_a') keeps them under ~/tensorflow_datasets/downloads/ with hashed names (unzip the image "
    "archive here and give the two text files the names above); once tfds has prepared celeb_a, "
    "manifold_robustness.data.from_tfds('celeba', split) can also read it directly."
)


@dataclasses.dataclass(frozen=True)
class CelebAConfig:
    """How to split and label CelebA: ``split`` is "official" or "first90" (see the module doc);
    ``attribute`` names the label column of list_attr_celeba.txt ("Male": 0 female, 1 male)."""

    split: str = "official"
    attribute: str = "Male"

    def __post_init__(self):
        if self.split not in SPLITS:
            raise ValueError(f"CelebAConfig.split must be one of {SPLITS}; got {self.split!r}")


@dataclasses.dataclass(frozen=True)
class CelebAData:
    """Converted CelebA: ``images`` uint8[N, 56, 48, 3] and ``attributes`` uint8[N, 40] in {0, 1}
    (memory-mapped), ``partition`` uint8[N] (0 train, 1 val, 2 test), attribute names, folder."""

    images: np.ndarray
    attributes: np.ndarray
    partition: np.ndarray
    attribute_names: list[str]
    meta: dict
    path: Path

    def split_rows(self, split: str, scheme: str = "official") -> np.ndarray:
        """int64 row indices of ``split`` ("train" | "test") under ``scheme``, in file order."""
        if split not in ("train", "test"):
            raise ValueError(f"CelebA has splits 'train' and 'test'; got {split!r}")
        if scheme == "official":
            mask = self.partition <= 1 if split == "train" else self.partition == 2
            return np.flatnonzero(mask)
        if scheme == "first90":
            n_train = len(self.partition) * 9 // 10
            return np.arange(n_train) if split == "train" else np.arange(n_train, len(self.partition))
        raise ValueError(f"CelebA split scheme must be one of {SPLITS}; got {scheme!r}")

    def labels(self, attribute: str = "Male") -> np.ndarray:
        """int32[N] in {0, 1}: the named attribute (−1 in the file → 0, 1 → 1)."""
        if attribute not in self.attribute_names:
            raise ValueError(f"unknown CelebA attribute {attribute!r}; the attribute file has: {', '.join(self.attribute_names)}")
        return np.asarray(self.attributes[:, self.attribute_names.index(attribute)], dtype=np.int32)


def class_names(attribute: str) -> tuple[str, str]:
    """Names of labels 0 and 1 for a binary attribute."""
    return ("female", "male") if attribute == "Male" else (f"not {attribute}", attribute)


def source_folder(source_dir=None, data_dir=None) -> Path:
    return sources.resolve(source_dir, CELEBA_ENV, lambda: cache.data_dir(data_dir) / "celeba")


def check_files(folder: Path) -> None:
    """Raise :class:`~.sources.MissingDatasetFilesError` listing what of CelebA is absent from ``folder``."""
    missing = []
    if not (folder / IMAGE_DIR).is_dir():
        missing.append(f"{IMAGE_DIR}/  (folder of the 202,599 aligned JPEGs 000001.jpg ... 202599.jpg)")
    missing += [name for name in (ATTR_FILE, PARTITION_FILE) if not (folder / name).is_file()]
    if missing:
        raise sources.missing_files_error("CelebA", folder, missing, CELEBA_ENV, HOW_TO_GET)


def parse_attributes(text: str, source: str = ATTR_FILE) -> tuple[list[str], list[str], np.ndarray]:
    """Parse list_attr_celeba.txt: (attribute names [A], image file names [N], values uint8[N, A] in {0, 1}).

    The first line is the image count, the second the attribute names, then one line per image:
    its file name and A values in {−1, 1} (−1 → 0).  Raises ValueError on any deviation.
    """
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) < 2 or not lines[0].strip().isdigit():
        raise ValueError(f"{source}: expected the image count on line 1 and the attribute names on line 2")
    count, names = int(lines[0]), lines[1].split()
    rows = [line.split() for line in lines[2:]]
    if len(rows) != count:
        raise ValueError(f"{source}: line 1 announces {count} images but {len(rows)} follow")
    for i, row in enumerate(rows):
        if len(row) != len(names) + 1:
            raise ValueError(f"{source}: line {i + 3} has {len(row)} fields, expected a file name and {len(names)} values")
    try:
        values = np.array([row[1:] for row in rows], dtype=np.int8).reshape(len(rows), len(names))
    except ValueError as err:
        raise ValueError(f"{source}: attribute values must be -1 or 1 ({err})") from err
    if not np.isin(values, (-1, 1)).all():
        raise ValueError(f"{source}: attribute values must be -1 or 1; found {sorted(set(np.unique(values)) - {-1, 1})}")
    return names, [row[0] for row in rows], (values > 0).astype(np.uint8)


def parse_partition(text: str, files: list[str], source: str = PARTITION_FILE) -> np.ndarray:
    """Parse list_eval_partition.txt ("000001.jpg 0" per line) into uint8[N] aligned with ``files``."""
    table = {}
    for i, line in enumerate(text.splitlines()):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
            raise ValueError(f"{source}: line {i + 1} should be '<file name> <0|1|2>', got {line.strip()!r}")
        table[parts[0]] = int(parts[1])
    absent = [f for f in files if f not in table]
    if absent or len(table) != len(files):
        raise ValueError(
            f"{source} and {ATTR_FILE} list different images ({len(table)} vs {len(files)}; e.g. not partitioned: {absent[:3]})"
        )
    return np.array([table[f] for f in files], dtype=np.uint8)


def resize_and_crop(image: np.ndarray) -> np.ndarray:
    """uint8[218, 178, 3] aligned face → uint8[56, 48, 3]: resize to 54×66 (W×H), crop 5 rows and 3 columns per side."""
    from PIL import Image

    image = np.asarray(image)
    if image.shape != (*SOURCE_HW, 3) or image.dtype != np.uint8:
        raise ValueError(f"expected an aligned CelebA image uint8[218, 178, 3]; got {image.dtype}{list(image.shape)}")
    small = np.asarray(Image.fromarray(image).resize(RESIZED_WH, Image.BILINEAR))
    return small[CROP_ROWS : CROP_ROWS + IMAGE_SHAPE[0], CROP_COLS : CROP_COLS + IMAGE_SHAPE[1]]


def _read_image(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as img:
        return resize_and_crop(np.asarray(img.convert("RGB")))


def fingerprint(folder: Path) -> dict:
    """Content digest of the annotation files and the image folder's listing (names and sizes)."""
    digest = hashlib.sha256()
    with os.scandir(folder / IMAGE_DIR) as it:
        entries = sorted((e.name, e.stat().st_size) for e in it if e.name.endswith(".jpg"))
    for name, size in entries:
        digest.update(f"{name}\0{size}\n".encode())
    return {
        "attributes_crc32": cache.file_crc32(folder / ATTR_FILE),
        "partition_crc32": cache.file_crc32(folder / PARTITION_FILE),
        "images": digest.hexdigest()[:16],
        "num_images": len(entries),
    }


def _convert_images(folder: Path, files: list[str], out: np.ndarray, progress: bool, workers: int) -> None:
    """Fill ``out`` uint8[N, 56, 48, 3] from the JPEGs ``files``, ``workers`` threads (Pillow releases the GIL)."""
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(files), desc="convert CelebA", unit="img", unit_scale=True)

    def chunk(start: int, stop: int) -> int:
        for i in range(start, stop):
            out[i] = _read_image(folder / IMAGE_DIR / files[i])
        return stop - start

    step = 512
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        jobs = [pool.submit(chunk, s, min(s + step, len(files))) for s in range(0, len(files), step)]
        try:
            for job in concurrent.futures.as_completed(jobs):
                done = job.result()
                if bar is not None:
                    bar.update(done)
        except BaseException:
            for job in jobs:
                job.cancel()
            raise
        finally:
            if bar is not None:
                bar.close()


def build(source_dir=None, data_dir=None, progress: bool = True, verify: bool = True) -> CelebAData:
    """Converted CelebA from the cache, converting the source files first when no valid entry exists."""
    folder = source_folder(source_dir, data_dir)
    check_files(folder)
    key = cache.config_key({**CONVERSION, "source": fingerprint(folder)})
    path = cache.data_dir(data_dir) / "celeba" / key
    try:
        return _as_data(*cache.read_entry(path, verify=verify), path)
    except FileNotFoundError:
        pass
    except cache.CorruptCacheError as err:
        log.warning("CelebA cache entry %s is corrupted (%s); converting again.", path, err)
        cache.discard_entry(path)
    t0 = time.perf_counter()
    names, files, attributes = parse_attributes((folder / ATTR_FILE).read_text(), str(folder / ATTR_FILE))
    partition = parse_partition((folder / PARTITION_FILE).read_text(), files, str(folder / PARTITION_FILE))
    absent = [f"{IMAGE_DIR}/{f}" for f in files if not (folder / IMAGE_DIR / f).is_file()]
    if absent:
        raise sources.missing_files_error("CelebA", folder, absent[:10], CELEBA_ENV, HOW_TO_GET, more=len(absent) - 10 if len(absent) > 10 else 0)
    with cache.atomic_entry(path) as tmp:
        images = np.lib.format.open_memmap(tmp / "images.npy", mode="w+", dtype=np.uint8, shape=(len(files), *IMAGE_SHAPE))
        _convert_images(folder, files, images, progress, workers=max(1, os.cpu_count() or 1))
        images.flush()
        del images
        np.save(tmp / "attributes.npy", attributes)
        np.save(tmp / "partition.npy", partition)
        (tmp / "files.json").write_text(json.dumps(files))
        import PIL

        cache.finish_entry(
            tmp,
            {"conversion": CONVERSION, "attribute_names": names, "source": str(folder), "pillow": PIL.__version__,
             "build_seconds": round(time.perf_counter() - t0, 2)},
        )
    log.info("CelebA converted in %.1f s into %s", time.perf_counter() - t0, path)
    return _as_data(*cache.read_entry(path, verify=False), path)


def _as_data(meta: dict, arrays: dict, path: Path) -> CelebAData:
    return CelebAData(
        arrays["images"], arrays["attributes"], np.asarray(arrays["partition"]), list(meta["attribute_names"]), meta, path
    )
