"""Fixtures of the data tests: hand-written MAL files with every oddity, small synthetic sets."""

from __future__ import annotations

from pathlib import Path

import pytest

from anirec.data import generate_synthetic, load_mal
from anirec.data.synthetic import ANIME_COLUMNS, write_tables

ANIME_HEADER = ",".join(ANIME_COLUMNS)


def anime_row(anime_id: str, name: str, score: str, genres: str, typ: str, episodes: str,
              aired: str, scored_by: str, members: str, synopsis: str = "A story.") -> str:
    """One line of anime-dataset-2023.csv; ``name``/``genres``/``aired``/``synopsis`` are
    given already CSV-quoted where needed."""
    return ",".join([anime_id, name, "UNKNOWN", "ナルト", score, genres, synopsis, typ,
                     episodes, aired, "spring 1998", "Finished Airing", '"Bandai, Dentsu"',
                     "UNKNOWN", "Sunrise", "Original", "24 min per ep",
                     "R - 17+ (violence & profanity)", "28.0", "43", "78525", scored_by,
                     members, "https://cdn.myanimelist.net/images/anime/4/19644.jpg"])


# Every oddity of the real file: quoted names with commas and doubled quotes, non-ASCII,
# UNKNOWN everywhere it occurs, a synopsis spanning lines, excluded genres, a duplicate id,
# a junk number, an open-ended airing date.
ANIME_ROWS = [
    anime_row("1", "Cowboy Bebop", "8.75", '"Action, Award Winning, Sci-Fi"', "TV", "26.0",
              '"Apr 3, 1998 to Apr 24, 1999"', "914193.0", "1771505"),
    anime_row("5", '"Kimi no, ""Na"" wa"', "UNKNOWN", '"Drama, Romance"', "Movie", "1.0",
              '"Aug 26, 2016"', "UNKNOWN", "100",
              synopsis='"Two teens, ""linked"".\n\n(Source: ANN)"'),
    anime_row("6", "Adult One", "6.10", "Hentai", "OVA", "2.0", "2001", "1000.0", "2000"),
    anime_row("7", '"Fan, Service"', "7.00", '"Comedy, Ecchi"', "TV", "12.0",
              '"Jan 1, 2010 to Mar 1, 2010"', "5000.0", "9000"),
    anime_row("8", "Mystery Box", "n/a", "UNKNOWN", "UNKNOWN", "UNKNOWN", "UNKNOWN",
              "UNKNOWN", "50"),
    anime_row("10", "Old Title", "5.00", "Comedy", "TV", "12.0", "2000", "10.0", "20"),
    anime_row("10", "Ōkami – Zoë's tale", "7.50", '"Adventure, Comedy"', "ONA", "UNKNOWN",
              '"Oct 20, 1999 to ?"', "2000.0", "3000"),
]

SCORES_HEADER = "user_id,Username,anime_id,Anime Title,rating"
SCORES_ROWS = [
    '100,"a,b",1,Cowboy Bebop,9',
    '100,"a,b",5,"Kimi no, ""Na"" wa",7',
    '100,"a,b",6,Adult One,8',            # excluded anime
    '100,"a,b",999,Nowhere,5',            # anime not in the anime file
    '100,"a,b",1,Cowboy Bebop,10',        # duplicate pair: this last one is kept
    '100,"a,b",8,Mystery Box,11',         # rating out of range
    '100,"a,b",10,"Ōkami – Zoë\'s tale",0',  # rating out of range
    "42,Jürgen,1,Cowboy Bebop,6",
    "42,Jürgen,10,\"Ōkami – Zoë's tale\",8",
    '42,Jürgen,5,"Kimi no, ""Na"" wa",7',
    '7,"O\'Brien, ""x""",8,Mystery Box,3',
]


@pytest.fixture
def mal_files(tmp_path: Path) -> tuple[Path, Path]:
    anime = tmp_path / "anime-dataset-2023.csv"
    scores = tmp_path / "users-score-2023.csv"
    anime.write_text("\n".join([ANIME_HEADER, *ANIME_ROWS]) + "\n", encoding="utf-8")
    scores.write_text("\n".join([SCORES_HEADER, *SCORES_ROWS]) + "\n", encoding="utf-8")
    return anime, scores


SMALL = dict(n_users=300, n_anime=250, n_ratings=12_000, seed=3)


@pytest.fixture(scope="session")
def small_synthetic():
    return generate_synthetic(**SMALL)


@pytest.fixture(scope="session")
def small_files(small_synthetic, tmp_path_factory) -> tuple[Path, Path]:
    return write_tables(small_synthetic, tmp_path_factory.mktemp("synthetic"))


@pytest.fixture(scope="session")
def small_data(small_files):
    return load_mal(*small_files)
