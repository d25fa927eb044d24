"""contracts/: standard library only, the one definition of each shared constant, and the
rules it owns (user IDs, the request-log record) holding for any input."""

from __future__ import annotations

import ast
import math
import sys
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from contracts import requestrecord, userid
from contracts.requestrecord import Reason, RecordFormatter, Request, parse_request_line
from contracts.userid import MAX_USER_ID, parse_user_id

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS = sorted((ROOT / "contracts").glob("*.py"))
PACKAGES = ["ingest", "training", "precompute", "service", "online", "experiments", "simulator"]
PACKAGES += ["devstack", "bench", "dags", "scripts"]


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            found.add(node.module.split(".")[0])
    return found


def _literal_constants(path: Path) -> dict[str, int]:
    """Module-level ``NAME = <literal expression>`` assignments, by name (with line)."""
    constants = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name) and target.id.isupper():
                try:
                    ast.literal_eval(node.value)
                except ValueError:
                    if not isinstance(node.value, ast.BinOp):  # 2**63 - 1 is a literal too
                        continue
                constants[target.id] = node.lineno
    return constants


def test_contracts_import_only_the_standard_library() -> None:
    assert len(CONTRACTS) >= 8
    for path in CONTRACTS:
        outside = _imports(path) - set(sys.stdlib_module_names) - {"contracts", "__future__"}
        assert outside == set(), f"{path.name} imports {outside}"


def test_each_shared_constant_is_defined_once() -> None:
    """A constant contracts/ defines is never defined again elsewhere (aliases are fine)."""
    shared = {name for path in CONTRACTS for name in _literal_constants(path)}
    assert {"MAX_USER_ID", "LIST_LENGTH", "ACTIVE", "DEFAULT_REDIS_URL", "BUCKETS"} <= shared
    again = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            again += [
                f"{path.relative_to(ROOT)}:{line} {name}"
                for name, line in _literal_constants(path).items()
                if name in shared
            ]
    assert again == []


def test_the_largest_user_id_is_written_once() -> None:
    sources = [p for package in PACKAGES for p in (ROOT / package).rglob("*.py")]
    assert [p for p in sources if "2**63" in p.read_text()] == []
    assert "2**63 - 1" in (ROOT / "contracts" / "userid.py").read_text()


@given(st.integers(min_value=1, max_value=MAX_USER_ID))
def test_every_valid_id_has_one_spelling_that_parses(user_id: int) -> None:
    assert parse_user_id(str(user_id)) == user_id
    assert parse_user_id("0" + str(user_id)) is None
    assert parse_user_id("+" + str(user_id)) is None
    assert parse_user_id(f" {user_id}") is None


@given(st.text(max_size=25))
def test_parse_user_id_accepts_only_canonical_in_range_ids(raw: str) -> None:
    parsed = parse_user_id(raw)
    if parsed is not None:
        assert str(parsed) == raw and userid.valid_user_id(parsed)


def test_ids_past_the_range_are_refused() -> None:
    assert parse_user_id(str(MAX_USER_ID + 1)) is None
    assert parse_user_id("0") is None
    assert not userid.valid_user_id(0) and not userid.valid_user_id(MAX_USER_ID + 1)


LABEL = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=12)
MOVIES = st.lists(st.from_regex(r"[a-z0-9+]{1,12}", fullmatch=True), min_size=1, max_size=20)


@given(
    now=st.floats(min_value=0, max_value=4e9),
    user=st.none() | st.integers(min_value=1, max_value=MAX_USER_ID),
    status=st.sampled_from([200, 400, 404, 500]),
    latency=st.floats(min_value=0, max_value=1e4),
    labels=st.tuples(LABEL, LABEL, LABEL),
    movies=MOVIES,
)
def test_a_written_record_reads_back_as_written(
    now: float,
    user: int | None,
    status: int,
    latency: float,
    labels: tuple[str, str, str],
    movies: list[str],
) -> None:
    body = ",".join(movies)
    line = RecordFormatter().format(now, user, status, latency, labels=labels, result=body)
    assert line.isascii()
    parsed = parse_request_line(line)
    assert isinstance(parsed, Request)
    assert (parsed.user, parsed.status, (parsed.variant, parsed.version, parsed.source)) == (
        user,
        status,
        labels,
    )
    assert parsed.movies == (tuple(movies) if status == 200 else ())
    assert math.isclose(parsed.latency_ms, latency * 1000, rel_tol=1e-6, abs_tol=1e-3)
    assert abs(parsed.time.timestamp() - now) < 1.5  # whole ms, naive UTC read as local time


def test_a_record_without_a_list_reads_back_with_no_labels() -> None:
    line = RecordFormatter().format(0.5, None, 400, 0.001, labels=None, result="")
    parsed = parse_request_line(line)
    assert isinstance(parsed, Request)
    assert parsed.user is None and parsed.status == 400 and parsed.movies == ()
    assert (parsed.variant, parsed.version, parsed.source) == (requestrecord.NO_LABEL,) * 3
    assert parse_request_line(line[:-2]) is Reason.BAD_JSON
