"""Nothing lost through another path: one rule for every output of every command (the same
file however it is spelt, never a device, a FIFO or a folder, checked against every input
and every other output before anything is loaded), writes that leave nothing behind on a full
disk, and a reader of standard output that leaves early stops nothing else."""

import os
import shutil
import subprocess
import sys

import pytest

from anirec import ModelWriteError

from ..conftest import run_cli
from .conftest import device_node, is_device, run_command

TRAIN = ["--epochs", "1", "--layers", "4", "--embedding-dim", "2"]


@pytest.fixture
def inputs(mal_files, tmp_path):
    """The data in folder ``x``, and ``y``, a symbolic link to ``x``."""
    folder = tmp_path / "x"
    folder.mkdir()
    anime, scores = (shutil.copy(path, folder) for path in mal_files)
    (tmp_path / "y").symlink_to(folder)
    return tmp_path, folder / os.path.basename(anime), folder / os.path.basename(scores)


def _untouched(path, before: bytes) -> bool:
    return path.is_file() and not path.is_symlink() and path.read_bytes() == before


@pytest.mark.parametrize("case", ["scores", "anime", "proc"])
def test_an_input_reached_through_another_path_is_never_an_output(inputs, capsys, monkeypatch,
                                                                  case):
    root, anime, scores = inputs
    target = {"scores": scores, "anime": anime, "proc": scores}[case]
    before = target.read_bytes()
    monkeypatch.chdir(root / "x")
    if case == "proc":
        if not os.path.exists("/proc/self/cwd"):
            pytest.skip("no /proc/self/cwd here")
        out = f"/proc/self/cwd/{target.name}"
    else:
        out = root / "y" / target.name  # the same file, through the link
    status, _, err = run_cli(capsys, "train", "--anime", anime, "--scores", scores,
                             "--out", out, *TRAIN)
    assert status == 2 and "also an input" in err, err
    assert _untouched(target, before)


def test_save_split_through_a_link_never_overwrites_the_scores(inputs, capsys):
    root, anime, scores = inputs
    renamed = scores.with_name("test.csv")  # what --save-split writes into its folder
    scores.rename(renamed)
    before = renamed.read_bytes()
    status, _, err = run_cli(capsys, "train", "--anime", anime, "--scores", renamed,
                             "--out", root / "m.anirec", "--save-split", root / "y",
                             *TRAIN)
    assert status == 2 and "also an input" in err, err
    assert _untouched(renamed, before) and not (root / "m.anirec").exists()


@pytest.mark.parametrize("command", ["predict-pairs", "predict-model", "recommend", "similar"])
def test_query_outputs_never_replace_their_inputs(models, tmp_path, capsys, command):
    rec, shared = models["hybrid"]
    model = shutil.copy(shared, tmp_path / "model.anirec")  # what buggy code may overwrite
    folder = tmp_path / "x"
    folder.mkdir()
    local = folder / "model.anirec"
    os.link(model, local)  # a second name of the same file: the inode is what matters
    pairs = folder / "pairs.csv"
    pairs.write_text(f"user_id,anime_id\n{rec.user_ids[0]},{rec.anime_ids[0]}\n")
    (tmp_path / "y").symlink_to(folder)
    argv, victim = {
        "predict-pairs": (["predict", "--model", local, "--pairs", pairs,
                           "--out", tmp_path / "y" / "pairs.csv"], pairs),
        "predict-model": (["predict", "--model", local, "--pairs", pairs, "--out", model],
                          local),
        "recommend": (["recommend", "--model", local, "--user-id", rec.user_ids[0],
                       "--out", tmp_path / "y" / "model.anirec"], local),
        "similar": (["similar", "--model", model, "--anime-id", rec.anime_ids[0],
                     "--out", local], local),
    }[command]
    before = victim.read_bytes()
    status, _, err = run_cli(capsys, *argv)
    assert status == 2 and "also an input" in err, err
    assert victim.read_bytes() == before


def test_the_model_and_the_split_may_not_be_one_file(mal_files, tmp_path, capsys):
    split = tmp_path / "sp"
    status, _, err = run_cli(capsys, "train", "--anime", mal_files[0], "--scores",
                             mal_files[1], "--out", split / "train.csv",
                             "--save-split", split, *TRAIN)
    assert status == 2 and "are the same file" in err, err
    assert not split.exists()  # refused before training: nothing written


@pytest.mark.parametrize("command", ["predict", "recommend", "similar"])
def test_csv_outputs_never_replace_a_device(models, tmp_path, capsys, command):
    rec, model = models["hybrid"]
    device = device_node(tmp_path / "dev")
    pairs = tmp_path / "pairs.csv"
    pairs.write_text(f"user_id,anime_id\n{rec.user_ids[0]},{rec.anime_ids[0]}\n")
    argv = {"predict": ["predict", "--model", model, "--pairs", pairs],
            "recommend": ["recommend", "--model", model, "--user-id", rec.user_ids[0]],
            "similar": ["similar", "--model", model, "--anime-id", rec.anime_ids[0]]}[command]
    status, _, err = run_cli(capsys, *argv, "--out", device)
    assert status == 2 and "not a regular file" in err, err
    assert is_device(device)


