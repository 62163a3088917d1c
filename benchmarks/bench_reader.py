"""What the compiled scores reader and its sorting helpers buy, end to end.

Every candidate runs in its own child process (so each peak RSS, ``VmHWM``, is its own),
interleaved A, B, C, A, B, C ... for ``--repeats`` rounds; the best time of each is reported,
with its ratio to the first candidate of the table. Run::

    python benchmarks/bench_reader.py                 # full size (24.3M ratings)
    python benchmarks/bench_reader.py --ratings 2000000 --repeats 5

Tables:

* ``read``: the scores CSV to the arrays ``load_mal`` needs from it (user id int64, item index
  int32, rating int8 of the valid rows, the four counts): the compiled reader (when built),
  pyarrow alone (its streaming reader on the file itself, three columns), pandas' C engine,
  and anirec's pyarrow path (pyarrow plus its UTF-8 and line-length pass).
* ``load``: ``load_mal`` as installed, and (when the compiled extension is built) with it
  switched off: the reader is kept only while it saves at least a third of ``load_mal``.
* ``pipeline``: ``load_mal`` + ``split_ratings`` + ``build_features``, stage by stage (with
  ``--before``, against another installation too).

The generated files are cached in ``--dir`` (default ``$ANIREC_BENCH_DIR`` or
``<tmp>/anirec-bench-full``, the directory of ``test_bench_data.py``'s full-size run).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FULL = dict(n_users=270_000, n_anime=25_000, n_ratings=24_325_191, seed=2023)

_CHILD = r"""
import json, sys, time
import numpy as np

def peak_gib():
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**20
    return float("nan")

def lookup_of(anime):
    from anirec.data import load_catalogue
    cat, excluded = load_catalogue(anime)
    top = int(max(cat.anime_ids.max(initial=0), excluded.max(initial=0)))
    lookup = np.full(top + 1, -1, dtype=np.int64)
    lookup[excluded] = -2
    lookup[cat.anime_ids] = np.arange(cat.n_items)
    return lookup

def mapped(uid, aid, rat, lookup):
    # The arrays and counts the pipeline needs from the raw columns (as load_mal computes them).
    inside = aid < lookup.shape[0]
    item = np.full(aid.shape[0], -1, dtype=np.int64)
    item[inside] = lookup[aid[inside]]
    valid = (rat >= 1) & (rat <= 10) & (rat == np.round(rat))
    ok = (item >= 0) & valid
    counts = [aid.shape[0], int((item == -1).sum()), int((item == -2).sum()),
              int(((item >= 0) & ~valid).sum())]
    return (uid[ok], item[ok].astype(np.int32), rat[ok].astype(np.int8)), counts

def read_compiled(scores, lookup):
    from pathlib import Path
    try:
        from anirec.data.scores import _read_scores_fast
    except ImportError:                      # an older build
        from anirec.data.mal import _read_scores_fast
    arrays, counts = _read_scores_fast(Path(scores), lookup, False)
    return arrays, [int(c) for c in counts]

def read_anirec_pyarrow(scores, lookup):
    # anirec's pyarrow path as the numpy backend runs it: UTF-8 and line checks included.
    from pathlib import Path
    from anirec.backend import use_backend
    from anirec.data import load_catalogue, scores as sc
    from anirec.data.types import LoadSummary
    cat, excluded = load_catalogue(sys.argv[2])
    summary = LoadSummary()
    with use_backend("numpy"):
        arrays = sc.read_scores(Path(scores), sc.AnimeLookup(cat.anime_ids, excluded), summary)
    return arrays, [summary.rating_rows, summary.ratings_unknown_anime,
                    summary.ratings_excluded_anime, summary.ratings_invalid]

def read_pyarrow(scores, lookup):
    import pyarrow as pa, pyarrow.csv as pacsv
    opts = pacsv.ConvertOptions(include_columns=["user_id", "anime_id", "rating"],
        column_types={"user_id": pa.int64(), "anime_id": pa.int64(), "rating": pa.float64()})
    parts, counts = [], np.zeros(4, dtype=np.int64)
    with pacsv.open_csv(scores, read_options=pacsv.ReadOptions(block_size=1 << 24),
                        convert_options=opts) as reader:
        for batch in reader:
            (u, i, r), c = mapped(batch.column(0).to_numpy(), batch.column(1).to_numpy(),
                                  batch.column(2).to_numpy(), lookup)
            parts.append((u, i, r))
            counts += c
    return tuple(np.concatenate(p) for p in zip(*parts)), counts.tolist()

