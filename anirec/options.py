"""Every option of anirec, declared once: its name, owner, kind and bounds, default, help and
command-line flag.

Everything else derives from this table: the signatures of :class:`~anirec.TwoTower` and
:class:`~anirec.Recommender` (what ``help()`` shows) and the checks of their arguments
(:meth:`Options.bind`), ``TwoTower.get_config`` and ``Recommender.options``, the flags of
``anirec train`` with their bounds and help, the checks of the options in a saved model's
header, and the table of options in the README (:func:`markdown_table`). Rules that tie
several options together (a ranking loss needs batches of two) stay with their owner.

>>> from anirec.options import MODEL
>>> MODEL["lr"].default, MODEL["lr"].flag
(0.001, '--lr')
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from typing import Any, Iterator, Mapping

import numpy as np

from anirec import _validate

#: Widths and batch sizes the kernels take (32-bit BLAS dimensions).
MAX_WIDTH = 2**31 - 1
#: The command line's caps on sizes: far above any real use, low enough that a typo fails at
#: once instead of exhausting the memory.
CLI_MAX_WIDTH, CLI_MAX_LAYERS, CLI_MAX_EPOCHS, CLI_MAX_BATCH = 65_536, 32, 100_000, 1_048_576
#: ``Option.app_default`` of an option whose Recommender default is its TwoTower default.
SAME = object()


# ---------------------------------------------------------------------------------------------
# Kinds of values: how one is checked, saved, read from the command line and described


class Kind:
    """The kind of an option's value. ``check`` is the one check of a value given in Python
    (strict types: ``"3"`` is no integer), ``parse`` reads a command-line value (raising
    ``ValueError`` with the message to show), ``json_types`` are the JSON types a saved header
    may hold, ``describe`` says in words what is allowed."""

    json_types: tuple = ()
    optional = False
    #: The type the signature shows.
    annotation = "object"

    def check(self, name: str, value):
        raise NotImplementedError

    def parse(self, text: str):
        raise NotImplementedError(f"{type(self).__name__} has no command-line form")

    def describe(self, cli: bool = False) -> str:
        raise NotImplementedError

    def to_json(self, value):
        return value


@dataclasses.dataclass(frozen=True)
class Integer(Kind):
    """An integer in ``[low, high]`` (``high`` ``None``: unbounded); the command line caps it
    at ``cli_high``; ``optional``: ``None`` allowed."""

    low: int = 0
    high: int | None = None
    cli_high: int | None = None
    optional: bool = False

    @property
    def json_types(self):
        return (int, type(None)) if self.optional else (int,)

    @property
    def annotation(self):
        return "int | None" if self.optional else "int"

    def check(self, name, value):
        return _validate.optional_integer(name, value, self.low, self.high) if self.optional \
            else _validate.integer(name, value, self.low, self.high)

    def _cli_high(self):
        return self.high if self.cli_high is None else self.cli_high

    def parse(self, text):
        try:
            value = int(text)
        except ValueError:
            raise ValueError(f"expected an integer, got {text!r}") from None
        high = self._cli_high()
        if value < self.low or (high is not None and value > high):
            raise ValueError(f"expected {self.describe(cli=True)}, got {text}")
        return value

    def describe(self, cli=False):
        high = self._cli_high() if cli else self.high
        text = f"an integer >= {self.low}" if high is None else \
            f"an integer within {self.low}..{high}"
        return text + (" or None" if self.optional and not cli else "")


@dataclasses.dataclass(frozen=True)
class Real(Kind):
    """A finite number in the interval from ``low`` to ``high`` (closed unless ``low_open`` /
    ``high_open``); ``optional``: ``None`` allowed."""

    low: float = -math.inf
    high: float = math.inf
    low_open: bool = False
    high_open: bool = False
    optional: bool = False

    @property
    def json_types(self):
        return (int, float, type(None)) if self.optional else (int, float)

    @property
    def annotation(self):
        return "float | None" if self.optional else "float"

    def check(self, name, value):
        if value is None and self.optional:
            return None
        return _validate.real(name, value, self.low, self.high, low_open=self.low_open,
                              high_open=self.high_open)

    def parse(self, text):
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        try:
            return self.check("value", value)
        except ValueError:
            raise ValueError(f"expected {self.describe()}, got {text!r}") from None

    def describe(self, cli=False):
        bounds = (self.low, self.high, self.low_open, self.high_open)
        if bounds == (-math.inf, math.inf, False, False):
            return "a finite number" + (" or None" if self.optional and not cli else "")
        if bounds == (0, math.inf, True, False):
            return "a positive number"
        if bounds == (0, math.inf, False, False):
            return "a number >= 0"
        if bounds == (0, 1, False, True):
            return "a fraction in [0, 1)"
        return (f"a number in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}"
                f"{')' if self.high_open else ']'}")


@dataclasses.dataclass(frozen=True)
class Boolean(Kind):
    """``True`` or ``False`` (``--flag`` / ``--no-flag`` on the command line)."""

    annotation = "bool"
    json_types = (bool,)

    def check(self, name, value):
        return _validate.boolean(name, value)

    def describe(self, cli=False):
        return "on or off" if cli else "True or False"


@dataclasses.dataclass(frozen=True)
class Choice(Kind):
    """One of ``values`` (a dtype: anything ``numpy.dtype`` names one of them)."""

    annotation = "str"
    values: tuple
    dtype: bool = False
    json_types = (str,)

    def check(self, name, value):
        if self.dtype and value is not None:
            try:
                value = str(np.dtype(value))
            except TypeError:
                pass
        if not isinstance(value, str) or value not in self.values:
            raise ValueError(f"{name} must be one of {self.values}, got {value!r}")
        return value

    def describe(self, cli=False):
        return " or ".join(f"{value}" if cli else f"{value!r}" for value in self.values)


@dataclasses.dataclass(frozen=True)
class Widths(Kind):
    """A non-empty sequence of integers in ``[1, high]`` (comma-separated on the command line,
    at most ``cli_count`` of them, each at most ``cli_high``)."""

    annotation = "Sequence[int]"
    high: int
    cli_high: int
    cli_count: int
    json_types = (list,)

    def check(self, name, value):
        return _validate.integer_tuple(name, value, 1, self.high)

    def parse(self, text):
        try:
            values = tuple(int(part) for part in text.split(","))
        except ValueError:
            raise ValueError(f"expected comma-separated integers, got {text!r}") from None
        if len(values) > self.cli_count or not all(1 <= v <= self.cli_high for v in values):
            raise ValueError(f"expected at most {self.cli_count} widths within "
                             f"1..{self.cli_high}, got {text!r}")
        return values

    def describe(self, cli=False):
        if cli:
            return f"up to {self.cli_count} widths within 1..{self.cli_high}"
        return f"widths within 1..{self.high}"

    def to_json(self, value):
        return list(value)


@dataclasses.dataclass(frozen=True)
class Pair(Kind):
    """Two finite numbers ``(low, high)``, ``low < high``."""

    annotation = "tuple[float, float]"
    json_types = (list,)

    def check(self, name, value):
        return _validate.number_pair(name, value)

    def describe(self, cli=False):
        return "(low, high), low < high"

    def to_json(self, value):
        return list(value)


@dataclasses.dataclass(frozen=True)
class Schedule(Kind):
    """A learning-rate schedule: a name, a saved ``to_dict()`` mapping or a schedule object,
    checked with the learning rate and its options by
    :func:`anirec.model.schedules.make_schedule`."""

    annotation = "str"
    names: tuple
    json_types = (str, dict)

    def check(self, name, value):
        return value

    def describe(self, cli=False):
        return " or ".join(repr(value) for value in self.names)


@dataclasses.dataclass(frozen=True)
class Keywords(Kind):
    """A mapping of keyword arguments (``None``: none)."""

    annotation = "dict | None"
    json_types = (dict, type(None))

    def check(self, name, value):
        if value is None:
            return {}
        if not isinstance(value, Mapping) or not all(isinstance(key, str) for key in value):
            raise TypeError(f"{name} must be a mapping of names to values, got {value!r:.60}")
        return dict(value)

    def describe(self, cli=False):
        return "a dict"


# ---------------------------------------------------------------------------------------------
# Options


@dataclasses.dataclass(frozen=True)
class Option:
    """One option.

    Attributes
    ----------
    name : str
        The keyword argument.
    kind : Kind
        Its values, bounds and checks.
    default
        The default of its owner's constructor.
    help : str
        One line: what it sets (the ``--help`` of its flag and the README's table).
    owner : {"model", "recommender"}
        :class:`~anirec.TwoTower`'s (passed on by ``Recommender``) or ``Recommender``'s own.
    flag : str, optional
        The flag of ``anirec train`` that sets it.
    app_default
        The default of ``Recommender`` and ``anirec train`` when it differs from ``default``.
    objectives : tuple of str
        The objectives it acts on (empty: every one); ``anirec train`` refuses it elsewhere.
    query : bool
        Whether it acts when querying a fitted model, so it may be changed after fitting
        (else it acts when training).
    saved : bool
        Whether the saved configuration holds it (``verbose`` is no property of a model).
    shown : str, optional
        How a default of ``None`` reads in the help and the README.
    """

    name: str
    kind: Kind
    default: Any
    help: str
    owner: str = "model"
    flag: str | None = None
    app_default: Any = SAME
    objectives: tuple = ()
    query: bool = False
    saved: bool = True
    shown: str | None = None

    @property
    def recommender_default(self):
        """The default of ``Recommender`` and ``anirec train``."""
        return self.default if self.app_default is SAME else self.app_default

    @property
    def help_line(self) -> str:
        """The ``--help`` of its flag: the help and the Recommender's default."""
        return f"{self.help} (default: {self.show(self.recommender_default)})"

    def check(self, value):
        """``value`` checked and normalised (``TypeError`` / ``ValueError`` naming it)."""
        return self.kind.check(self.name, value)

    def show(self, value) -> str:
        """A value as the help and the README write it."""
        if value is None and self.shown is not None:
            return self.shown
        if isinstance(value, tuple):
            return ",".join(map(str, value))
        if isinstance(value, bool):
            return "on" if value else "off"
        return f"{value:g}" if isinstance(value, float) else str(value)


class Options(Mapping):
    """The options of one constructor, in signature order, looked up by name."""

    def __init__(self, owner: str, options, positional: int = 0):
        self.owner = owner
        self._options = {option.name: option for option in options}
        self.positional = positional
        self._signature = self.signature()

    def __getitem__(self, name: str) -> Option:
        return self._options[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._options)

    def __len__(self) -> int:
        return len(self._options)

    def signature(self) -> inspect.Signature:
        """The constructor's signature (with ``self``): the first ``positional`` options
        positional or keyword, the rest keyword-only, each with its default."""
        parameters = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
        for position, (name, option) in enumerate(self._options.items()):
            kind = inspect.Parameter.POSITIONAL_OR_KEYWORD if position < self.positional \
                else inspect.Parameter.KEYWORD_ONLY
            parameters.append(inspect.Parameter(name, kind, default=option.default,
                                                annotation=option.kind.annotation))
        return inspect.Signature(parameters)

    def bind(self, args: tuple, kwargs: dict) -> dict:
        """Every option's value: given (``args`` then ``kwargs``) or its default, checked.

        Raises
        ------
        TypeError
            An argument that is no option, or one given twice, named as Python names it;
            a value of the wrong type, naming the option.
        ValueError
            A value out of bounds, naming the option.
        """
        try:
            bound = self._signature.bind(None, *args, **kwargs)
        except TypeError as error:
            raise TypeError(f"{self.owner}() {error}") from None
        bound.apply_defaults()
        return {name: self._options[name].check(value)
                for name, value in list(bound.arguments.items())[1:]}


def _recommender_default(option: Option) -> Option:
    """A model option as ``Recommender`` takes it: with its Recommender default."""
    return dataclasses.replace(option, default=option.recommender_default)


#: The options of :class:`~anirec.TwoTower`, in the order of its signature.
MODEL = Options("TwoTower", [
    Option("layers", Widths(MAX_WIDTH, CLI_MAX_WIDTH, CLI_MAX_LAYERS), (256, 128, 64, 32),
           "tower widths after the input, comma-separated; the last is the embedding size",
           flag="--layers"),
    Option("optimizer", Choice(("adam", "sgd")), "adam", "the optimizer", flag="--optimizer"),
    Option("lr", Real(0.0, low_open=True), 1e-3, "learning rate", flag="--lr"),
    Option("lr_schedule", Schedule(("constant", "inverse_time", "exponential", "step")),
           "inverse_time", "the learning-rate schedule (its options in lr_schedule_options)"),
    Option("lr_schedule_options", Keywords(), None, "options of the learning-rate schedule, "
           "e.g. {'decay_rate': 0.05}", saved=False),
    Option("batch_size", Integer(1, MAX_WIDTH, CLI_MAX_BATCH), 256,
           "training examples per mini-batch", flag="--batch-size"),
    Option("epochs", Integer(1, None, CLI_MAX_EPOCHS), 20,
           "most training epochs (fewer when validation stops early)", flag="--epochs"),
    Option("momentum", Real(0.0, 1.0, high_open=True), 0.0, "SGD momentum (0: none)"),
    Option("beta1", Real(0.0, 1.0, high_open=True), 0.9, "Adam's first-moment decay"),
    Option("beta2", Real(0.0, 1.0, high_open=True), 0.999, "Adam's second-moment decay"),
    # eps = 0 turns a zero gradient's Adam step into 0 / 0.
    Option("eps", Real(0.0, low_open=True), 1e-8, "Adam's epsilon"),
    Option("weight_decay", Real(0.0), 0.0, "L2 penalty of the tower weights, added to their "
           "gradients"),
    Option("patience", Integer(1, optional=True), 3, "stop after this many epochs without a "
           "better validation loss (None: never stop early)", shown="never stop"),
    Option("validation_fraction", Real(0.0, 1.0, high_open=True), 0.1,
           "share of the training examples held out for validation when fit gets none"),
    Option("rating_range", Pair(), (1.0, 10.0), "the rating scale, mapped to [-1, 1] "
           "(Recommender: the data's)"),
    Option("dtype", Choice(("float32", "float64"), dtype=True), "float32",
           "floating-point precision of the network", flag="--dtype"),
    Option("seed", Integer(0, optional=True), 0, "seeds the initial weights, the validation "
           "hold-out and the shuffles", shown="unseeded"),
    Option("verbose", Boolean(), False, "show a progress bar over epochs", saved=False),
    Option("objective", Choice(("rating", "ranking", "hybrid")), "rating",
           "rating MSE, in-batch softmax ranking, or MSE + weighted ranking (hybrid predicts "
           "ratings and ranks well)", flag="--objective", app_default="hybrid"),
    Option("ranking_weight", Real(0.0, low_open=True), 0.03,
           "weight of the ranking loss, hybrid objective only", flag="--ranking-weight",
           objectives=("hybrid",)),
    # Beyond these bounds cosines / temperature overflow or carry no signal.
    Option("temperature", Real(1e-3, 1e3), 0.2, "softmax temperature of the ranking loss, "
           "ranking and hybrid objectives only", flag="--temperature",
           objectives=("ranking", "hybrid")),
    Option("positive_threshold", Real(optional=True), None, "ratings at least this are the "
           "ranking positives, ranking and hybrid objectives only",
           flag="--positive-threshold", objectives=("ranking", "hybrid"),
           shown="every rating"),
    Option("popularity_prior", Boolean(), True, "add the log training popularity of each anime "
           "to its retrieval score (ranking and hybrid)"),
    Option("biases", Boolean(), True, "predict user and item rating biases plus the scaled "
           "cosine", flag="--biases"),
    Option("bias_reg", Real(0.0, low_open=True), 5.0, "L2 penalty of the rating biases, in "
           "ratings", flag="--bias-reg"),
    # The Recommender's 32 was chosen on the public real sets (README: accuracy on real data).
    Option("embedding_dim", Integer(0, MAX_WIDTH, 4096), 0, "width of the learned user and "
           "item ID embeddings (0: none)", flag="--embedding-dim", app_default=32),
    Option("min_id_count", Integer(1, None, 10**9), 2, "training ratings an id needs for its "
           "own embedding row (rarer ids share the unknown row)", flag="--min-id-count"),
    Option("embedding_decay", Real(0.0), 0.0, "L2 penalty of an embedding row (and a history "
           "vector) at each update", flag="--embedding-decay"),
    Option("id_dropout", Real(0.0, 1.0, high_open=True), 0.0, "probability that a training "
           "example reads the unknown ID row instead of its own, which then learns new users "
           "and anime", flag="--id-dropout"),
    Option("history_dim", Integer(0, MAX_WIDTH, 4096), 0, "width of the user tower's pooled "
           "history: the mean of learned vectors of the anime the user rated (0: none)",
           flag="--history-dim"),
    Option("n_threads", Integer(1, None, 4096, optional=True), None, "the most threads "
           "training runs on; every count gives the same model", flag="--threads",
           shown="the cores this process may use"),
], positional=1)

#: The options of :class:`~anirec.Recommender` besides the model's.
OWN = [
    Option("weighting", Choice(("bayesian", "rating", "centered")), "bayesian",
           "user genre-preference weighting", owner="recommender", flag="--weighting"),
    Option("valid", Real(0.0, 1.0, high_open=True), 0.1, "per-user fraction of ratings for "
           "validation / early stopping (0: none, train every epoch)", owner="recommender",
           flag="--validation"),
    Option("test", Real(0.0, 1.0, high_open=True), 0.1, "per-user fraction of ratings held "
           "out for testing (0: train on all)", owner="recommender", flag="--test"),
    Option("min_ratings", Integer(1), 5, "users with fewer ratings keep all of them in "
           "training", owner="recommender"),
    Option("leave_one_out", Boolean(), True, "derive each training example's user row and item "
           "statistics without its own rating", owner="recommender", flag="--leave-one-out"),
    Option("item_attributes", Boolean(), True, "add the anime's training statistics and "
           "attributes (members, type, episodes, year) to their genres", owner="recommender"),
    Option("catalogue_counts_ratings", Boolean(), True, "the anime file's Score, Scored By and "
           "Members count the ratings given (as MyAnimeList's do): they are read with those "
           "ratings taken out (off: a catalogue known to be independent of them)",
           owner="recommender", flag="--catalogue-counts-ratings"),
    # The split needs a seed: None would make fit() unrepeatable.
    Option("seed", Integer(0, None, 2**32 - 1), 0, "seeds the split, the initial weights and "
           "the shuffles", owner="recommender", flag="--seed"),
    Option("refit", Boolean(), True, "after early stopping, train again on training + "
           "validation ratings for the chosen number of epochs", owner="recommender",
           flag="--refit"),
    Option("verbose", Boolean(), False, "show a progress bar while training",
           owner="recommender", saved=False),
    # Weights of the retrieval score's terms reach 1000: far beyond the point where the term
    # alone ranks (a weight of 100 on log shares spans thousands of score units), yet small
    # enough that no score overflows in float32.
    Option("popularity_weight", Real(0.0, 1000.0), 0.75, "weight of the popularity prior log q "
           "in the ranking score, ranking and hybrid objectives only (0: taste alone, more of "
           "the catalogue)", owner="recommender", flag="--popularity-weight",
           objectives=("ranking", "hybrid"), query=True),
    Option("quality_weight", Real(0.0, 1000.0), 0.5, "weight of an anime's rating bias in the "
           "ranking score of a hybrid model", owner="recommender", query=True),
]
#: The Recommender's own options that its saved header holds (``Recommender.options``).
SAVED_OWN = tuple(option.name for option in OWN if option.saved)
#: Model options ``Recommender`` does not take: the rating scale comes from the data, and its
#: own seed and verbose are passed on.
NOT_PASSED_ON = ("rating_range", "seed", "verbose")
#: The arguments of :class:`~anirec.Recommender`: the layers, its own options, then the model's
#: (with the Recommender's defaults), all keywords.
RECOMMENDER = Options("Recommender", [
    _recommender_default(MODEL["layers"]), *OWN,
    *(_recommender_default(option) for name, option in MODEL.items()
      if name not in NOT_PASSED_ON and name != "layers")])


def passed_on() -> list[str]:
    """The model options a ``Recommender`` passes on to its :class:`~anirec.TwoTower`."""
    return [name for name in RECOMMENDER if RECOMMENDER[name].owner == "model"]


def flags() -> list[Option]:
    """The options ``anirec train`` has a flag for, in the Recommender's order."""
    return [option for option in RECOMMENDER.values() if option.flag]


def markdown_table() -> str:
    """The README's table of every option: the Recommender's own, then the model's with the
    Recommender's default (and TwoTower's where it differs), and the command line's caps."""
    lines = ["| option | of | default | values | `anirec train` | what it sets |",
             "| --- | --- | --- | --- | --- | --- |"]
    shadowed = {option.name for option in OWN}  # the Recommender's seed and verbose
    for option in [*OWN, *(option for name, option in MODEL.items() if name not in shadowed)]:
        default = f"`{option.recommender_default!r}`"
        if option.recommender_default is None and option.shown:
            default += f" ({option.shown})"
        if option.app_default is not SAME:
            default += f" (TwoTower: `{option.default!r}`)"
        owner = "TwoTower" if option.owner == "model" else "Recommender"
        flag = f"`{option.flag}`" if option.flag else ""
        if option.flag and getattr(option.kind, "cli_high", None) is not None:
            flag += f": {option.kind.describe(cli=True)}"
        when = " (can change after fitting)" if option.query else ""
        lines.append(f"| `{option.name}` | {owner} | {default} | {option.kind.describe()} | "
                     f"{flag} | {option.help}{when} |")
    return "\n".join(lines) + "\n"
