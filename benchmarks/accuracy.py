"""Rating and ranking accuracy of model configurations on the real development sets and the
synthetic demo set, mean and spread over seeds, in one command.

    python benchmarks/accuracy.py                          # the ablation table below
    python benchmarks/accuracy.py --seeds 0 --sets ml100k --config "emb16=embedding_dim=16"

Real sets (``ml100k``, ``mal2020``) are scored by ``../shared/data/evaluate.py`` through the
installed ``anirec`` command line (test RMSE on the set's reported scale, NDCG@10); they are
skipped, with a note, when ``../shared/data`` is absent. ``synthetic`` fits a
:class:`anirec.Recommender` on the embedded demo data and reads its test split's evaluation.
A configuration is ``NAME=key=value,key=value`` with :class:`anirec.Recommender` keyword
arguments (``biases=false``, ``embedding_dim=32``, ...), passed to the command line as
``--key value`` (``--no-key`` for false); the key ``anirec=PATH`` runs another installation's
``anirec`` executable (and the Python beside it), e.g. an earlier release for a baseline.
Runs go two at a time (``--jobs``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
REAL = ("ml100k", "mal2020")
#: The ablation of the rating-accuracy work: each change alone and all together.
ABLATION = {
    "features only": {"biases": False, "leave_one_out": False},
    "+ leave-one-out": {"biases": False},
    "+ biases": {},
    "+ embeddings": {"embedding_dim": 32},
}


def parse_value(text: str):
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_config(text: str) -> tuple[str, dict]:
    name, _, options = text.partition("=")
    pairs = [item.split("=", 1) for item in options.split(",") if item]
    return name, {key: parse_value(value) for key, value in pairs}


def cli_options(options: dict) -> list[str]:
    out = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            out.append(flag)
        elif value is False:
            out.append("--no-" + key.replace("_", "-"))
        else:
            out += [flag, str(value)]
    return out


def run_real(name: str, options: dict, seed: int) -> dict:
    options = dict(options)
    other = ["--anirec", options.pop("anirec")] if "anirec" in options else []
    command = [sys.executable, str(SHARED / "evaluate.py"), name, "--seed", str(seed),
               *cli_options(options), *other]
    done = subprocess.run(command, capture_output=True, text=True)
    result = json.loads(done.stdout.strip().splitlines()[-1]) if done.stdout.strip() else {}
    if done.returncode != 0 or "rmse" not in result:
        raise RuntimeError(f"{' '.join(command)} failed: {done.stderr.strip()[-500:]}")
    return {"rmse": result["rmse"], "ndcg@10": result["ndcg@10"]}


SYNTHETIC = """
import json, sys
import anirec
options = json.loads(sys.argv[1])
data = anirec.datasets.load_demo()
table = anirec.Recommender(seed=int(sys.argv[2]), **options).fit(data).evaluate()
row = table.loc["two-tower"]
print(json.dumps({"rmse": float(row["rmse"]), "ndcg@10": float(row["ndcg@10"])}))
"""


def run_synthetic(options: dict, seed: int) -> dict:
    options = dict(options)
    python = str(Path(options.pop("anirec")).with_name("python")) if "anirec" in options \
        else sys.executable
    command = [python, "-c", SYNTHETIC, json.dumps(options), str(seed)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"synthetic run failed: {done.stderr.strip()[-500:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(job) -> tuple:
    config, options, name, seed = job
    result = run_real(name, options, seed) if name in REAL else run_synthetic(options, seed)
    print(f"{config:>20} {name:>9} seed {seed}: {result}", file=sys.stderr, flush=True)
    return config, name, seed, result


def table(results: list, configs: list[str], sets: list[str]) -> str:
    lines = ["| configuration | " + " | ".join(f"{s} RMSE | {s} NDCG@10" for s in sets) + " |",
             "| --- |" + " --- | --- |" * len(sets)]
    for config in configs:
        cells = []
        for name in sets:
            for metric in ("rmse", "ndcg@10"):
                values = [r[metric] for c, n, _, r in results if c == config and n == name]
                cells.append(f"{np.mean(values):.4f} ± {np.std(values):.4f}" if values else "-")
        lines.append(f"| {config} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="+", default=[*REAL, "synthetic"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--config", action="append", default=None,
                        help="NAME=key=value,... (repeatable; default: the ablation)")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    configs = dict(map(parse_config, args.config)) if args.config else ABLATION
    sets = list(args.sets)
    if not SHARED.is_dir():
        print(f"skipping {', '.join(s for s in sets if s in REAL)}: {SHARED} is absent",
              file=sys.stderr)
        sets = [s for s in sets if s not in REAL]
    jobs = [(config, options, name, seed) for config, options in configs.items()
            for name in sets for seed in args.seeds]
    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(run, jobs))
    print(table(results, list(configs), sets))


if __name__ == "__main__":
    main()
