"""The ``anirec`` command (also ``python -m anirec``).

Bad input (a missing file, a bad column, an unknown id, a malformed option) exits with status 2
and one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

EXIT_BAD_INPUT = 2


class UsageError(Exception):
    """A malformed option value."""


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line on stderr and exit status 2."""

    def error(self, message):
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}\n")


# ---------------------------------------------------------------------------------------------
# Option parsing helpers


def _int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}") from None
    return values


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


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _fraction(text: str) -> float:
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1), got {text}")
    return value


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
    return frame.to_string(float_format=lambda value: f"{value:.4f}")


# ---------------------------------------------------------------------------------------------
# Commands


def read_pairs(path: Path) -> pd.DataFrame:
    """The ``user_id,anime_id`` pairs of a CSV file, as int64 columns."""
    from anirec.errors import DataError

    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: cannot be read as CSV ({error})") from None
    pairs = {}
    for column in ("user_id", "anime_id"):
        if column not in frame.columns:
            raise DataError(f"{path}: missing column {column!r} (found {list(frame.columns)})")
        values = pd.to_numeric(frame[column].str.strip(), errors="coerce")
        bad = values.isna() | (values != values.round())
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(f"{path}: column {column!r}, line {row + 2}: "
                            f"{frame[column].iloc[row]!r} is not an integer id")
        pairs[column] = values.to_numpy(np.int64)
    return pd.DataFrame(pairs)


def _load_data(args):
    from anirec.data import DEFAULT_EXCLUDED_GENRES, load_mal

    exclude = DEFAULT_EXCLUDED_GENRES if args.exclude_genres is None else args.exclude_genres
    return load_mal(args.anime, args.scores, exclude_genres=exclude, progress=not args.quiet)


def cmd_generate(args) -> None:
    from anirec.data import write_synthetic

    anime, scores = write_synthetic(args.out, n_users=args.users, n_anime=args.anime,
                                    n_ratings=args.ratings, seed=args.seed)
    print(f"wrote {anime}\nwrote {scores}")


def _recommender(args):
    from anirec import Recommender

    return Recommender(layers=args.layers, weighting=args.weighting, valid=args.validation,
                       test=args.test, seed=args.seed, verbose=not args.quiet,
                       epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                       optimizer=args.optimizer, dtype=args.dtype, objective=args.objective,
                       ranking_weight=args.ranking_weight, temperature=args.temperature,
                       positive_threshold=args.positive_threshold)


def cmd_train(args) -> None:
    data = _load_data(args)
    print(data.summary)
    started = time.perf_counter()
    rec = _recommender(args).fit(data)
    rec.save(args.out)
    history = rec.model.history_
    print(f"trained {len(history)} epochs in {time.perf_counter() - started:.1f} s "
          f"(best epoch {rec.model.best_epoch_}); saved {args.out}")
    if args.test > 0:
        print(_table(rec.evaluate(k=10)))


def cmd_evaluate(args) -> None:
    from anirec import Recommender
    from anirec.data import load_mal

    rec = Recommender.load(args.model)
    data = load_mal(args.anime, args.scores, exclude_genres=rec.excluded_genres,
                    progress=False)
    ratings = data.ratings
    heldout = pd.DataFrame({
        "user_id": ratings.user_ids[ratings.users],
        "anime_id": data.catalogue.anime_ids[ratings.items],
        "rating": ratings.ratings,
    })
    report = rec.evaluate(heldout, k=args.k)
    if args.json:
        _print_json({"attrs": report.attrs, "methods": dict(zip(report.index,
                                                                 _records(report)))})
    else:
        print(f"{report.attrs['ratings']} held-out ratings, {report.attrs['ranked_users']} users "
              f"ranked, {report.attrs['skipped']} ratings of unknown users or anime skipped")
        print(_table(report))


