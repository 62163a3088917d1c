"""Nothing inflated from a small file: every dimension of every member of a model file is
checked against the size the header declares before the member is read, so a member larger
than the model it belongs to is refused at the cost of its ``.npy`` header."""

import io
import re
import tracemalloc
import zipfile

import numpy as np
import pytest

from anirec import ModelFormatError, Recommender
from anirec.model import persistence

from .conftest import edit_header, header_of, members

#: Most bytes a refused load may allocate: a few of the small members, never the big one.
PEAK = 20 * 2**20


def _with_big_member(source, target, name: str, shape, dtype) -> None:
    """A copy of ``source`` whose member ``name`` declares ``shape`` (zeros, deflated: the
    file stays small) and holds that much data."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
                 "fortran_order": False, "shape": shape})
    size = int(np.prod(shape)) * np.dtype(dtype).itemsize
    with zipfile.ZipFile(target, "w") as archive:
        for member, data in members(source).items():
            if member != f"{name}.npy":
                archive.writestr(member, data)
        info = zipfile.ZipInfo(f"{name}.npy")
        info.compress_type = zipfile.ZIP_DEFLATED
        with archive.open(info, "w", force_zip64=True) as stream:
            stream.write(header.getvalue())
            chunk = bytes(1 << 20)
            for start in range(0, size, len(chunk)):
                stream.write(chunk[:min(len(chunk), size - start)])


def _peak_of_failed_load(path) -> tuple[int, str]:
    tracemalloc.start()
    try:
        with pytest.raises(ModelFormatError) as caught:
            Recommender.load(path)
        return tracemalloc.get_traced_memory()[1], str(caught.value)
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("name,shape,dtype,message", [
    # a 300-row ID table holding 10 million rows
    ("model.user_table", (10_000_000, 4), np.float32, r"'model.user_table'.*user table"),
    # 20 million rated anime for 150 users of 120 anime
    ("rated_indices", (20_000_000,), np.int64, r"'rated_indices'.*rated"),
    # anime features 300,000 columns wide
    ("item_x", (None, 300_000), np.float32, r"'item_x'.*item features"),
    # names of 400,000 characters
    ("anime_names", (None,), "<U400000", r"'anime_names'.*longer than"),
])
def test_a_member_larger_than_the_header_says_is_refused_before_inflating(models, tmp_path,
                                                                           name, shape, dtype,
                                                                           message):
    rec, path = models["hybrid"]
    shape = tuple(rec.anime_ids.shape[0] if size is None else size for size in shape)
    target = tmp_path / "big.anirec"
    _with_big_member(path, target, name, shape, dtype)
    assert target.stat().st_size < 2 * 2**20  # a small file
    peak, error = _peak_of_failed_load(target)
    assert peak < PEAK, f"{peak:,} bytes allocated before refusing"
    assert re.search(message, error), error


@pytest.mark.parametrize("field,value,message", [
    ("users", 10**7, r"'model.dims.users' is 150, but the recommender's dims make it "
                     r"10000000"),
    ("rated", 10**9, r"'dims.rated' is 1000000000, expected at most users x anime"),
    ("name length", 10**6, r"'dims.name length' is 1000000, expected at most 4096"),
    ("seen", -1, r"'dims.seen' is -1"),
    ("anime", 3, r"'dims.anime' is not a field"),
])
def test_the_declared_sizes_are_checked_against_each_other(models, tmp_path, field, value,
                                                           message):
    _, path = models["hybrid"]
    target = edit_header(path, tmp_path / "dims.anirec",
                         lambda header: header["dims"].__setitem__(field, value))
    with pytest.raises(ModelFormatError, match=message):
        Recommender.load(target)


@pytest.mark.parametrize("field,value,message", [
    ("item inputs", 999, r"'model.dims.item inputs' is 999, but the recommender's dims make "
                         r"it"),
    ("user table", 10**7, r"'model.dims.user table' is 10000000: .* of at most one row per "
                          r"user row plus one \(150\)"),
    ("users", 10**7, r"'model.dims.users' is 10000000, but the recommender's dims make it 150"),
])
def test_the_model_part_agrees_with_the_recommender(models, tmp_path, field, value, message):
    _, path = models["hybrid"]
    target = edit_header(path, tmp_path / "dims.anirec",
                         lambda header: header["model"]["dims"].__setitem__(field, value))
    with pytest.raises(ModelFormatError, match=message):
        Recommender.load(target)


def test_a_file_of_the_first_format_is_refused_by_name(models, tmp_path):
    _, path = models["hybrid"]
    header = header_of(path)
    assert header["format_version"] == persistence.FORMAT_VERSION == 2
    target = edit_header(path, tmp_path / "old.anirec",
                         lambda header: header.update(format_version=1))
    with pytest.raises(ModelFormatError, match="format version 1.*train and save the model "
                                               "again"):
        Recommender.load(target)
