"""Training at service scale: fit time and peak memory of the models, against bare kernels.

The service has about 1M users, 27k movies and tens of millions of interactions. This makes
synthetic interactions of that shape (27k movies with Zipf popularity, a lognormal number of
movies per user, 30 on average) at several user counts and fits each model in a fresh
process, so that its peak RSS (``resource.getrusage``) is its own. Interaction content does
not change any model's cost (only the counts do), and quality is measured elsewhere
(``python -m training.evaluate``), so the data has no taste structure.

**The served model** (``--served``, EASE: what the gate promotes on MovieLens-100K,
docs/MODELS.md) is fitted once, at the largest scale (1M users by default), with the
production settings (rank-128 factors, recency-weighted history). Its cost is a sparse Gram
matrix over the users, one dense movies x movies inverse and a randomized SVD; the bench
reports each stage (``stages_s``), the fit, the peak RSS, and the baseline measured in the
same process after the fit: ``bare_inverse_s``, torch's float32 Cholesky inverse of a
movies x movies SPD matrix alone (the LAPACK floor any closed-form EASE pays, whatever its
users). ``ratio`` = ``bare_inverse_s / fit_s``: the share of the fit that is that floor.

What is measured, per scale, for the neural model (Mult-DAE, a candidate the gate may promote):

- ``epoch_s``: one pass over the training users (median of the epochs run). A fit runs
  NEURAL_EPOCHS (40) of them; the bench runs ``--epochs`` (1) and projects the full fit as
  ``setup_s + NEURAL_EPOCHS * epoch_s + embed_s``: epochs are identical work, so cost is
  linear in their number.
- ``embed_s``: the encoder pass that gives every user (not only the trained ones) factors.
- ``bare_gemm_s`` (the baseline, same process, same threads): the epoch's decoder matrix
  product alone, ``[batch x hidden] @ [hidden x movies]`` for every batch, in torch. It is
  the model's scoring shape, the floor of an epoch's forward pass; ``ratio`` =
  ``epoch_s / bare_gemm_s`` says what the rest (backward: two more such products, softmax,
  Adam, the sparse encoder) costs on top.
- ``score_all_s``: the precompute floor, every user's scores as bare GEMMs in blocks of
  2048, numpy as precompute does it.
- peak RSS of the fitting process and its RSS before the fit (data loaded).

SVD (surprise) and popularity are fitted at the smallest scale (SVD on 35% of interactions
as ratings, the simulator's rating share); SVD's cost is linear in ratings, and the
projection to 1M users says so.

Prints one JSON line. ``python -m bench.train --help``; ``make bench-train`` runs the
defaults.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

MOVIES = 27_000
MEAN_PER_USER = 30
RATING_SHARE = 0.35
SERVICE_USERS = 1_000_000
SCORE_BLOCK = 2048


def log(message: str) -> None:
    print(f"[bench.train] {message}", file=sys.stderr, flush=True)


def rss_gib() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


# --- data ----------------------------------------------------------------------------------


def make_data(users: int, movies: int, seed: int, path: Path) -> int:
    """Synthetic users x movies interactions as CSR arrays in ``path``; returns the count."""
    rng = np.random.default_rng(seed)
    popularity = 1.0 / np.arange(1, movies + 1)
    popularity = popularity[rng.permutation(movies)]
    popularity /= popularity.sum()
    sigma = 1.0
    draws = rng.lognormal(np.log(MEAN_PER_USER) - sigma**2 / 2, sigma, users)
    counts = np.clip(np.round(draws), 1, movies // 10).astype(np.int64)
    rows = np.repeat(np.arange(users, dtype=np.int64), counts)
    cols = rng.choice(movies, size=len(rows), p=popularity)
    keys = np.unique(rows * movies + cols)  # a movie drawn twice counts once
    rows, cols = keys // movies, (keys % movies).astype(np.int32)
    indptr = np.zeros(users + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=users), out=indptr[1:])
    np.savez(path, indptr=indptr, indices=cols, movies=np.array(movies))
    return len(cols)


def load_interactions(path: Path, with_ratings: bool, seed: int):
    import pandas as pd
    from scipy import sparse

    from training.interactions import Interactions

    with np.load(path) as z:
        indptr, indices, movies = z["indptr"], z["indices"], int(z["movies"])
    users = len(indptr) - 1
    seen = sparse.csr_matrix(
        (np.ones(len(indices), dtype=np.int8), indices, indptr), shape=(users, movies)
    )
    ratings = pd.DataFrame({"user_idx": [], "item_idx": [], "rating": []})
    if with_ratings:
        rng = np.random.default_rng(seed)
        rated = np.flatnonzero(rng.random(len(indices)) < RATING_SHARE)
        owner = np.repeat(np.arange(users), np.diff(indptr))
        ratings = pd.DataFrame(
            {
                "user_idx": owner[rated],
                "item_idx": indices[rated],
                "rating": rng.integers(1, 6, len(rated)).astype(np.float32),
            }
        )
    item_ids = np.array([f"movie+{i}+2000" for i in range(movies)], dtype=object)
    item_ids.sort()
    # Contact times (what the history weighting ranks by): seeded, over 30 days.
    times = np.random.default_rng(seed + 1).integers(0, 30 * 86_400, len(indices))
    last_contact = sparse.csr_matrix(
        ((1_735_689_600 + times).astype(np.uint32), seen.indices, seen.indptr), shape=seen.shape
    )
    return Interactions(np.arange(users, dtype=np.int64), item_ids, ratings, seen, last_contact)


# --- one fit, in its own process --------------------------------------------------------


def worker(model: str, data: Path, epochs: int, seed: int) -> dict:
    """Fit ``model`` on ``data`` and measure it; runs in a fresh interpreter."""
    from training.settings import Settings
    from training.train import make_algorithm

    interactions = load_interactions(data, with_ratings=model == "svd", seed=seed)
    rss_before = rss_gib()
    settings = Settings.from_env()
    settings = type(settings)(**{**settings.__dict__, "neural_epochs": epochs, "seed": seed})
    algo = make_algorithm(model, settings)
    started = time.perf_counter()
    fitted = algo.fit(interactions)
    fit_s = time.perf_counter() - started
    result = {
        "model": model,
        "users": interactions.n_users,
        "interactions": int(interactions.seen.nnz),
        "ratings": len(interactions.ratings),
        "fit_s": round(fit_s, 2),
        "rss_before_fit_gib": round(rss_before, 2),
        "peak_rss_gib": round(rss_gib(), 2),
    }
    if model == "ease":
        from training.ease import EASE

        assert isinstance(algo, EASE)
        bare = bare_inverse(interactions.n_items, seed)
        result.update(
            {
                "rank": algo.rank,
                "stages_s": {k: round(v, 2) for k, v in algo.stage_seconds.items()},
                "bare_inverse_s": round(bare, 2),
                "ratio": round(bare / fit_s, 3),
                "factors": list(fitted.user_factors.shape),
            }
        )
    if model == "multdae":
        import torch

        from training.neural import MultDAE

        assert isinstance(algo, MultDAE)
        epoch_s = statistics.median(algo.epoch_seconds)
        setup_s = fit_s - sum(algo.epoch_seconds) - algo.embed_seconds
        trained = min(interactions.n_users, algo.max_train_users or interactions.n_users)
        torch.set_num_threads(algo.threads_used)  # the baseline runs as the fit's epochs ran
        bare = bare_epoch_gemm(fitted.item_factors, trained, algo.batch_used, seed)
        result.update(
            {
                "train_users": trained,
                "batch": algo.batch_used,
                "hidden": algo.hidden,
                "threads": algo.threads_used,
                "epochs_run": len(algo.epoch_seconds),
                "epoch_s": round(epoch_s, 2),
                "embed_s": round(algo.embed_seconds, 2),
                "setup_s": round(setup_s, 2),
                "bare_gemm_s": round(bare, 2),
                "ratio": round(epoch_s / bare, 2),
                "score_all_s": round(score_all(fitted.item_factors, interactions.n_users, seed), 2),
            }
        )
    return result


def bare_epoch_gemm(item_factors: np.ndarray, users: int, batch: int, seed: int) -> float:
    """Seconds for one epoch's decoder products alone: [batch x d] @ [d x movies], torch."""
    import torch

    weights = torch.from_numpy(item_factors)
    hidden = torch.from_numpy(
        np.random.default_rng(seed).standard_normal((batch, item_factors.shape[1]), np.float32)
    )
    torch.mm(hidden, weights.T)  # warm up
    started = time.perf_counter()
    for _ in range(-(-users // batch)):
        torch.mm(hidden, weights.T)
    return time.perf_counter() - started


def bare_inverse(movies: int, seed: int) -> float:
    """Seconds for the float32 Cholesky inverse of one movies x movies SPD matrix, in place,
    as EASE does it (``training.ease.invert_spd_in_place``; only the lower triangle is read,
    so a unit diagonal plus small random entries is SPD without a product to build it)."""
    from training.ease import invert_spd_in_place

    rng = np.random.default_rng(seed)
    matrix = np.empty((movies, movies), dtype=np.float32)
    for lo in range(0, movies, 1024):  # row blocks: no float64 temporary of the whole
        matrix[lo : lo + 1024] = rng.random((min(1024, movies - lo), movies), np.float32)
    matrix *= np.float32(1.0 / movies)
    matrix[np.diag_indices_from(matrix)] += np.float32(1.0)
    started = time.perf_counter()
    invert_spd_in_place(matrix)
    return time.perf_counter() - started


def score_all(item_factors: np.ndarray, users: int, seed: int) -> float:
    """Seconds for every user's scores as numpy GEMMs in precompute's blocks (no top-k)."""
    block = np.random.default_rng(seed).standard_normal(
        (SCORE_BLOCK, item_factors.shape[1]), np.float32
    )
    started = time.perf_counter()
    for lo in range(0, users, SCORE_BLOCK):
        block[: min(SCORE_BLOCK, users - lo)] @ item_factors.T
    return time.perf_counter() - started


def run_worker(model: str, data: Path, epochs: int, seed: int) -> dict:
    done = subprocess.run(
        [
            sys.executable, "-m", "bench.train", "--worker", model, "--data", str(data),
            "--epochs", str(epochs), "--seed", str(seed),
        ],
        capture_output=True, text=True, check=False,
        cwd=Path(__file__).resolve().parent.parent,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"{model} on {data.name} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.splitlines()[-1])


# --- main -------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.train", description=__doc__)
    parser.add_argument(
        "--users",
        default="25000,50000,100000,1000000",
        help="comma-separated user counts (default 25k,50k,100k,1M)",
    )
    parser.add_argument("--movies", type=int, default=MOVIES)
    parser.add_argument(
        "--served",
        default="ease",
        help="the served model, fitted at the largest scale ('' for none; default ease)",
    )
    parser.add_argument(
        "--neural",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Mult-DAE at every scale, popularity and SVD at the smallest (default on)",
    )
    parser.add_argument(
        "--epochs", type=int, default=1, help="neural epochs actually run (default 1)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--worker", metavar="MODEL", help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.data, args.epochs, args.seed)))
        return 0

    from training.settings import Settings

    full_epochs = Settings.from_env().neural_epochs
    scales = sorted(int(u) for u in args.users.split(","))
    neural, others = [], {}
    served = None
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        for users in scales:
            data = Path(tmp) / f"u{users}.npz"
            began = time.perf_counter()
            count = make_data(users, args.movies, args.seed, data)
            log(f"{users} users, {count} interactions ({time.perf_counter() - began:.0f}s)")
            if args.served and users == scales[-1]:
                served = run_worker(args.served, data, args.epochs, args.seed)
                log(f"{args.served} (served): {json.dumps(served)}")
            if not args.neural:
                data.unlink()
                continue
            result = run_worker("multdae", data, args.epochs, args.seed)
            result["projected_fit_s"] = round(
                result["setup_s"] + full_epochs * result["epoch_s"] + result["embed_s"], 1
            )
            neural.append(result)
            log(f"multdae: {json.dumps(result)}")
            if users == scales[0]:
                for model in ("popularity", "svd"):
                    others[model] = run_worker(model, data, args.epochs, args.seed)
                    log(f"{model}: {json.dumps(others[model])}")
            data.unlink()

    output: dict = {"bench": "train", "movies": args.movies}
    output["mean_interactions_per_user"] = MEAN_PER_USER
    if served:
        output["served"] = served
    if neural:
        output.update(neural_summary(neural, others, full_epochs))
    output["machine"] = (
        f"{platform.machine()}, {os.cpu_count()} cpus, Python {platform.python_version()}"
    )
    print(json.dumps(output))
    return 0


def neural_summary(neural: list[dict], others: dict, full_epochs: int) -> dict:
    """Mult-DAE's headline (largest scale), its epoch scaling, popularity and SVD."""
    # Scaling of an epoch with the users it trains on (below the cap): a log-log slope.
    uncapped = [r for r in neural if r["train_users"] == r["users"]]
    slope = None
    if len(uncapped) >= 2:
        x = np.log([r["train_users"] for r in uncapped])
        y = np.log([r["epoch_s"] for r in uncapped])
        slope = float(np.polyfit(x, y, 1)[0])
    largest = neural[-1]
    svd = others.get("svd")
    svd_projection = None
    if svd:
        svd_projection = round(svd["fit_s"] * SERVICE_USERS / svd["users"], 0)
    headline = {
        "users": largest["users"],
        "interactions": largest["interactions"],
        "measured_fit_s": largest["fit_s"],
        "epochs_run": largest["epochs_run"],
        "projected_fit_s": largest["projected_fit_s"],
        "projected_for_epochs": full_epochs,
        "peak_rss_gib": largest["peak_rss_gib"],
        "ratio": largest["ratio"],
    }
    if slope is not None:  # what an epoch over 1M users would cost without the cap
        biggest = uncapped[-1]
        epoch_1m = biggest["epoch_s"] * (SERVICE_USERS / biggest["train_users"]) ** slope
        headline["extrapolated_uncapped_1m_epoch_s"] = round(epoch_1m, 1)
    return {
        "multdae": headline,
        "epoch_scaling_exponent": None if slope is None else round(slope, 3),
        "scales": neural,
        "popularity": others.get("popularity"),
        "svd": svd,
        "svd_projected_1m_users_fit_s": svd_projection,
    }


if __name__ == "__main__":
    sys.exit(main())