def cmd_predict(args) -> None:
    from anirec import Recommender

    rec = Recommender.load(args.model)
    pairs = read_pairs(args.pairs)
    pairs["predicted_rating"] = rec.predict(pairs["user_id"].to_numpy(),
                                            pairs["anime_id"].to_numpy())
    pairs.to_csv(args.out, index=False)
    print(f"wrote {len(pairs)} predictions to {args.out}")


def _emit(frame: pd.DataFrame, args, header: bool = True) -> None:
    if args.out:
        frame.to_csv(args.out, index=False, mode="w" if header else "a", header=header)
    elif args.json:
        _print_json(_records(frame))
    else:
        print(frame.to_string(index=False, float_format=lambda value: f"{value:.4f}"))


def cmd_recommend(args) -> None:
    from anirec import Recommender

    rec = Recommender.load(args.model)
    if args.genres is not None:
        _emit(rec.recommend_for_genres(args.genres, n=args.n, exclude=args.exclude), args)
    elif args.user_id:
        _emit(rec.recommend(args.user_id, n=args.n, exclude=args.exclude), args)
    else:
        if not args.out:
            raise UsageError("--all-users writes a CSV: give --out RECS.csv")
        for position, frame in enumerate(rec.iter_recommend_all(n=args.n,
                                                                 exclude=args.exclude)):
            _emit(frame, args, header=position == 0)
        print(f"wrote recommendations for {rec.user_ids.shape[0]} users to {args.out}")


def cmd_similar(args) -> None:
    from anirec import Recommender

    rec = Recommender.load(args.model)
    _emit(rec.similar(args.anime_id, n=args.n), args)


def cmd_info(args) -> None:
    from anirec import Recommender

    _print_json(Recommender.load(args.model).info())


def cmd_demo(args) -> None:
    from anirec.demo import run_demo

    run_demo(out_dir=args.out, n_users=args.users, n_anime=args.anime, n_ratings=args.ratings,
             epochs=args.epochs, seed=args.seed, verbose=not args.quiet)


# ---------------------------------------------------------------------------------------------
# Parser


