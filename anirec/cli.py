"""The ``anirec`` command (also ``python -m anirec``).

Bad input (a missing file, a bad column, an unknown id, a malformed option) exits with status 2
and one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from anirec import options
from anirec._files import atomic_write, check_target
from anirec.errors import AnirecError, AnirecWarning
from anirec.options import CLI_MAX_EPOCHS

EXIT_BAD_INPUT = 2


class UsageError(Exception):
    """A malformed option value."""


#: Output paths meaning standard output.
STDOUT = "-"

# Upper bounds of size options: far above any real use (MyAnimeList has 270k users, 25k anime,
# 24M ratings), low enough that a typo fails at once instead of exhausting the memory.
MAX_USERS, MAX_ANIME, MAX_RATINGS = 10_000_000, 1_000_000, 200_000_000
MAX_EPOCHS, MAX_N = CLI_MAX_EPOCHS, 1_000_000


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line on stderr and exit status 2."""

    def error(self, message):
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}\n")


class _HelpFormatter(argparse.HelpFormatter):
    """Appends ``(default: ...)`` to every option whose help does not state its default."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text or action.default in (None, argparse.SUPPRESS) or \
                not action.option_strings:
            return text
        if isinstance(action.default, bool):
            return text + (" (default: on)" if action.default else " (default: off)")
        default = ",".join(map(str, action.default)) if isinstance(action.default, tuple) \
            else "%(default)s"
        return f"{text} (default: {default})"


# ---------------------------------------------------------------------------------------------
# Option parsing helpers


def _bounded_int(low: int, high: int):
    """An argparse type: an integer within ``low..high``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected an integer within {low}..{high}, "
                                             f"got {text}")
        return value

    return parse


