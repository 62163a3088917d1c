"""The repository's text names nothing a clone lacks and no step of how it was developed.

A clone has only the repository: no folder beside it, no machine's home or scratch folders, no
record of who changed what and when (git keeps that). So the package, the documentation, the
benchmarks and the tests may not name a path outside the repository, nor development-process
words. The one exception: test and benchmark code may read the development copies of the real
data sets from ``"../shared/data"`` when they are present (and skip when not); no documentation
may point there.
"""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_SUFFIXES = {".py", ".pyx", ".pxd"}


def repository_files() -> dict[Path, str]:
    """Every text file of the checkout that a reader or a maintainer reads, by path."""
    files = [ROOT / "README.md", ROOT / "setup.py", ROOT / "pyproject.toml", ROOT / ".ci" / "run"]
    for folder, suffixes in (("anirec", PACKAGE_SUFFIXES), ("benchmarks", {".py", ".md"}),
                             ("tests", {".py", ".md"}), ("docs", {".md"})):
        files += [path for path in sorted((ROOT / folder).rglob("*"))
                  if path.suffix in suffixes and "__pycache__" not in path.parts]
    # This file names what it looks for: its own examples are not findings.
    return {path.relative_to(ROOT): path.read_text("utf-8") for path in files
            if path.is_file() and path != Path(__file__).resolve()}


def _documentation(path: Path) -> bool:
    return path.suffix == ".md"


#: (what, pattern, applies to a path). A pattern is searched in the whole text, so a phrase
#: wrapped over two lines is found too (``\s+`` between its words).
OUTSIDE_PATHS = [
    ("a folder beside the repository", re.compile(r"\.\./shared"), lambda path: True),
    ("a machine's work folder", re.compile(r"/work/"), lambda path: True),
    ("a home folder", re.compile(r"/root\b|/home/\w"), lambda path: True),
    ("a scratch folder", re.compile(r"/tmp/"),
     lambda path: _documentation(path) or path.parts[0] == "anirec"),
]
PROCESS_WORDS = [
    ("an issue number", re.compile(r"\bissues?\s*#?\d+", re.IGNORECASE)),
    ("a work session", re.compile(r"\bsessions?\b", re.IGNORECASE)),
    ("a helper as an agent", re.compile(
        r"\b(another|other)\s+helpers?\b|\bhelpers?'s?\s|\bhelpers?\s+(at\s+work|sessions?|"
        r"agents?|branch(es)?|worktrees?|reports?)\b", re.IGNORECASE)),
    ("a merge", re.compile(r"\bafter\s+the\s+merge\b", re.IGNORECASE)),
    ("the mission", re.compile(r"\bthe\s+mission\b", re.IGNORECASE)),
    ("a notebook outside the repository", re.compile(r"\boriginal\s+notebook", re.IGNORECASE)),
    ("the integrator", re.compile(r"\bintegrator\b", re.IGNORECASE)),
]
#: Code that may stay: pytest's fixture scope, and reading the development data when present.
ALLOWED = [re.compile(r"""scope=["']session["']""")]
DEVELOPMENT_DATA = re.compile(r"""["']\.\./shared/data["']""")


def _blank(match: re.Match) -> str:
    return " " * len(match.group())


def _allowed(path: Path, text: str) -> str:
    """``text`` with what it may contain blanked out (lines keep their numbers)."""
    for pattern in ALLOWED:
        text = pattern.sub(_blank, text)
    if path.suffix == ".py" and path.parts[0] in ("tests", "benchmarks"):
        text = DEVELOPMENT_DATA.sub(_blank, text)
    return text


def findings(files: dict[Path, str], checks) -> list[str]:
    """``path:line: what: text`` of every match of a check in ``files``."""
    found = []
    for path, text in files.items():
        text = _allowed(path, text)
        for what, pattern, *applies in checks:
            if applies and not applies[0](path):
                continue
            for match in pattern.finditer(text):
                line = text.count("\n", 0, match.start()) + 1
                shown = " ".join(match.group().split())
                found.append(f"{path}:{line}: {what}: {shown}")
    return found


@pytest.fixture(scope="module")
def files():
    if not (ROOT / "README.md").is_file():
        pytest.skip("runs from a source checkout only")
    return repository_files()


def test_the_check_reads_the_whole_repository(files):
    names = {str(path) for path in files}
    assert {"README.md", "docs/architecture.md", "benchmarks/README.md", "tests/README.md",
            "anirec/recommender.py", "anirec/_kernels/_epoch.pyx", "benchmarks/compare.py",
            "tests/test_make_sets.py", "setup.py"} <= names
    assert not any(name.endswith(".c") for name in names)


def test_no_path_outside_the_repository(files):
    found = findings(files, OUTSIDE_PATHS)
    assert not found, "paths a clone does not have:\n" + "\n".join(found)


def test_no_development_history(files):
    found = findings(files, PROCESS_WORDS)
    assert not found, "development history (it belongs in git):\n" + "\n".join(found)


@pytest.mark.parametrize("text,path,caught", [
    ("see ../shared/data/ml100k", "README.md", True),
    ('DATA = ROOT / "../shared/data"', "tests/test_x.py", False),
    ('DATA = ROOT / "../shared/data"', "anirec/x.py", True),
    ("python benchmarks/ab.py --before /tmp/old/bin/python", "benchmarks/README.md", True),
    ("tmp = Path('/tmp/x')", "tests/test_x.py", False),
    ("cd /work/main", "docs/architecture.md", True),
    ("open('/root/.cache')", "tests/test_x.py", True),
])
def test_each_path_rule_catches_its_case(text, path, caught):
    assert bool(findings({Path(path): text}, OUTSIDE_PATHS)) == caught


@pytest.mark.parametrize("text,caught", [
    ("measured in issue 16", True), ("see Issue #12", True), ("the second session", True),
    ('@pytest.fixture(scope="session")', False), ("another helper measured it", True),
    ("the helpers at work on the epoch", True), ("Option parsing helpers", False),
    ("from .kernel_helpers import run_epoch", False), ("each helper around it", False),
    ("tests after the merge", True), ("the mission's shape", True),
    ("the original notebook's decay", True), ("the original\n    notebook's", True),
    ("the integrator merges", True),
    ("the issue of scale", False),
])
def test_each_process_word_is_caught(text, caught):
    assert bool(findings({Path("anirec/x.py"): text}, PROCESS_WORDS)) == caught
