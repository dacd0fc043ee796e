import numpy as np
import pytest

from jointaug.dataset.io import (
    ImageReadError,
    read_image,
    read_label_map,
    write_counts_png,
    write_label_png,
)
from jointaug.files import write_text_atomic


def test_png16_round_trip(tmp_path):
    counts = np.random.default_rng(0).integers(0, 60000, size=(20, 30))
    write_counts_png(tmp_path / "a.png", counts)
    back = read_image(tmp_path / "a.png")
    assert back.shape == (20, 30)
    np.testing.assert_array_equal(back, counts)


def test_png8_tif_npy_dcm(tmp_path):
    import pydicom
    import tifffile
    from PIL import Image
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    arr = np.arange(12 * 10, dtype=np.uint16).reshape(12, 10)
    Image.fromarray(arr.astype(np.uint8)).save(tmp_path / "a8.png")
    np.testing.assert_array_equal(read_image(tmp_path / "a8.png"), arr.astype(np.uint8))
    tifffile.imwrite(tmp_path / "a.tif", arr)
    np.testing.assert_array_equal(read_image(tmp_path / "a.tif"), arr)
    np.save(tmp_path / "a.npy", arr.astype(np.float64) / 3)
    np.testing.assert_allclose(read_image(tmp_path / "a.npy"), arr / 3, rtol=1e-6)

    meta = FileMetaDataset()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.20"  # NM image storage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    ds = FileDataset(str(tmp_path / "a.dcm"), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.Modality = "NM"
    ds.Rows, ds.Columns = arr.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelData = arr.tobytes()
    ds.save_as(tmp_path / "a.dcm", enforce_file_format=True)
    assert pydicom.dcmread(tmp_path / "a.dcm").Modality == "NM"
    np.testing.assert_array_equal(read_image(tmp_path / "a.dcm"), arr)


def test_bad_images_raise_clear_errors(tmp_path):
    np.save(tmp_path / "cube.npy", np.zeros((2, 3, 4)))
    with pytest.raises(ImageReadError, match="2D"):
        read_image(tmp_path / "cube.npy")
    (tmp_path / "junk.png").write_bytes(b"not a png")
    with pytest.raises(ImageReadError, match="junk.png"):
        read_image(tmp_path / "junk.png")
    with pytest.raises(ImageReadError, match="unsupported"):
        read_image(tmp_path / "a.jpg")
    obj = np.array([{"a": 1}], dtype=object)
    np.save(tmp_path / "obj.npy", obj, allow_pickle=True)
    with pytest.raises(ImageReadError):  # never unpickles
        read_image(tmp_path / "obj.npy")


def test_rgb_png_rejected(tmp_path):
    from PIL import Image

    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "rgb.png")
    with pytest.raises(ImageReadError, match="single-channel"):
        read_image(tmp_path / "rgb.png")


def test_label_map_round_trip_and_range(tmp_path):
    m = np.random.default_rng(1).integers(0, 31, size=(16, 16))
    write_label_png(tmp_path / "m.png", m)
    np.testing.assert_array_equal(read_label_map(tmp_path / "m.png"), m)
    with pytest.raises(ValueError):
        write_label_png(tmp_path / "bad.png", np.full((3, 3), 300))


def test_atomic_write_keeps_old_file_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "x.txt"
    write_text_atomic(target, "old")
    import jointaug.dataset.io as io_mod

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(io_mod.os, "replace", boom)
    with pytest.raises(OSError):
        write_text_atomic(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.txt"]  # no temp file left behind


def test_atomic_files_get_normal_permissions(tmp_path):
    import os

    write_text_atomic(tmp_path / "p.txt", "x")
    mode = (tmp_path / "p.txt").stat().st_mode & 0o777
    mask = os.umask(0)
    os.umask(mask)
    assert mode == 0o666 & ~mask
