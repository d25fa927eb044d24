"""The conversion join: did a recommendation lead its user to start watching what it listed?

Definitions, all in event time (naive UTC), for a recommendation served at ``t``:

- **Exposure.** Status 200, a known user ID, a non-empty list, and not a repeat. A request
  repeats the previous one if the same user got the same list (same variant, same version)
  at most ``dedup`` after it: a burst of reloads, or a line logged twice, is one
  recommendation however long the burst. Errors, rejected user IDs and repeats are kept in
  the output but never convert.
- **Start.** The user's first watch event (minute line) of a movie among the watches given:
  the moment they started watching it. Watching on in a movie started before ``t`` is not a
  start, so it cannot convert a recommendation of that movie.
- **Converted.** Some listed movie's start lies in ``[t, t + window]`` (both ends closed).
  Each exposure is judged on its own: one start converts every exposure whose window and list
  cover it.
- **Position.** The 1-based place in the list of the movie started first (a tie: the one
  higher in the list); NA when not converted.
- **Minutes.** Distinct (movie, minute) watch events within ``[t, t + window]`` of the listed
  movies started in that window: what the recommendation led to, not what was already under
  way.
- A user with no watches (an unknown or new user) simply never converts.

The join is columnar: exposures are matched to starts by a sorted search over (user, time),
lists are exploded once per distinct list, not once per request, so the work grows with the
number of starts and distinct lists, not with requests x list length.
"""

from __future__ import annotations

from datetime import timedelta
from itertools import chain

import numpy as np
import pandas as pd

from online.settings import DEFAULT_DEDUP, DEFAULT_WINDOW

JUDGED_COLUMNS = ("exposure", "duplicate", "converted", "position", "minutes")
# user_outcomes' columns and dtypes: the user-level unit of analysis of A/B comparisons.
OUTCOME_DTYPES = {
    "user": "int64",
    "variant": "str",
    "version": "str",
    "first_exposure": "datetime64[ns]",
    "exposures": "int64",
    "conversions": "int64",
    "converted": "bool",
    "minutes": "float64",
}
# The same per (user, version, variant): what the incremental job accumulates.
VERSION_OUTCOME_DTYPES = {k: v for k, v in OUTCOME_DTYPES.items() if k != "converted"}
_NONE = np.empty(0, dtype=np.int64)


def conversions(
    recs: pd.DataFrame,
    watches: pd.DataFrame,
    window: timedelta = DEFAULT_WINDOW,
    dedup: timedelta = DEFAULT_DEDUP,
) -> pd.DataFrame:
    """One row per row of ``recs`` (same index): exposure, duplicate, converted, position
    (Int64, NA unless converted) and minutes. ``recs`` and ``watches`` as in
    ``online.frames``; ``watches`` must reach back far enough to tell starts from
    continuations (every earlier watch of the users concerned)."""
    return judge(recs, first_watches(watches), watches, window, dedup)


def first_watches(watches: pd.DataFrame) -> pd.DataFrame:
    """(user, movie, first_time): when each user started each movie they watched."""
    first = watches.groupby(["user", "movie"], sort=False)["time"].min()
    return first.rename("first_time").reset_index()