def read_pandas(scores, lookup):
    import pandas as pd
    frame = pd.read_csv(scores, usecols=["user_id", "anime_id", "rating"], engine="c",
                        dtype={"user_id": np.int64, "anime_id": np.int64, "rating": np.float64})
    return mapped(frame["user_id"].to_numpy(), frame["anime_id"].to_numpy(),
                  frame["rating"].to_numpy(), lookup)

def best(fn, repeats=3):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out

def helpers(anime, scores):
    # Each compiled helper still in the package against the NumPy code it replaces,
    # interleaved inside this one process.
    from pathlib import Path
    import anirec
    from anirec.data import load_mal, split_ratings
    from anirec.data import _scores
    path = Path(scores)
    r = load_mal(anime, scores).ratings
    out = {}
    pairs = {}
    def split_numpy():
        with anirec.use_backend("numpy"):
            return split_ratings(r, seed=0)
    pairs["split"] = (lambda: split_ratings(r, seed=0), split_numpy)
    raw = path.read_bytes()
    pairs["utf8_scores"] = (lambda: _scores.utf8_error(raw, 0, len(raw)),
                            lambda: raw.decode("utf-8"))
    raw_anime = Path(anime).read_bytes()
    pairs["utf8_anime"] = (lambda: _scores.utf8_error(raw_anime, 0, len(raw_anime)),
                           lambda: raw_anime.decode("utf-8"))
    for key, (compiled, numpy_) in pairs.items():
        tc, tn = [], []
        for _ in range(3):
            tc.append(best(compiled, 1)[0])
            tn.append(best(numpy_, 1)[0])
        out[key] = dict(compiled_s=min(tc), numpy_s=min(tn))
    return out

def run(name, anime, scores):
    if name == "helpers":
        return dict(time_s=0.0, check=[], helpers=helpers(anime, scores))
    if name.startswith("read_"):
        lookup = lookup_of(anime)
        fn = globals()[name]
        t0 = time.perf_counter()
        (u, i, r), counts = fn(scores, lookup)
        t = time.perf_counter() - t0
        check = [int(u.sum() % 1000003), int(i.sum()), int(r.sum())] + list(map(int, counts))
        return dict(time_s=t, check=check)
    from anirec.data import build_features, load_mal, split_ratings
    if name.endswith("_off"):
        from anirec import backend
        from anirec.data import mal, split, _csv
        for module in (mal, split, _csv):
            if hasattr(module, "_scores"):   # an older build: module-level switches
                module._scores = None
        backend.set_backend("numpy")
    elif name.endswith("_noearly"):          # an older build: no overlap with the anime file
        from anirec.data import mal
        mal._read_scores_early = lambda *args: None
    elif name.endswith("_1thread"):          # an older build: one parsing thread
        from anirec.data import mal
        mal._FAST_THREADS = 1
    t0 = time.perf_counter()
    data = load_mal(anime, scores)
    t1 = time.perf_counter()
    out = dict(load_s=t1 - t0)
    if name.startswith("pipeline"):
        sp = split_ratings(data.ratings, seed=0)
        t2 = time.perf_counter()
        build_features(data.catalogue, sp.train, data.ratings.n_users)
        t3 = time.perf_counter()
        out.update(split_s=t2 - t1, features_s=t3 - t2)
    out["time_s"] = time.perf_counter() - t0
    r = data.ratings
    out["check"] = [int(r.users.sum()), int(r.items.sum()), int(r.ratings.sum())]
    return out

