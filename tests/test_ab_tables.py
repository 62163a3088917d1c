"""``benchmarks/ab.py`` reads the tables a benchmark prints into rows it can pair across runs."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _ab():
    spec = importlib.util.spec_from_file_location("ab", ROOT / "benchmarks" / "ab.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TABLE = """
| machine | batch | cli | kernel |
| --- | ---: | ---: | ---: |
| quiet | 64 | 126,510 | 98.5% |
| quiet | 1024 | 253,731 | nan |
| busy | 64 | -1,000 | 70,665 |

with ID embeddings:

| batch | rate |
| --- | --- |
| 64 | 189,457 |
| 1024 | 254,830 |
"""


def test_rows_are_keyed_by_table_text_and_first_number_where_the_text_repeats():
    rows = _ab().tables(TABLE)
    assert rows == {(0, "quiet", "64"): {2: 126510.0, 3: 98.5},
                    (0, "quiet", "1024"): {2: 253731.0},  # nan is no number to compare
                    (0, "busy"): {1: 64.0, 2: -1000.0, 3: 70665.0},
                    (1, "64"): {1: 189457.0},  # the same first cell in another table
                    (1, "1024"): {1: 254830.0}}