def _names(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _genre_ratings(text: str) -> dict[str, float]:
    ratings = {}
    for part in filter(None, (piece.strip() for piece in text.split(","))):
        name, sep, value = part.rpartition("=")
        try:
            ratings[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep or not name.strip():
            raise argparse.ArgumentTypeError(f"expected Genre=rating pairs like "
                                             f"'Action=9,Comedy=7', got {part!r}")
    if not ratings:
        raise argparse.ArgumentTypeError("no genre ratings given")
    return ratings


def _float_type(accept, expected: str):
    """An argparse type: a float for which ``accept`` holds, else one line naming it."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and accept(value)):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value
    return parse


_finite_float = _float_type(lambda v: True, "a finite number")


def _option_type(option):
    """An argparse type reading an option's value as its kind does (its bounds, the command
    line's caps), one line naming what was expected."""
    def parse(text: str):
        try:
            return option.kind.parse(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
    return parse


# ---------------------------------------------------------------------------------------------
# Output paths: checked before any loading or training, written atomically


def _is_stdout(path) -> bool:
    return path is not None and str(path) == STDOUT


def _check_outputs(outputs, inputs=(), *, stdout: bool = False) -> None:
    """Refuse, before anything is loaded or trained, the outputs of a command that cannot be
    written or would destroy something: the one rule of every output.

    ``outputs`` are ``(option, path, is_folder)``; the files written into an output folder are
    listed as outputs of their own. Each file must be a regular file or not exist (never a
    symbolic link, a device, a FIFO or a folder: :func:`anirec._files.check_target`), in a
    folder that exists or can be created, where a file can be created. No output may be one of
    ``inputs`` or another output, however the paths are spelt (:func:`anirec._files.same_file`:
    resolved paths, device and inode). ``-`` (standard output) is allowed where ``stdout``.
    """
    from anirec import _files

    files = []
    for option, path, is_folder in outputs:
        if _is_stdout(path):
            if stdout and not is_folder:
                continue
            raise UsageError(f"{option} - (standard output) is not possible here: give a path")
        path = Path(path)
        if is_folder and path.exists() and not path.is_dir():
            raise UsageError(f"{option} {path} is a file, not a folder")
        ancestor = Path(os.path.abspath(path if is_folder else path.parent))
        while not ancestor.exists():
            ancestor = ancestor.parent
        if not ancestor.is_dir():
            raise UsageError(f"{option} {path}: {ancestor} is a file, not a folder")
        try:
            if not is_folder:
                _files.check_target(path, option)
                files.append((option, path))
            _files.check_writable_folder(ancestor, f"{option} {path}")
        except _files.OutputError as error:
            raise UsageError(str(error)) from None
    for position, (option, path) in enumerate(files):
        for source in inputs:
            if source is not None and _files.same_file(source, path):
                raise UsageError(f"{option} {path} is also an input of this command "
                                 f"({source}): it would be overwritten")
        for other_option, other in files[:position]:
            if _files.same_file(other, path):
                raise UsageError(f"{option} {path} and {other_option} {other} are the same "
                                 "file: one output would overwrite the other")


@contextlib.contextmanager
def _atomic_output(path):
    """A text stream for ``path`` (standard output for ``-``): written to a temporary file in
    the same folder and renamed over ``path`` only when the block succeeds, so a failed
    command leaves no partial file (:func:`anirec._files.atomic_write`)."""
    if _is_stdout(path):
        yield sys.stdout
        sys.stdout.flush()
        return
    path = Path(path)
    created = _make_folder(path.parent)
    try:
        # Checked again when written: the path may have become a device or a link since.
        with atomic_write(path, mode=check_target(path, "the CSV file"), what="the CSV file",
                          before_replace=lambda: check_target(path, "the CSV file")) as handle:
            stream = io.TextIOWrapper(handle, encoding="utf-8", newline="")
            yield stream
            stream.detach()  # flushed; the handle stays open to be synced and closed
    except BaseException:
        _remove_folders(created)
        raise


def _make_folder(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents; returns those created, deepest first."""
    created, missing = [], Path(os.path.abspath(folder))
    while not missing.exists():
        created.append(missing)
        missing = missing.parent
    folder.mkdir(parents=True, exist_ok=True)
    return created


def _remove_folders(folders: list[Path]) -> None:
    """Remove folders a failed command created (deepest first), if still empty."""
    for folder in folders:
        with contextlib.suppress(OSError):
            folder.rmdir()


# ---------------------------------------------------------------------------------------------
# Output helpers


def _print_json(value) -> None:
    print(json.dumps(value, indent=2, default=_json_default, allow_nan=False))


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot serialise {type(value).__name__}")


def _records(frame: pd.DataFrame) -> list[dict]:
    """JSON-ready rows (NaN and infinities become null)."""
    clean = frame.astype(object).where(frame.notna(), None)
    return [{key: (None if isinstance(v, float) and not math.isfinite(v) else v)
             for key, v in row.items()} for row in clean.to_dict(orient="records")]


def _table(frame: pd.DataFrame) -> str:
    from anirec.metrics import format_evaluation

    return format_evaluation(frame)


def _count(number: int, noun: str) -> str:
    """``"1 epoch"``, ``"3 epochs"``."""
    return f"{number} {noun}{'' if number == 1 else 's'}"


# ---------------------------------------------------------------------------------------------
# Commands


def read_pairs(path: Path, columns=("user_id", "anime_id")) -> pd.DataFrame:
    """The pairs of a CSV file: the user and anime id ``columns`` as int64 columns (the one id
    rule, errors naming the line), every other column kept as its text."""
    from anirec.data import _csv, _ids
    from anirec.errors import DataError

    path = Path(path)
    header = _csv.read_header(path, ())
    missing = [column for column in columns if column not in header]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing} (found {header}); name the "
                        "columns with --user-col, --item-col")
    _, text = _csv.read_text_columns(path)
    frame = pd.DataFrame({name: column.to_numpy(zero_copy_only=False)
                          for name, column in text.items()})
    for column in columns:
        frame[column] = _ids.parse_text_ids(
            text[column], path, column, lambda row: f"line {_csv.record_line(path, row)}")
    return frame


def _load_data(args, rating_scale=None, exclude_genres=None):
    """The ratings of ``--scores``, read by every command the same way: through ``load_mal``
    for MyAnimeList files (an anime file, MAL's columns and scale), else as a plain table
    (``load_ratings``) with the columns of ``--user-col, --item-col, --rating-col``."""
    from anirec.data import DEFAULT_EXCLUDED_GENRES, load_mal
    from anirec.data.ratings import COLUMNS, load_ratings
    from anirec.data.scale import MAL_SCALE

    scale = args.rating_scale if rating_scale is None else rating_scale
    exclude = exclude_genres if exclude_genres is not None else \
        DEFAULT_EXCLUDED_GENRES if args.exclude_genres is None else args.exclude_genres
    columns = (args.user_col, args.item_col, args.rating_col)
    if args.anime is None or (scale is not None and tuple(scale) != MAL_SCALE) or \
            columns != tuple(COLUMNS):
        return load_ratings(args.scores, user=args.user_col, item=args.item_col,
                            rating=args.rating_col, rating_scale=scale,
                            catalogue=args.anime, exclude_genres=exclude)
    return load_mal(args.anime, args.scores, exclude_genres=exclude, progress=not args.quiet)


def _scale(text: str) -> tuple[float, float]:
    parts = text.split(",")
    try:
        low, high = (float(part) for part in parts)
    except ValueError:
        low = high = math.nan
    if not (math.isfinite(low) and math.isfinite(high) and low < high and
            math.isfinite(high - low)):
        raise argparse.ArgumentTypeError(f"expected LOW,HIGH with LOW < HIGH (finite, and "
                                         f"so is HIGH - LOW), e.g. 0.5,5, got {text!r}")
    return low, high


def _write_csv(frame: pd.DataFrame, path) -> None:
    with _atomic_output(path) as stream:
        frame.to_csv(stream, index=False)


def cmd_generate(args) -> None:
    from anirec.data import write_synthetic
    from anirec.data.synthetic import ANIME_FILENAME, SCORES_FILENAME

    _check_outputs([("--out", args.out, True),
                    *(("--out", Path(args.out) / name, False)
                      for name in (ANIME_FILENAME, SCORES_FILENAME))])
    created = _make_folder(Path(args.out))
    try:
        anime, scores = write_synthetic(args.out, n_users=args.users, n_anime=args.anime,
                                        n_ratings=args.ratings, seed=args.seed)
    except BaseException:
        _remove_folders(created)
        raise
    print(f"wrote {anime}\nwrote {scores}")


def _recommender(args):
    """The Recommender of ``anirec train``: every flag given passed on by its option's name
    (a flag left out: the Recommender's default); refuses flags its objective would ignore
    and fractions that leave nothing to train on."""
    from anirec import Recommender

    given = {option.name: getattr(args, option.name) for option in options.flags()
             if getattr(args, option.name) is not None}
    chosen = {name: given.get(name, options.RECOMMENDER[name].default)
              for name in ("objective", "valid", "test")}
    useless = [option.flag for option in options.flags() if option.name in given and
               option.objectives and chosen["objective"] not in option.objectives]
    if useless:
        raise UsageError(f"{', '.join(useless)} has no effect with --objective "
                         f"{chosen['objective']}")
    if chosen["valid"] + chosen["test"] >= 1:
        raise UsageError(f"--validation {chosen['valid']:g} and --test {chosen['test']:g} leave "
                         "no training ratings: their sum must be below 1")
    return Recommender(verbose=not args.quiet, **given)


def _shortfalls(report: pd.DataFrame, objective: str) -> list[str]:
    """Where the model does worse on the test split than a baseline printed beside it, on
    what its objective trains for: RMSE for ``rating`` and ``hybrid`` (against every baseline
    that predicts ratings), NDCG@10 for ``ranking`` and ``hybrid`` (against every baseline
    that ranks). A model that loses there is worse than a rule of thumb it is sold beside."""
    model, baselines = report.loc["two-tower"], report.drop(index="two-tower")
    metrics = {"rating": [("rmse", "predicts", min)], "ranking": [("ndcg@10", "ranks", max)],
               "hybrid": [("rmse", "predicts", min), ("ndcg@10", "ranks", max)]}[objective]
    found = []
    for metric, verb, best in metrics:
        values = baselines[metric].dropna()
        if values.empty or not np.isfinite(model[metric]):
            continue
        name = values.idxmin() if best is min else values.idxmax()
        if best(model[metric], values[name]) != model[metric]:
            found.append(f"the model {verb} worse than the {name} baseline on the test split "
                         f"({metric.upper()} {model[metric]:.4f} against {values[name]:.4f})")
    return found


def cmd_train(args) -> None:
    outputs = [("--out", args.out, False)]
    if args.save_split is not None:
        outputs += [("--save-split", args.save_split, True),
                    *(("--save-split", Path(args.save_split) / f"{name}.csv", False)
                      for name in ("train", "validation", "test"))]
    _check_outputs(outputs, inputs=(args.anime, args.scores))
    recommender = _recommender(args)  # refuses contradicting options before loading
    tested = recommender.options["test"] > 0
    if args.strict and not tested:
        raise UsageError("--strict compares the model with the baselines on the test split: "
                         "it needs --test above 0")
    data = _load_data(args)
    print(data.summary)
    started = time.perf_counter()
    rec = recommender.fit(data)
    report = rec.evaluate(k=10, threshold=args.threshold) if tested else None
    shortfalls = _shortfalls(report, rec.model.objective) if report is not None else []
    if args.strict and shortfalls:
        raise UsageError(f"{shortfalls[0]}: nothing saved (--strict)")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    rec.save(args.out)
    history = rec.model.history_
    print(f"trained {_count(len(history), 'epoch')} in {time.perf_counter() - started:.1f} s "
          f"(best epoch {rec.model.best_epoch_}); saved {args.out}")
    if args.save_split is not None:
        folder = Path(args.save_split)
        for name, frame in rec.split_frames().items():
            _write_csv(frame, folder / f"{name}.csv")
        print(f"wrote the train, validation and test ratings to {folder}")
    if report is not None:
        print(_table(report))
    else:
        print("anirec train: note: no test split (--test 0), so the model was not compared "
              "with the baselines", file=sys.stderr)
    for shortfall in shortfalls:
        print(f"anirec train: warning: {shortfall} (--strict refuses to save such a model)",
              file=sys.stderr)


def cmd_evaluate(args) -> None:
    from anirec import Recommender

    rec = Recommender.load(args.model)
    # Read as train reads its ratings; what the loader drops is counted with what the model
    # cannot score, each under its reason.
    data = _load_data(args, rating_scale=rec.rating_scale, exclude_genres=rec.excluded_genres)
    ratings, summary = data.ratings, data.summary
    heldout = pd.DataFrame({
        "user_id": ratings.user_ids[ratings.users],
        "anime_id": data.catalogue.anime_ids[ratings.items],
        "rating": ratings.ratings,
    })
    report = rec.evaluate(heldout, k=args.k, threshold=args.threshold, strict=args.strict)
    dropped = {"anime not in the anime file": summary.ratings_unknown_anime,
               "anime of an excluded genre": summary.ratings_excluded_anime,
               f"rating missing or not on the scale {rec.rating_scale}":
                   summary.ratings_invalid,
               "repeated (user, anime) pairs": summary.ratings_duplicate}
    skipped = dict(report.attrs["skipped_by"])
    for reason, count in dropped.items():
        skipped[reason] = skipped.get(reason, 0) + int(count)
    report.attrs.update(skipped_by=skipped, skipped=sum(skipped.values()))
    if args.json:
        _print_json({"attrs": report.attrs, "methods": dict(zip(report.index,
                                                                 _records(report)))})
    else:
        print(_table(report))


def cmd_predict(args) -> None:
    from anirec import Recommender
    from anirec.data import _csv

    inputs = (args.model, args.pairs) + ((args.ratings,) if args.ratings is not None else ())
    _check_outputs([("--out", args.out, False)], inputs=inputs, stdout=True)
    rec = Recommender.load(args.model)
    if args.ratings is not None:
        _predict_for_ratings(rec, args)
        return
    pairs = read_pairs(args.pairs, (args.user_col, args.item_col))
    users, anime = pairs[args.user_col].to_numpy(), pairs[args.item_col].to_numpy()
    # The rule of every function that takes pairs: skip and count, or refuse with --strict.
    located = rec.locate(users, anime, strict=args.strict, where=lambda row: f"{args.pairs}, "
                         f"line {_csv.record_line(Path(args.pairs), row)}")
    predicted = np.full(len(pairs), np.nan)
    predicted[located.known] = rec.predict(users[located.known], anime[located.known])
    pairs["predicted_rating"] = predicted
    _write_csv(pairs, args.out)
    if located.n_skipped:
        print(f"anirec predict: {located.describe()}: their predicted_rating is empty "
              "(--strict refuses them)", file=sys.stderr)
    if not _is_stdout(args.out):
        print(f"wrote {len(pairs)} predictions to {args.out}")


def _predict_for_ratings(rec, args) -> None:
    """``predict --ratings``: the anime of ``--pairs`` (its anime id column alone) for the
    person of ``--ratings``, folded in; unknown anime skipped and counted, or refused."""
    from anirec import foldin
    from anirec.data import _csv
    from anirec.errors import UnknownIdError

    pairs = read_pairs(args.pairs, (args.item_col,))
    anime = pairs[args.item_col].to_numpy()
    _, known, unknown = foldin.locate_anime(rec, anime)
    if args.strict and not known.all():
        row = int(np.flatnonzero(~known)[0])
        raise UnknownIdError(f"{args.pairs}, line {_csv.record_line(Path(args.pairs), row)}: "
                             f"{rec._anime.why(anime[row])} ({int((~known).sum())} of "
                             f"{known.shape[0]} anime are unknown; without --strict their "
                             "prediction is empty)")
    predicted = np.full(len(pairs), np.nan)
    predicted[known] = rec.predict_for_ratings(args.ratings, anime[known])
    pairs["predicted_rating"] = predicted
    _write_csv(pairs, args.out)
    if not known.all():
        print(f"anirec predict: {int((~known).sum())} of {known.shape[0]} anime skipped "
              f"({foldin.count_unknown(unknown)}): their predicted_rating is empty (--strict "
              "refuses them)", file=sys.stderr)
    if not _is_stdout(args.out):
        print(f"wrote {len(pairs)} predictions to {args.out}")


def _filters(args) -> dict:
    """The recommendation filters of the command line as ``Recommender`` takes them."""
    genres = [*(args.only_genres or ()), *(f"-{g}" for g in args.without_genres or ())]
    types = [*(args.only_types or ()), *(f"-{t}" for t in args.without_types or ())]
    return {"genres": genres or None, "types": types or None, "min_year": args.min_year}


def _emit(frame: pd.DataFrame, args, stream=None, header: bool = True) -> None:
    if stream is not None:
        frame.to_csv(stream, index=False, header=header)
    elif args.json:
        _print_json(_records(frame))
    else:
        print(frame.to_string(index=False, float_format=lambda value: f"{value:.4f}"))


def _capped_n(rec, n: int) -> int:
    """``n`` capped at the catalogue size: a longer list would be padding only."""
    return max(1, min(int(n), int(rec.anime_ids.shape[0])))


def cmd_recommend(args) -> None:
    from anirec import Recommender

    if args.out is not None:
        inputs = (args.model,) + ((args.ratings,) if args.ratings is not None else ())
        _check_outputs([("--out", args.out, False)], inputs=inputs, stdout=True)
    elif args.all_users:
        raise UsageError("--all-users writes a CSV: give --out RECS.csv (or --out - for "
                         "standard output)")
    filters = _filters(args)
    if args.all_users and any(value is not None for value in filters.values()):
        raise UsageError("the filters (--only-genres, --without-genres, --only-types, "
                         "--without-types, --min-year) apply to --user-id, --genres and "
                         "--ratings, not --all-users")
    if args.explain and args.ratings is None:
        raise UsageError("--explain gives the reasons of recommendations for --ratings")
    if args.genre_scale is not None and args.genres is None:
        raise UsageError("--genre-scale has no effect without --genres")
    rec = Recommender.load(args.model)
    n = _capped_n(rec, args.n)
    # One-query results are computed before the output is opened, so that an unknown id
    # leaves no folder or file behind.
    if args.genres is not None:
        frames = [rec.recommend_for_genres(args.genres, n=n, scale=args.genre_scale,
                                           exclude=args.exclude, **filters)]
    elif args.ratings is not None:
        frames = [rec.recommend_for_ratings(args.ratings, n=n, exclude=args.exclude,
                                            explain=args.explain, **filters)]
    elif args.user_id:
        frames = [rec.recommend(args.user_id, n=n, exclude=args.exclude, **filters)]
    else:
        frames = rec.iter_recommend_all(n=n, exclude=args.exclude)
    with (_atomic_output(args.out) if args.out is not None else contextlib.nullcontext()) \
            as stream:
        for position, frame in enumerate(frames):
            _emit(frame, args, stream, header=position == 0)
            if getattr(sys.stdout, "reader_gone", False) and _is_stdout(args.out):
                break  # standard output was the only output, and its reader has gone
    if args.all_users and not _is_stdout(args.out):
        print(f"wrote recommendations for {rec.user_ids.shape[0]} users to {args.out}")


def cmd_similar(args) -> None:
    from anirec import Recommender

    if args.out is not None:
        _check_outputs([("--out", args.out, False)], inputs=(args.model,), stdout=True)
    rec = Recommender.load(args.model)
    frame = rec.similar(args.anime_id, n=_capped_n(rec, args.n))
    with (_atomic_output(args.out) if args.out is not None else contextlib.nullcontext()) \
            as stream:
        _emit(frame, args, stream)


def _info_text(info: dict, path) -> str:
    from anirec.data.scale import RatingScale

    model = info["model"]
    history = info["history"] or []
    kept = info["best_epoch"] or (len(history) or None)
    entry = history[kept - 1] if kept and len(history) >= kept else {}
    lines = [
        f"model file      {path}",
        f"objective       {model.get('objective')}",
        f"rating scale    {info['rating_scale'][0]:g}..{info['rating_scale'][1]:g} "
        f"(predictions and genre ratings; relevant: rating >= "
        f"{RatingScale(*info['rating_scale']).relevance_threshold():g})",
        f"towers          [in, {', '.join(map(str, model.get('layers', [])))}]",
        f"users, anime    {info['users']} users, {info['anime']} anime "
        f"({len(info['genres'])} genres; excluded {', '.join(info['excluded_genres']) or 'none'})",
        f"training        {len(history)} epochs, kept epoch {kept}"
        + (f", validation RMSE {entry['val_rmse']:.4f}" if "val_rmse" in entry else ""),
        f"split           validation {info['options'].get('valid')}, "
        f"test {info['options'].get('test')}, seed {info['options'].get('seed')}",
    ]
    summary = info.get("summary") or {}
    if summary:
        lines.append(f"data            {summary.get('ratings_kept')} ratings kept of "
                     f"{summary.get('rating_rows')} rows")
    lines.append("(--json for every setting and the epoch history)")
    return "\n".join(lines)


def cmd_info(args) -> None:
    from anirec import Recommender

    info = Recommender.load(args.model).info()
    if args.json:
        _print_json(info)
    else:
        print(_info_text(info, args.model))


def cmd_demo(args) -> None:
    from anirec.demo import run_demo

    _check_outputs([("--out", args.out, True)])
    run_demo(out_dir=args.out, n_users=args.users, n_anime=args.anime, n_ratings=args.ratings,
             epochs=args.epochs, seed=args.seed, verbose=not args.quiet)


# ---------------------------------------------------------------------------------------------
# Parser

_RATINGS_HELP = ("your own list: a MyAnimeList list export (XML, gzipped or not, as "
                 "downloaded) or a CSV with the columns anime_id and rating")
_SCORE_HELP = ("Output columns: rank; score, the retrieval score that ranks the list (higher "
               "first: the cosine of the user and anime towers, and for the ranking and hybrid "
               "objectives cosine / temperature + popularity weight x the log popularity of "
               "the anime + quality weight x its rating bias; 'anirec info --json' shows the "
               "weights); "
               "predicted_rating, the model's rating of the anime for that user on the rating "
               "scale (it need not fall down the list: the score also weighs how likely the "
               "user is to pick the anime); anime_id; name; genres; with --explain, because: "
               "the anime of your list that support the recommendation most (removing the "
               "first from your ratings lowers its score), with your ratings, then the genres "
               "that push it. Anime the user rated (training, validation or test split), and "
               "with --ratings every anime on the list, are never recommended.")


def _metrics_help() -> str:
    from anirec.metrics import explain_metrics

    return "Evaluation columns (k = 10 unless --k): " + "; ".join(
        explain_metrics().splitlines()) + "."


_METRICS_HELP = _metrics_help()


def _add_size_options(parser, epochs_default: int | None = None) -> None:
    parser.add_argument("--users", type=_bounded_int(1, MAX_USERS), default=2000,
                        help="number of users")
    parser.add_argument("--anime", type=_bounded_int(1, MAX_ANIME), default=1500,
                        help="number of anime")
    parser.add_argument("--ratings", type=_bounded_int(1, MAX_RATINGS), default=150_000,
                        help="number of ratings")
    if epochs_default is not None:
        parser.add_argument("--epochs", type=_bounded_int(1, MAX_EPOCHS),
                            default=epochs_default, help="training epochs of each model")
    parser.add_argument("--seed", type=_bounded_int(0, 2**32 - 1), default=0,
                        help="random seed")


def _add_column_options(parser, flag: str, rating: bool = True) -> None:
    """``--user-col, --item-col`` (and ``--rating-col``): the same options on every command
    that reads ratings or pairs."""
    from anirec.data.ratings import COLUMNS

    parser.add_argument("--user-col", default=COLUMNS.user, help=f"user id column of {flag}")
    parser.add_argument("--item-col", default=COLUMNS.item,
                        help=f"item (anime) id column of {flag}")
    if rating:
        parser.add_argument("--rating-col", default=COLUMNS.rating,
                            help=f"rating column of {flag}")


def _add_threshold_option(parser) -> None:
    from anirec.data.scale import RELEVANT_FRACTION

    parser.add_argument("--threshold", type=_finite_float, default=None,
                        help="held-out ratings at least this are relevant for the ranking "
                             f"metrics (default: {RELEVANT_FRACTION:g} of the way up the "
                             "model's scale, '4 of 5 stars and up': 4 on 1..5 and 0.5..5, 8 "
                             "on 1..10; the table says which)")


def _add_training_options(parser) -> None:
    """One flag per option of :func:`anirec.options.flags`: its bounds, its help and its
    default (shown; a flag left out is ``None``, the Recommender's default)."""
    for option in options.flags():
        if isinstance(option.kind, options.Boolean):
            how = {"action": argparse.BooleanOptionalAction}
        elif isinstance(option.kind, options.Choice):
            how = {"choices": option.kind.values}
        else:
            how = {"type": _option_type(option)}
        parser.add_argument(option.flag, dest=option.name, default=None,
                            help=option.help_line, **how)


def build_parser() -> argparse.ArgumentParser:
    from anirec import __version__

    parser = _Parser(prog="anirec", description="Two-tower anime recommendation.",
                     formatter_class=_HelpFormatter,
                     epilog="Run 'anirec COMMAND --help' for the options of a command.")
    parser.add_argument("--version", action="version", version=f"anirec {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser,
                                     title="commands")

    def command(name, help, **kwargs):
        return commands.add_parser(name, help=help, description=help[0].upper() + help[1:] + ".",
                                   formatter_class=_HelpFormatter, **kwargs)

    demo = command("demo", "train and show everything on the embedded synthetic data",
                   epilog=_METRICS_HELP)
    _add_size_options(demo, epochs_default=15)
    demo.add_argument("--out", type=Path, default=Path("anirec-demo"),
                      help="folder for the model and the loss curves (default ./anirec-demo)")
    demo.set_defaults(run=cmd_demo)

    generate = command("generate", "write a synthetic MAL 2023 data set")
    generate.add_argument("--out", type=Path, required=True,
                          help="folder for anime-dataset-2023.csv and users-score-2023.csv "
                               "(created if missing)")
    _add_size_options(generate)
    generate.set_defaults(run=cmd_generate)

    train = command("train", "train a recommender on MAL 2023 files or any ratings table",
                    epilog=_METRICS_HELP)
    train.add_argument("--anime", type=Path, default=None,
                       help="anime-dataset-2023.csv, for genres and attributes (default: none, "
                            "the items are known by their ids only)")
    train.add_argument("--scores", type=Path, required=True,
                       help="ratings CSV: users-score-2023.csv or any table with a user, an "
                            "item and a rating column")
    _add_column_options(train, "--scores")
    train.add_argument("--rating-scale", type=_scale, default=None, metavar="LOW,HIGH",
                       help="lowest and highest possible rating, e.g. 0.5,5; predictions stay "
                            "on it (default: 1,10 for MAL files, else the lowest and highest "
                            "rating in the file)")
    train.add_argument("--out", type=Path, required=True,
                       help="model file to write (its folder is created if missing)")
    train.add_argument("--save-split", type=Path, default=None, metavar="FOLDER",
                       help="also write the split's ratings there as train.csv, "
                            "validation.csv and test.csv (default: not written)")
    train.add_argument("--strict", action="store_true",
                       help="refuse to save a model that does worse on the test split than a "
                            "baseline printed beside it, on what its objective trains for "
                            "(RMSE for rating and hybrid, NDCG@10 for ranking and hybrid); "
                            "without it such a model is saved with a warning")
    train.add_argument("--exclude-genres", type=_names, default=None,
                       help="comma-separated genres to drop (default Ecchi,Hentai,Erotica; "
                            "'' for none)")
    _add_training_options(train)
    _add_threshold_option(train)
    train.set_defaults(run=cmd_train)

    evaluate = command("evaluate", "score a model on held-out ratings", epilog=_METRICS_HELP)
    evaluate.add_argument("--model", type=Path, required=True, help="model file")
    evaluate.add_argument("--anime", type=Path, default=None,
                          help="anime-dataset-2023.csv: ratings of anime not in it are skipped "
                               "(default: none, the model's catalogue decides)")
    evaluate.add_argument("--scores", type=Path, required=True,
                          help="held-out ratings CSV on the model's scale, e.g. the test.csv "
                               "of train --save-split")
    _add_column_options(evaluate, "--scores")
    evaluate.add_argument("--k", type=_bounded_int(1, MAX_N), default=10,
                          help="length of the ranked lists")
    _add_threshold_option(evaluate)
    evaluate.add_argument("--strict", action="store_true",
                          help="refuse ratings of unknown users or anime instead of skipping "
                               "and counting them")
    evaluate.add_argument("--json", action="store_true", help="print JSON")
    evaluate.set_defaults(run=cmd_evaluate)

    predict = command("predict", "predict ratings for user/anime pairs, or for your own list")
    predict.add_argument("--model", type=Path, required=True, help="model file")
    predict.add_argument("--pairs", type=Path, required=True,
                         help="CSV with a user id and an anime id column (others are kept); "
                              "with --ratings, the anime id column alone is read")
    predict.add_argument("--ratings", type=Path, default=None, metavar="FILE",
                         help=_RATINGS_HELP + ": predict for that person, folded in, instead "
                              "of the users of --pairs (default: none)")
    _add_column_options(predict, "--pairs", rating=False)
    predict.add_argument("--out", type=Path, default=Path(STDOUT),
                         help="CSV to write, '-' for standard output (default: -)")
    predict.add_argument("--strict", action="store_true",
                         help="refuse pairs of unknown users or anime instead of leaving their "
                              "prediction empty")
    predict.set_defaults(run=cmd_predict)

    recommend = command("recommend", "top-n anime for users or genre tastes",
                        epilog=_SCORE_HELP)
    recommend.add_argument("--model", type=Path, required=True, help="model file")
    who = recommend.add_mutually_exclusive_group(required=True)
    who.add_argument("--user-id", type=int, nargs="+", help="MAL user id(s)")
    who.add_argument("--all-users", action="store_true",
                     help="every user of the model (needs --out)")
    who.add_argument("--genres", type=_genre_ratings,
                     help="a new user's genre ratings on the model's rating scale (see "
                          "--genre-scale), e.g. 'Action=9,Comedy=7' on 1..10; unrated genres "
                          "are neutral, names in any case")
    who.add_argument("--ratings", type=Path, metavar="FILE",
                     help=_RATINGS_HELP + ": recommendations for that person, folded in "
                          "without retraining; everything on the list is left out")
    recommend.add_argument("--genre-scale", type=_scale, default=None, metavar="LOW,HIGH",
                           help="the scale of the --genres ratings (default: the model's "
                                "rating scale, shown by 'anirec info')")
    recommend.add_argument("--n", type=_bounded_int(1, MAX_N), default=10,
                           help="anime per user")
    recommend.add_argument("--exclude", type=int, nargs="+", metavar="ANIME_ID", default=None,
                           help="anime ids never to recommend, besides what each user rated "
                                "(default: none)")
    recommend.add_argument("--explain", action="store_true",
                           help="with --ratings: add a 'because' column, the anime of the list "
                                "that support each recommendation most (with your ratings) and "
                                "the genres that push it")
    for kind in ("genres", "types"):
        example = "Action,Sci-Fi" if kind == "genres" else "TV,Movie"
        recommend.add_argument(f"--only-{kind}", type=_names, default=None, metavar="NAMES",
                               help=f"only anime of at least one of these {kind} "
                                    f"(comma-separated, any case, e.g. {example!r}; "
                                    "default: any)")
        recommend.add_argument(f"--without-{kind}", type=_names, default=None,
                               metavar="NAMES",
                               help=f"no anime of any of these {kind} (default: none)")
    recommend.add_argument("--min-year", type=_bounded_int(1, 9999), default=None,
                           help="only anime first aired in this year or later (an anime of "
                                "unknown year is left out; default: any year)")
    output = recommend.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print JSON")
    output.add_argument("--out", type=Path,
                        help="write a CSV there, '-' for standard output (default: print a "
                             "table)")
    recommend.set_defaults(run=cmd_recommend)

    similar = command("similar", "anime nearest to an anime")
    similar.add_argument("--model", type=Path, required=True, help="model file")
    similar.add_argument("--anime-id", type=int, required=True, help="MAL anime id")
    similar.add_argument("--n", type=_bounded_int(1, MAX_N), default=10,
                         help="anime to list")
    output = similar.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print JSON")
    output.add_argument("--out", type=Path,
                        help="write a CSV there, '-' for standard output (default: print a "
                             "table)")
    similar.set_defaults(run=cmd_similar)

    info = command("info", "configuration, data summary, training history")
    info.add_argument("--model", type=Path, required=True, help="model file")
    info.add_argument("--json", action="store_true",
                      help="print every setting and the epoch history as JSON")
    info.set_defaults(run=cmd_info)

    for sub in (demo, train):
        sub.add_argument("--quiet", action="store_true",
                         help="no progress bars (they are shown only on a terminal anyway)")
    for sub in (evaluate, predict, recommend, similar, info, generate):
        sub.set_defaults(quiet=True)
    return parser


class _ReaderSafeStdout:
    """Standard output that outlives its reader (``anirec train ... | head -1``): once the
    reader has gone, what is printed is dropped (the descriptor now points at the null device)
    and the command goes on to write its files, instead of stopping at the next ``print``."""

    def __init__(self, stream):
        self._stream = stream
        self.reader_gone = False

    def write(self, text: str) -> int:
        if not self.reader_gone:
            try:
                return self._stream.write(text)
            except BrokenPipeError:
                self._drop()
        return len(text)

    def flush(self) -> None:
        if not self.reader_gone:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self._drop()

    def _drop(self) -> None:
        self.reader_gone = True
        with contextlib.suppress(OSError, ValueError, io.UnsupportedOperation):
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, self._stream.fileno())
            os.close(null)
        with contextlib.suppress(OSError, ValueError):
            self._stream.flush()  # what was buffered goes to the null device

    def __getattr__(self, name):
        return getattr(self._stream, name)


def _error_message(error: BaseException) -> str:
    """One line for an error the command reports: an OS error as its file and reason."""
    if isinstance(error, MemoryError):
        return "out of memory: lower the sizes given"
    if isinstance(error, KeyError) and not isinstance(error, AnirecError):
        return str(error.args[0]) if error.args else repr(error)
    if isinstance(error, OSError) and not isinstance(error, AnirecError) and error.strerror:
        where = f"{error.filename}: " if error.filename is not None else ""
        return f"{where}{error.strerror.lower()}"
    message = str(error)
    return message.splitlines()[0] if message else type(error).__name__


def main(argv=None) -> int:
    from anirec import backend

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:  # a bare `anirec` asks what it can do: the commands
        parser.print_help(sys.stdout)
        return 0
    # Progress bars belong on a terminal: in a log or a pipe they only bury the one-line errors.
    args.quiet = args.quiet or not sys.stderr.isatty()
    stdout, sys.stdout = sys.stdout, _ReaderSafeStdout(sys.stdout)
    try:
        backend.get_backend()  # an unknown ANIREC_BACKEND: one line, whatever the command
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", AnirecWarning)
            args.run(args)
        for warning in caught:  # one line each, like the errors
            if issubclass(warning.category, AnirecWarning):
                print(f"anirec {args.command}: warning: {warning.message}", file=sys.stderr)
            else:
                warnings.showwarning(warning.message, warning.category, warning.filename,
                                     warning.lineno)
    except (AnirecError, UsageError, OSError, ValueError, KeyError, ImportError,
            MemoryError) as error:
        print(f"anirec {args.command}: error: {_error_message(error)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    finally:
        sys.stdout.flush()
        sys.stdout = stdout
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
