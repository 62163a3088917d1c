"""Shared pieces of the hostile tests: small saved models of each objective, model files
rebuilt with members or header fields changed, the command run in-process or as a process, a
full disk and device nodes where the machine allows them."""

import io
import json
import os
import stat
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from anirec import Recommender
from anirec.data import write_synthetic


@pytest.fixture(scope="session")
def mal_files(tmp_path_factory):
    """A small synthetic MAL data set: ``(anime csv, scores csv)``."""
    folder = tmp_path_factory.mktemp("mal")
    return write_synthetic(folder, n_users=150, n_anime=120, n_ratings=3000, seed=3)


@pytest.fixture(scope="session")
def models(mal_files, tmp_path_factory):
    """Fitted recommenders and their files: ``{objective: (rec, path)}`` for the hybrid
    default (biases, prior, ID tables) and a ranking model (calibration, no biases)."""
    from anirec import load_mal

    data = load_mal(*mal_files)
    folder = tmp_path_factory.mktemp("models")
    found = {}
    for objective in ("hybrid", "ranking"):
        rec = Recommender(layers=(8, 4), epochs=2, seed=0, objective=objective,
                          embedding_dim=4).fit(data)
        path = folder / f"{objective}.anirec"
        rec.save(path)
        found[objective] = (rec, path)
    return found


def members(path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def npy(array) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.asarray(array), allow_pickle=False)
    return buffer.getvalue()


def header_of(path) -> dict:
    return json.loads(np.load(path)["__header__"].tobytes())


def rebuild(source, target, replace=None, drop=(), header=None, deflate=()):
    """A copy of the model file ``source`` with members replaced (raw bytes), dropped, the
    header replaced, and the members named in ``deflate`` compressed."""
    parts = members(source)
    parts.update(replace or {})
    if header is not None:
        parts["__header__.npy"] = npy(np.frombuffer(json.dumps(header).encode(), np.uint8))
    with zipfile.ZipFile(target, "w") as archive:
        for name, data in parts.items():
            if name not in drop:
                method = zipfile.ZIP_DEFLATED if name in deflate else zipfile.ZIP_STORED
                archive.writestr(name, data, compress_type=method)
    return target


def edit_header(source, target, edit):
    """A copy of ``source`` whose header ``edit(header)`` changed in place."""
    header = header_of(source)
    edit(header)
    return rebuild(source, target, header=header)


def run_command(argv, cwd, env=None, **kwargs) -> subprocess.CompletedProcess:
    """``python -m anirec ARGV`` as a process (outside the checkout, so the installed package
    runs), its output captured as text."""
    return subprocess.run([sys.executable, "-m", "anirec", *map(str, argv)], cwd=cwd,
                          env={**os.environ, **(env or {})}, capture_output=True, text=True,
                          **kwargs)


@pytest.fixture
def full_disk(tmp_path):
    """A folder on a 256 KiB file system (a tmpfs mount), for what a full disk does; skipped
    where mounting is not allowed."""
    folder = tmp_path / "small"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(folder)],
                             capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("cannot mount a small file system here (needs root)")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def device_node(path):
    """A character device at ``path`` (the null device's numbers); skipped where creating
    one is not allowed."""
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except (PermissionError, OSError) as error:
        pytest.skip(f"cannot create a device node here ({error})")
    return path


def is_device(path) -> bool:
    return stat.S_ISCHR(os.lstat(path).st_mode)
