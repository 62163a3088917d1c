"""One benchmark script, two installations of anirec, interleaved: the ratio of every number.

    python benchmarks/ab.py --before OLD/venv/bin/python --before-benchmarks OLD/benchmarks \\
        --rounds 3 -- compare.py --batches 64 256 1024 --repeats 1 --queries 0 \\
        --accuracy-samples 0 --embedding-dim 0

Runs ``SCRIPT ARGS`` from this folder with this Python ("after") and the same script from
``--before-benchmarks`` with ``--before`` ("before", e.g. a virtual environment holding an
earlier commit's ``pip install``), alternately, ``--rounds`` times each. Every markdown table
row the script prints (``| label | ... | number | ...``) is matched between the runs by its
leading text cells; the report gives, per row and numeric column, the median of after/before
over the rounds and its range. Runs of one round follow each other, so a slow spell of a
shared machine mostly hits both sides of a ratio.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
_NUMBER = re.compile(r"^-?[0-9][0-9,]*(\.[0-9]+)?%?$")


def tables(text: str) -> dict[tuple, dict[int, float]]:
    """``{row label: {column: number}}`` of every markdown table row of ``text``.

    A row's label is the table's place in ``text`` (0 for the first), the row's first cell and
    any text cells after it up to its first other number, and that number too where the text
    repeats within the table (``| quiet | 64 | ...`` and ``| quiet | 256 | ...``: a parameter
    such as the batch size). Numbers may carry thousands commas or a ``%``; one that is not
    finite (``nan``) is left out.
    """
    parsed, table, inside = [], -1, False
    for line in text.splitlines():
        if not line.startswith("|"):
            inside = False
            continue
        if not inside:
            table, inside = table + 1, True
        if set(line) <= set("|-: "):
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        first = next((k for k, cell in enumerate(cells) if k and _NUMBER.match(cell)), None)
        if first is not None:
            parsed.append(((table, *cells[:first]), cells, first))
    repeated = Counter(label for label, _, _ in parsed)
    rows = {}
    for label, cells, first in parsed:
        if repeated[label] > 1:
            label, first = label + (cells[first],), first + 1
        rows[label] = {k: float(cell.rstrip("%").replace(",", ""))
                       for k, cell in enumerate(cells) if k >= first and _NUMBER.match(cell)}
    return rows


def run(python: str, folder: Path, script: list[str]) -> str:
    done = subprocess.run([python, str(folder / script[0]), *script[1:]], capture_output=True,
                          text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{python} {script[0]} failed: {done.stderr.strip()[-800:]}")
    return done.stdout


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="the other installation's python")
    parser.add_argument("--before-benchmarks", type=Path, required=True,
                        help="the benchmarks folder of the other installation's version")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("script", nargs=argparse.REMAINDER,
                        help="-- SCRIPT ARGS (a script of benchmarks/ and its arguments)")
    args = parser.parse_args(argv)
    script = args.script[1:] if args.script[:1] == ["--"] else args.script
    results = {"before": [], "after": []}
    for k in range(args.rounds):
        for side, python, folder in (("before", args.before, args.before_benchmarks),
                                     ("after", sys.executable, HERE)):
            output = run(python, folder, script)
            results[side].append(tables(output))
            print(f"round {k + 1} {side}:\n{output}", file=sys.stderr, flush=True)
    print(f"after/before of {' '.join(script)}, median [range] over {args.rounds} rounds:")
    for label, columns in results["after"][0].items():
        cells = []
        for column in columns:
            ratios = sorted(after[label][column] / before[label][column]
                            for after, before in zip(results["after"], results["before"])
                            if label in before and column in before[label]
                            and before[label][column])
            if ratios:
                cells.append(f"col {column}: {statistics.median(ratios):.3f} "
                             f"[{ratios[0]:.3f}-{ratios[-1]:.3f}]")
        print(f"| {' | '.join(label[1:])} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