def test_a_device_inside_the_split_folder_is_refused_before_training(mal_files, tmp_path,
                                                                      capsys):
    split = tmp_path / "sp"
    split.mkdir()
    device = device_node(split / "validation.csv")
    status, _, err = run_cli(capsys, "train", "--anime", mal_files[0], "--scores",
                             mal_files[1], "--out", tmp_path / "m.anirec",
                             "--save-split", split, *TRAIN)
    assert status == 2 and "not a regular file" in err, err
    assert is_device(device) and not (tmp_path / "m.anirec").exists()


def test_a_fifo_output_is_refused(models, tmp_path, capsys):
    rec, model = models["hybrid"]
    fifo = tmp_path / "out.csv"
    os.mkfifo(fifo)
    status, _, err = run_cli(capsys, "similar", "--model", model, "--anime-id",
                             rec.anime_ids[0], "--out", fifo)
    assert status == 2 and "not a regular file" in err, err


def test_an_unwritable_output_folder_is_refused_before_training(tmp_path, capsys):
    if not os.path.isdir("/proc"):
        pytest.skip("needs /proc")
    missing = tmp_path / "missing.csv"  # were the data loaded first, it would be named
    status, _, err = run_cli(capsys, "train", "--scores", missing, "--out", "/proc/t.anirec")
    assert status == 2 and "/proc" in err and "missing.csv" not in err, err


# ---------------------------------------------------------------------------------------------
# A full disk: one line, nothing half written


def _fill(folder, leave: int) -> None:
    """Fill the file system of ``folder`` up to ``leave`` bytes."""
    info = os.statvfs(folder)
    (folder / "filler").write_bytes(b"\0" * max(info.f_bavail * info.f_frsize - leave, 0))


def _clean(folder) -> set[str]:
    return {p.name for p in folder.rglob("*")} - {"filler"}


def test_generate_on_a_full_disk_leaves_no_partial_file(full_disk, tmp_path):
    done = run_command(["generate", "--out", full_disk / "g", "--users", "2000", "--anime",
                        "500", "--ratings", "50000"], cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert "no space left" in done.stderr and len(done.stderr.splitlines()) == 1
    assert _clean(full_disk) == set()


@pytest.mark.parametrize("what", ["model", "split", "recommendations"])
def test_a_full_disk_is_one_line_and_leaves_nothing(full_disk, models, mal_files, tmp_path,
                                                    what):
    rec, model = models["hybrid"]
    _fill(full_disk, 16 * 1024)
    argv = {
        "model": ["train", "--anime", mal_files[0], "--scores", mal_files[1],
                  "--out", full_disk / "m.anirec", *TRAIN],
        "split": ["train", "--anime", mal_files[0], "--scores", mal_files[1],
                  "--out", tmp_path / "m.anirec", "--save-split", full_disk / "sp", *TRAIN],
        "recommendations": ["recommend", "--model", model, "--all-users", "--n", "50",
                            "--out", full_disk / "recs.csv"],
    }[what]
    done = run_command(argv, cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert "no space left" in done.stderr.splitlines()[-1]
    leftovers = _clean(full_disk) - {"sp"}
    assert not leftovers, leftovers


def test_saving_on_a_full_disk_is_a_model_write_error(full_disk, models):
    rec, _ = models["hybrid"]
    _fill(full_disk, 16 * 1024)
    target = full_disk / "m.anirec"
    with pytest.raises(ModelWriteError, match=r"cannot write the model to '.*m.anirec': no "
                                              r"space left on device"):
        rec.save(target)
    assert _clean(full_disk) == set()


# ---------------------------------------------------------------------------------------------
# A reader that leaves early


def test_a_reader_leaving_early_skips_no_output(mal_files, tmp_path):
    split = tmp_path / "sp"
    command = [sys.executable, "-m", "anirec", "train", "--anime", str(mal_files[0]),
               "--scores", str(mal_files[1]), "--out", str(tmp_path / "m.anirec"),
               "--save-split", str(split), *TRAIN]
    # Unbuffered: each print meets the closed pipe at once, as a terminal's line buffer does.
    with subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"}) as process:
        process.stdout.readline()  # `| head -1`
        process.stdout.close()
        err = process.stderr.read().decode()
        status = process.wait()
    assert status == 0, err
    assert "Traceback" not in err and "Exception ignored" not in err, err
    assert (tmp_path / "m.anirec").is_file()
    assert sorted(p.name for p in split.iterdir()) == ["test.csv", "train.csv",
                                                       "validation.csv"]