out = run(sys.argv[1], sys.argv[2], sys.argv[3])
out["peak_gib"] = peak_gib()
print(json.dumps(out))
"""


def compiled_built() -> bool:
    try:
        from anirec.data import _scores  # noqa: F401
    except ImportError:
        return False
    return True


def files(directory: Path, params: dict) -> tuple[Path, Path]:
    from anirec.data import generate_synthetic
    from anirec.data.synthetic import write_tables

    marker = directory / "params.json"
    anime, scores = directory / "anime-dataset-2023.csv", directory / "users-score-2023.csv"
    if not (marker.exists() and json.loads(marker.read_text()) == params and scores.exists()):
        directory.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        write_tables(generate_synthetic(**params), directory)
        marker.write_text(json.dumps(params))
        print(f"generated {params} in {time.perf_counter() - t0:.0f} s", flush=True)
    return anime, scores


def child(name: str, anime: Path, scores: Path, python: str) -> dict:
    env = dict(os.environ)
    if ":" in name:  # "label:path": the anirec package found under path (e.g. an older copy)
        name, path = name.split(":", 1)
        env["PYTHONPATH"] = path
    out = subprocess.run([python, "-c", _CHILD, name, str(anime), str(scores)], env=env,
                         capture_output=True, text=True, cwd=tempfile.gettempdir())
    if out.returncode != 0:
        raise RuntimeError(f"{name} failed ({out.returncode}): {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def table(title: str, names: list[str], anime: Path, scores: Path, repeats: int,
          python: str) -> list[dict]:
    results: dict[str, list[dict]] = {n: [] for n in names}
    for _ in range(repeats):
        for n in names:
            results[n].append(child(n, anime, scores, python))
    checks = {n: results[n][0]["check"] for n in names}
    same = len({json.dumps(c) for c in checks.values()}) == 1
    rows = []
    base = min(r["time_s"] for r in results[names[0]])
    print(f"\n{title} (best of {repeats}; same arrays: {same})")
    print(f"| candidate | best s | all runs s | x first | peak GiB |")
    print(f"| --- | ---: | --- | ---: | ---: |")
    for n in names:
        times = [r["time_s"] for r in results[n]]
        best = min(times)
        peak = min(r["peak_gib"] for r in results[n])
        print(f"| {n} | {best:.2f} | {' '.join(f'{t:.2f}' for t in times)} | "
              f"{best / base:.2f} | {peak:.2f} |")
        extra = {k: min(r[k] for r in results[n]) for k in ("load_s", "split_s", "features_s")
                 if k in results[n][0]}
        if extra:
            print(f"|   stages | " + ", ".join(f"{k} {v:.2f}" for k, v in extra.items())
                  + " | | | |")
        rows.append(dict(name=n, best_s=best, times=times, peak_gib=peak, **extra))
    if not same:
        print("checks differ:", checks)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ratings", type=int, default=FULL["n_ratings"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--tables", nargs="*", default=["read", "load", "helpers", "pipeline"])
    parser.add_argument("--python", default=sys.executable,
                        help="interpreter of the installation to time")
    parser.add_argument("--variants", nargs="*", default=[],
                        help="more load_mal variants (load_noearly, load_1thread: older "
                             "builds only)")
    parser.add_argument("--before", default=None, metavar="DIR",
                        help="also time the pipeline of the anirec package copied under DIR")
    args = parser.parse_args(argv)
    params = dict(FULL)
    if args.ratings != FULL["n_ratings"]:
        scale = args.ratings / FULL["n_ratings"]
        params.update(n_ratings=args.ratings, n_users=max(int(FULL["n_users"] * scale), 100))
    root = args.dir or Path(os.environ.get("ANIREC_BENCH_DIR", Path(tempfile.gettempdir())
                                           / "anirec-bench-full"))
    if args.ratings != FULL["n_ratings"] and args.dir is None:
        root = root.with_name(root.name + f"-{args.ratings}")
    anime, scores = files(root, params)
    print(f"{scores}: {scores.stat().st_size / 2**20:.0f} MiB, {params['n_ratings']:,} ratings;"
          f" load average {os.getloadavg()[0]:.1f}")
    compiled = compiled_built()
    if "read" in args.tables:
        names = (["read_compiled"] if compiled else []) + ["read_pyarrow", "read_pandas",
                                                           "read_anirec_pyarrow"]
        table("CSV -> (user id, item, rating) arrays and counts", names, anime, scores,
              args.repeats, args.python)
    if "load" in args.tables:
        names = ["load"] + (["load_off"] if compiled else []) + [
            n for n in args.variants]
        table("load_mal", names, anime, scores, args.repeats, args.python)
    if "helpers" in args.tables and compiled:
        res = child("helpers", anime, scores, args.python)
        print("\ncompiled helper vs NumPy, same process, best of 3 interleaved")
        print("| helper | compiled s | NumPy s | saved s |")
        print("| --- | ---: | ---: | ---: |")
        for key, v in res["helpers"].items():
            print(f"| {key} | {v['compiled_s']:.3f} | {v['numpy_s']:.3f} | "
                  f"{v['numpy_s'] - v['compiled_s']:.3f} |")
    if "pipeline" in args.tables:
        names = ([f"pipeline:{args.before}"] if args.before else []) + ["pipeline"]
        table("load_mal + split_ratings + build_features", names, anime, scores,
              args.repeats, args.python)
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
