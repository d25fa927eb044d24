"""Reading MovieLens rating files: the leaderboard's real data, and what the simulator replays
as the event stream (``simulator.replay``).

Three layouts are recognised by their content, not their name:

- ``u.data`` (ML-100k): ``user<TAB>movie<TAB>rating<TAB>timestamp``, no header;
- ``ratings.dat`` (ML-1M/10M): ``user::movie::rating::timestamp``;
- ``ratings.csv`` (ML-latest, 20M, 25M, 32M): header ``userId,movieId,rating,timestamp``,
  half-star ratings 0.5..5.0.

Movie IDs on the stream are slugs (``toy+story+1995``); when a movies file sits beside the
ratings file (``u.item``, ``movies.dat``, ``movies.csv``) the slugs come from its titles,
otherwise every movie becomes ``movie+<id>+0000``. The replay and the offline evaluator both
read the files through this module, so they map slugs alike.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pandas as pd

from ingest.events import is_movie_id

COLUMNS = ["user_id", "movie", "rating", "timestamp"]
# Which movies file belongs to which ratings layout; the first one found beside wins.
MOVIES_FILES = {"u.data": "u.item", "ratings.dat": "movies.dat", "ratings.csv": "movies.csv"}
NO_YEAR = "0000"

_TITLE_YEAR = re.compile(r"^(.*?)\s*\((\d{4})(?:[-–]\d{0,4})?\)\s*$")
_ARTICLE = re.compile(r"^(.*), (the|a|an)$", re.IGNORECASE)
_ALIAS = re.compile(r"\s*\([^()]*\)\s*$")  # "(a.k.a. ...)" or the original-language title
_NOT_WORD = re.compile(r"[\W_]+")


def detect_layout(path: str | Path) -> str:
    """A ratings file's layout from its first line: 'u.data', 'ratings.dat' or 'ratings.csv'."""
    with Path(path).open("rb") as handle:
        first = handle.readline()
    if b"::" in first:
        return "ratings.dat"
    if b"\t" in first:
        return "u.data"
    if b"," in first:
        return "ratings.csv"
    raise ValueError(f"{path}: not a MovieLens ratings file (first line {first[:80]!r})")


def read_ratings(path: str | Path) -> pd.DataFrame:
    """All ratings of a MovieLens file as columns user_id, movie, rating, timestamp (file order).

    ``rating`` keeps the file's own values (integers, or half stars for ratings.csv);
    ``to_stars`` turns them into the stream's 1..5.
    """
    path = Path(path)
    layout = detect_layout(path)
    if layout == "ratings.csv":
        with path.open("rb") as handle:
            has_header = not handle.readline()[:1].isdigit()
        frame = pd.read_csv(path, header=0 if has_header else None)
    else:
        data = path.read_bytes()
        if layout == "ratings.dat":
            # The C parser takes one-character separators only; '::' never occurs inside a field.
            data = data.replace(b"::", b"\t")
        frame = pd.read_csv(io.BytesIO(data), sep="\t", header=None)
    if frame.shape[1] < 4:
        raise ValueError(f"{path}: expected 4 columns, found {frame.shape[1]}")
    frame = frame.iloc[:, :4]
    frame.columns = COLUMNS
    rating = frame["rating"]
    return pd.DataFrame(
        {
            "user_id": frame["user_id"].astype("int64"),
            "movie": frame["movie"].astype("int64"),
            "rating": rating.astype("int64") if _all_integral(rating) else rating.astype(float),
            "timestamp": frame["timestamp"].astype("int64"),
        }
    )


def _all_integral(values: pd.Series) -> bool:
    return bool(np.all(np.mod(values.to_numpy(dtype=float), 1.0) == 0.0))


def to_stars(ratings: pd.Series | np.ndarray) -> np.ndarray:
    """Ratings as integer stars 1..5: half stars round up (0.5 -> 1, 3.5 -> 4)."""
    return np.clip(np.ceil(np.asarray(ratings, dtype=float)), 1, 5).astype(np.int64)


def slugify(title: str, movie: int) -> str:
    """'Shawshank Redemption, The (1994)' -> 'the+shawshank+redemption+1994'.

    Trailing parentheticals (alternative titles, "a.k.a.") are dropped, a trailing article
    moves to the front, and only lowercase alphanumeric words remain (apostrophes vanish:
    "schindler's" -> "schindlers"), so the slug matches the grammar. A title with no words
    becomes 'movie+<id>'; no year gives '0000'.
    """
    match = _TITLE_YEAR.match(title)
    name, year = (match.group(1), match.group(2)) if match else (title, NO_YEAR)
    while (shorter := _ALIAS.sub("", name)) != name and shorter.strip():
        name = shorter
    article = _ARTICLE.match(name.strip())
    if article:
        name = f"{article.group(2)} {article.group(1)}"
    words = _NOT_WORD.sub(" ", name.lower().replace("'", "").replace("’", "")).split()
    slug = "+".join([*(words or ["movie", str(movie)]), year])
    if not is_movie_id(slug):  # the word filter above makes this unreachable; keep it honest
        raise ValueError(f"title {title!r} gave an invalid movie id {slug!r}")
    return slug


def fallback_slug(movie: int) -> str:
    return f"movie+{movie}+{NO_YEAR}"


def find_movies_file(ratings_path: str | Path) -> Path | None:
    """The movies file beside a ratings file: its own layout's companion first, then any."""
    ratings_path = Path(ratings_path)
    try:
        own = MOVIES_FILES[detect_layout(ratings_path)]
    except ValueError:
        own = None
    for name in [own, *MOVIES_FILES.values()]:
        if name and (candidate := ratings_path.parent / name).is_file():
            return candidate
    return None


def read_titles(movies_path: str | Path) -> dict[int, str]:
    """movie id -> title from u.item (pipes, latin-1), movies.dat ('::', latin-1) or movies.csv."""
    movies_path = Path(movies_path)
    if movies_path.name.endswith(".csv"):
        frame = pd.read_csv(movies_path, usecols=[0, 1], encoding="utf-8")
    else:
        data = movies_path.read_bytes().decode("latin-1")
        sep = "|" if "::" not in data.split("\n", 1)[0] else "::"
        rows = [line.split(sep) for line in data.splitlines() if line.strip()]
        frame = pd.DataFrame([row[:2] for row in rows])
    return dict(zip(frame.iloc[:, 0].astype("int64"), frame.iloc[:, 1].astype(str), strict=True))


def movie_slugs(movies: np.ndarray | list[int], movies_path: str | Path | None) -> dict[int, str]:
    """A unique slug for every movie id; a title seen twice gets its id before the year.

    Slugs are assigned over every movie of the movies file (plus ``movies``), in id order,
    so the same movie gets the same slug whichever subset of ratings is being read.
    """
    titles = read_titles(movies_path) if movies_path is not None else {}
    slugs: dict[int, str] = {}
    taken: set[str] = set()
    for movie in sorted(set(titles) | {int(m) for m in movies}):
        title = titles.get(movie)
        slug = slugify(title, movie) if title is not None else fallback_slug(movie)
        if slug in taken:
            words, _, year = slug.rpartition("+")
            slug = f"{words}+{movie}+{year}"
        taken.add(slug)
        slugs[movie] = slug
    return slugs