def _add_training_options(parser) -> None:
    parser.add_argument("--layers", type=_int_list, default=(256, 128, 64, 32),
                        help="tower widths after the input (default 256,128,64,32)")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--optimizer", choices=("adam", "sgd"), default="adam")
    parser.add_argument("--weighting", choices=("rating", "centered", "bayesian"),
                        default="bayesian", help="user genre-preference weighting")
    parser.add_argument("--validation", type=_fraction, default=0.1,
                        help="per-user fraction for validation / early stopping")
    parser.add_argument("--test", type=_fraction, default=0.1,
                        help="per-user fraction held out for testing (0: train on all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--objective", choices=("rating", "ranking", "hybrid"),
                        default="hybrid",
                        help="rating MSE, in-batch softmax ranking, or MSE + weighted ranking "
                             "(default hybrid: predicts ratings and ranks well)")
    parser.add_argument("--ranking-weight", type=_positive_float, default=0.03,
                        help="weight of the ranking loss in the hybrid objective")
    parser.add_argument("--temperature", type=_positive_float, default=0.2,
                        help="softmax temperature of the ranking loss")
    parser.add_argument("--positive-threshold", type=float, default=None,
                        help="ratings at least this are the ranking positives (default: all)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="anirec", description="Two-tower anime recommendation.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                     parser_class=_Parser)

    demo = commands.add_parser("demo", help="train and show everything on the embedded data")
    demo.add_argument("--users", type=int, default=2000)
    demo.add_argument("--anime", type=int, default=1500)
    demo.add_argument("--ratings", type=int, default=150_000)
    demo.add_argument("--epochs", type=int, default=15)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--out", type=Path, default=Path("anirec-demo"),
                      help="folder for the model and the loss curves (default ./anirec-demo)")
    demo.set_defaults(run=cmd_demo)

    generate = commands.add_parser("generate", help="write a synthetic MAL 2023 data set")
    generate.add_argument("--out", type=Path, required=True)
    generate.add_argument("--users", type=int, default=2000)
    generate.add_argument("--anime", type=int, default=1500)
    generate.add_argument("--ratings", type=int, default=150_000)
    generate.add_argument("--seed", type=int, default=0)
    generate.set_defaults(run=cmd_generate)

    train = commands.add_parser("train", help="train a recommender on MAL 2023 files")
    train.add_argument("--anime", type=Path, required=True, help="anime-dataset-2023.csv")
    train.add_argument("--scores", type=Path, required=True, help="users-score-2023.csv")
    train.add_argument("--out", type=Path, required=True, help="model file to write")
    train.add_argument("--exclude-genres", type=_names, default=None,
                       help="comma-separated genres to drop (default Ecchi,Hentai,Erotica; "
                            "'' for none)")
    _add_training_options(train)
    train.set_defaults(run=cmd_train)

    evaluate = commands.add_parser("evaluate", help="score a model on held-out ratings")
    evaluate.add_argument("--model", type=Path, required=True)
    evaluate.add_argument("--anime", type=Path, required=True)
    evaluate.add_argument("--scores", type=Path, required=True, help="held-out ratings CSV")
    evaluate.add_argument("--k", type=int, default=10)
    evaluate.add_argument("--json", action="store_true")
    evaluate.set_defaults(run=cmd_evaluate)

    predict = commands.add_parser("predict", help="predict ratings for user/anime pairs")
    predict.add_argument("--model", type=Path, required=True)
    predict.add_argument("--pairs", type=Path, required=True, help="CSV with user_id,anime_id")
    predict.add_argument("--out", type=Path, required=True)
    predict.set_defaults(run=cmd_predict)

    recommend = commands.add_parser("recommend", help="top-n anime for users or genre tastes")
    recommend.add_argument("--model", type=Path, required=True)
    who = recommend.add_mutually_exclusive_group(required=True)
    who.add_argument("--user-id", type=int, nargs="+")
    who.add_argument("--all-users", action="store_true")
    who.add_argument("--genres", type=_genre_ratings, help="e.g. 'Action=9,Comedy=7' (1..10)")
    recommend.add_argument("--n", type=int, default=10)
    recommend.add_argument("--exclude", type=int, nargs="+", metavar="ANIME_ID", default=None,
                           help="anime ids never to recommend, besides what each user rated")
    output = recommend.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true")
    output.add_argument("--out", type=Path)
    recommend.set_defaults(run=cmd_recommend)

    similar = commands.add_parser("similar", help="anime nearest to an anime")
    similar.add_argument("--model", type=Path, required=True)
    similar.add_argument("--anime-id", type=int, required=True)
    similar.add_argument("--n", type=int, default=10)
    similar.add_argument("--json", action="store_true")
    similar.set_defaults(run=cmd_similar, out=None)

    info = commands.add_parser("info", help="configuration, data summary, training history")
    info.add_argument("--model", type=Path, required=True)
    info.set_defaults(run=cmd_info)

    for sub in (demo, train):
        sub.add_argument("--quiet", action="store_true",
                         help="no progress bars (they are shown only on a terminal anyway)")
    for sub in (evaluate, predict, recommend, similar, info, generate):
        sub.set_defaults(quiet=True)
    return parser


def main(argv=None) -> int:
    from anirec.errors import AnirecError

    args = build_parser().parse_args(argv)
    # Progress bars belong on a terminal: in a log or a pipe they only bury the one-line errors.
    args.quiet = args.quiet or not sys.stderr.isatty()
    try:
        args.run(args)
    except (AnirecError, UsageError, FileNotFoundError, PermissionError, ValueError,
            KeyError, ImportError) as error:
        message = str(error) if not isinstance(error, KeyError) or isinstance(error, AnirecError) \
            else str(error.args[0]) if error.args else repr(error)
        print(f"anirec {args.command}: error: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BrokenPipeError:  # e.g. `anirec recommend ... | head`
        return 0
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