def merge_first_watches(old: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    """First watches over two stretches of the stream: the earlier time wins."""
    return first_watches(
        pd.concat(
            [old.rename(columns={"first_time": "time"}), new.rename(columns={"first_time": "time"})]
        )
    )


def judge(
    recs: pd.DataFrame,
    starts: pd.DataFrame,
    watches: pd.DataFrame,
    window: timedelta,
    dedup: timedelta,
) -> pd.DataFrame:
    """``conversions`` with the starts (``first_watches``) given, so that a caller holding
    them from a longer history than ``watches`` (the incremental job) can use them; only
    ``watches`` within the recommendations' windows are needed then."""
    n = len(recs)
    out = pd.DataFrame(
        {
            "exposure": np.zeros(n, dtype=bool),
            "duplicate": np.zeros(n, dtype=bool),
            "converted": np.zeros(n, dtype=bool),
            "position": pd.array(np.full(n, pd.NA), dtype="Int64"),
            "minutes": np.zeros(n, dtype=np.float64),
        },
        index=recs.index,
    )
    window_ns = _ns(window)
    movies = recs["movies"].to_numpy()
    candidate = (
        (recs["status"].to_numpy() == 200)
        & recs["user"].notna().to_numpy()
        & (np.fromiter(map(len, movies), dtype=np.int64, count=n) > 0)
    )
    rows = np.flatnonzero(candidate)
    if not len(rows):
        return out
    list_id, lists = pd.factorize(movies[rows])
    users = recs["user"].to_numpy(dtype=np.int64, na_value=0)[rows]
    times = _times(recs["time"])[rows]
    repeat = _repeats(
        [users, recs["variant"].to_numpy()[rows], recs["version"].to_numpy()[rows], list_id],
        times,
        _ns(dedup),
    )
    out.iloc[rows, out.columns.get_loc("duplicate")] = repeat
    exposed = rows[~repeat]
    out.iloc[exposed, out.columns.get_loc("exposure")] = True
    e_user, e_time, e_list = users[~repeat], times[~repeat], list_id[~repeat]

    # Starts of exposed users that fall in some exposure's window...
    starts = starts[starts["user"].isin(pd.unique(e_user))]
    s_time = _times(starts["first_time"])
    si, ei = _pairs_in_window(
        starts["user"].to_numpy(dtype=np.int64), s_time - window_ns, s_time, e_user, e_time
    )
    # ...and whose movie is on that exposure's list.
    hit, position, movie, movie_ids = _on_list(
        lists, e_list[ei], starts["movie"].to_numpy(dtype=object)[si]
    )
    si, ei, position, movie = si[hit], ei[hit], position[hit], movie[hit]
    if not len(ei):
        return out

    first = np.lexsort((position, s_time[si], ei))  # per exposure, the earliest start first
    by_exposure = ei[first]
    leads = np.flatnonzero(np.r_[True, by_exposure[1:] != by_exposure[:-1]])
    converted = exposed[by_exposure[leads]]
    out.iloc[converted, out.columns.get_loc("converted")] = True
    out.iloc[converted, out.columns.get_loc("position")] = position[first[leads]]

    minutes = _minutes(
        user=e_user[ei],
        movie=movie,
        start=e_time[ei],
        window_ns=window_ns,
        exposure=ei,
        watches=watches,
        movie_ids=movie_ids,
        exposures=len(e_user),
    )
    out.iloc[exposed, out.columns.get_loc("minutes")] = minutes
    return out


def _on_list(
    lists: np.ndarray, pair_list: np.ndarray, pair_movie: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Whether each (list id, movie) pair has the movie on the list, its 1-based position
    there, and the movie as a code into the returned movie IDs. Only the lists concerned are
    exploded, each once."""
    needed, pair_list = np.unique(pair_list, return_inverse=True)
    chosen = lists[needed]
    lengths = np.fromiter(map(len, chosen), dtype=np.int64, count=len(chosen))
    flat = np.fromiter(chain.from_iterable(chosen), dtype=object, count=int(lengths.sum()))
    entry_list = np.repeat(np.arange(len(chosen)), lengths)
    entry_position = np.arange(len(flat)) - np.repeat(np.cumsum(lengths) - lengths, lengths) + 1
    codes, movie_ids = pd.factorize(np.concatenate([flat, pair_movie]))
    movie = codes[len(flat) :]
    width = len(movie_ids)
    entries = entry_list * width + codes[: len(flat)]
    order = np.argsort(entries, kind="stable")
    entries = entries[order]
    if not len(entries):
        return np.zeros(len(movie), dtype=bool), movie, movie, movie_ids
    wanted = pair_list * width + movie
    at = np.minimum(np.searchsorted(entries, wanted), len(entries) - 1)
    return entries[at] == wanted, entry_position[order[at]], movie, movie_ids


def _minutes(
    *,
    user: np.ndarray,
    movie: np.ndarray,
    start: np.ndarray,
    window_ns: int,
    exposure: np.ndarray,
    watches: pd.DataFrame,
    movie_ids: np.ndarray,
    exposures: int,
) -> np.ndarray:
    """Per exposure, distinct (movie, minute) events of the matched (user, movie) pairs in
    ``[start, start + window]``."""
    w = watches[watches["user"].isin(pd.unique(user))]
    w_movie = pd.Index(movie_ids).get_indexer(w["movie"].to_numpy(dtype=object))
    w = w[w_movie >= 0]
    w_movie = w_movie[w_movie >= 0]
    width = len(movie_ids)
    user_code = np.unique(np.concatenate([user, w["user"].to_numpy()]), return_inverse=True)[1]
    pair_key = user_code[: len(user)] * width + movie
    watch_key = user_code[len(user) :] * width + w_movie
    pi, wi = _pairs_in_window(pair_key, start, start + window_ns, watch_key, _times(w["time"]))
    minute = w["minute"].to_numpy()[wi]
    base = int(minute.max(initial=0)) + 1
    pairs = pd.unique(pi * base + minute) // base  # one per distinct (pair, minute)
    return np.bincount(exposure[pairs], minlength=exposures).astype(np.float64)


def _repeats(keys: list[np.ndarray], times: np.ndarray, dedup_ns: int) -> np.ndarray:
    """Whether each request repeats the previous one with the same keys within ``dedup_ns``."""
    group = np.zeros(len(times), dtype=np.int64)
    for key in keys:  # one dense code for the combination, kept below len(times) each step
        codes, uniques = pd.factorize(key)
        group = pd.factorize(group * len(uniques) + codes)[0].astype(np.int64)
    order = np.lexsort((times, group))
    g, t = group[order], times[order]
    repeat = np.zeros(len(times), dtype=bool)
    repeat[order[1:]] = (g[1:] == g[:-1]) & (t[1:] - t[:-1] <= dedup_ns)
    return repeat


def _pairs_in_window(
    q_key: np.ndarray, q_lo: np.ndarray, q_hi: np.ndarray, r_key: np.ndarray, r_time: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Every (i, j) with ``r_key[j] == q_key[i]`` and ``q_lo[i] <= r_time[j] <= q_hi[i]``.

    Keys and times (int64 ns) become one sortable int64: the key's dense code times the
    number of distinct times, plus the time's rank. Ranks keep nanosecond order exactly and
    cannot overflow, whatever the time span; each query's matches are then one contiguous run
    of the sorted ``r``."""
    if not len(q_key) or not len(r_key):
        return _NONE, _NONE
    nq = len(q_key)
    keys = pd.factorize(np.concatenate([q_key, r_key]))[0].astype(np.int64)
    times = np.sort(np.concatenate([r_time, q_lo, q_hi]))
    times = times[np.r_[True, times[1:] != times[:-1]]]
    span = len(times)
    r_code = keys[nq:] * span + np.searchsorted(times, r_time)
    order = np.argsort(r_code, kind="stable")
    r_code = r_code[order]
    lo = np.searchsorted(r_code, keys[:nq] * span + np.searchsorted(times, q_lo), "left")
    hi = np.searchsorted(r_code, keys[:nq] * span + np.searchsorted(times, q_hi), "right")
    counts = hi - lo
    qi = np.repeat(np.arange(nq), counts)
    within = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    return qi, order[np.repeat(lo, counts) + within]


def _times(column: pd.Series) -> np.ndarray:
    return column.to_numpy(dtype="datetime64[ns]").view(np.int64)


def _ns(delta: timedelta) -> int:
    return int(pd.Timedelta(delta).value)


# --- per user ------------------------------------------------------------------------------


def user_outcomes(
    recs: pd.DataFrame,
    watches: pd.DataFrame,
    window: timedelta = DEFAULT_WINDOW,
    dedup: timedelta = DEFAULT_DEDUP,
) -> pd.DataFrame:
    """One row per (user, variant) the user was exposed in (``OUTCOME_DTYPES``): version is
    the one they saw first in that variant; exposures are deduplicated status-200
    recommendations (at least 1); conversions counts the converted ones; converted says
    whether there was any; minutes sums theirs. Users with no exposure (only errors) are not
    in it. Every exposure counts, so pass only recommendations whose window has closed."""
    judged = conversions(recs, watches, window, dedup)
    return collapse_versions(version_outcomes(recs, judged))


def version_outcomes(recs: pd.DataFrame, judged: pd.DataFrame) -> pd.DataFrame:
    """Per (user, version, variant) (``VERSION_OUTCOME_DTYPES``), from ``judge``'s rows."""
    rows = recs.loc[judged["exposure"], ["user", "version", "variant", "time"]].assign(
        converted=judged["converted"], minutes=judged["minutes"]
    )
    grouped = rows.groupby(["user", "version", "variant"], sort=True)
    table = grouped.agg(
        first_exposure=("time", "min"),
        exposures=("time", "size"),
        conversions=("converted", "sum"),
        minutes=("minutes", "sum"),
    ).reset_index()
    return _typed(table, VERSION_OUTCOME_DTYPES)


def merge_version_outcomes(old: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    """Two stretches' ``version_outcomes`` as one."""
    both = pd.concat([old, new], ignore_index=True)
    grouped = both.groupby(["user", "version", "variant"], sort=True)
    table = grouped.agg(
        first_exposure=("first_exposure", "min"),
        exposures=("exposures", "sum"),
        conversions=("conversions", "sum"),
        minutes=("minutes", "sum"),
    ).reset_index()
    return _typed(table, VERSION_OUTCOME_DTYPES)


def collapse_versions(per_version: pd.DataFrame) -> pd.DataFrame:
    """``version_outcomes`` -> ``user_outcomes``: versions summed within a variant, labelled
    by the first one the user saw."""
    ordered = per_version.sort_values(["user", "variant", "first_exposure", "version"])
    grouped = ordered.groupby(["user", "variant"], sort=True)
    table = grouped.agg(
        version=("version", "first"),
        first_exposure=("first_exposure", "min"),
        exposures=("exposures", "sum"),
        conversions=("conversions", "sum"),
        minutes=("minutes", "sum"),
    ).reset_index()
    table["converted"] = table["conversions"] > 0
    return _typed(table, OUTCOME_DTYPES)


def _typed(table: pd.DataFrame, dtypes: dict[str, str]) -> pd.DataFrame:
    return table.reindex(columns=list(dtypes)).astype(dtypes).reset_index(drop=True)
