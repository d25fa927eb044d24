"""Every variable every process reads: declared as a settings field (``contracts.env.var``)
and read through ``read_var``, documented in its module's docstring table and in the README,
refused (not clamped) when bad or out of range; the shared ones (``contracts.locations``)
defined there and nowhere else. Plus properties of the parsers in ``contracts/env.py`` for
any input, and of the declarations (``FromEnv``)."""

from __future__ import annotations

import ast
import importlib.util
import math
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import given
from hypothesis import strategies as st

import experiments.settings
import ingest.drift
import ingest.settings
import online.settings
import precompute.settings
import refresher.settings
import service.settings
import training.settings
from contracts import env as envvars
from contracts import locations
from contracts.env import SettingsError, read_var

ROOT = Path(__file__).resolve().parents[2]
DAGS = ROOT / "dags"


class Recording(Mapping[str, str]):
    """A mapping that remembers every name asked for: what a ``from_env`` reads."""

    def __init__(self, values: Mapping[str, str] | None = None):
        self.values = dict(values or {})
        self.asked: set[str] = set()

    def __getitem__(self, name: str) -> str:
        self.asked.add(name)
        return self.values[name]

    def __contains__(self, name: object) -> bool:
        self.asked.add(str(name))
        return name in self.values

    def __iter__(self) -> Iterator[str]:
        return iter(self.values)

    def __len__(self) -> int:
        return len(self.values)


# Each settings class with the modules whose docstring tables document what it reads.
SETTINGS: dict[str, tuple[type, tuple[ModuleType, ...]]] = {
    "ingest": (ingest.settings.Settings, (ingest.settings, ingest.drift)),
    "training": (training.settings.Settings, (training.settings,)),
    "precompute": (precompute.settings.Settings, (precompute.settings,)),
    "online": (online.settings.Settings, (online.settings,)),
    "experiments": (experiments.settings.Settings, (experiments.settings,)),
    "service": (service.settings.Settings, (service.settings,)),
    "refresher": (refresher.settings.Settings, (refresher.settings, precompute.settings)),
}
# The DAG files read at parse time (so they cannot be called with a mapping); every name they
# read is in recsys_defaults.py's table.
DAG_FILES = (DAGS / "recsys_defaults.py", DAGS / "recsys_online.py")
DAG_DOC = DAGS / "recsys_defaults.py"


def reads(cls: type) -> set[str]:
    """The names ``from_env`` asks a mapping for."""
    recording = Recording()
    cls.from_env(recording)
    return recording.asked


# What each settings class declares it reads (its fields' metadata).
READS = {package: set(cls.variables()) for package, (cls, _) in SETTINGS.items()}
_VARIABLE = r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+"


def read_var_names(path: Path) -> set[str]:
    """Names passed as string literals to ``read_var`` in ``path``."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and len(node.args) >= 2:
            func = node.func
            called = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            name = node.args[1]
            if called == "read_var" and isinstance(name, ast.Constant):
                names.add(name.value)
    return names


DAG_READS = set().union(*(read_var_names(path) for path in DAG_FILES))
EVERY_READ = set().union(DAG_READS, *READS.values())


def table_names(doc: str) -> set[str]:
    """The variables of a docstring's table: the first cell of ``| NAME | ... |`` rows, or the
    first word of an indented ``NAME   default   meaning`` row."""
    names = set()
    for line in doc.splitlines():
        if line.strip().startswith("|"):
            first = line.strip().strip("|").split("|")[0].strip()
        elif match := re.match(rf"\s{{4}}({_VARIABLE})\s{{2,}}\S", line):
            first = match.group(1)
        else:
            continue
        if re.fullmatch(_VARIABLE, first):
            names.add(first)
    return names


def readme_names() -> set[str]:
    """The variables named in the first column of the README's table of variables."""
    lines = (ROOT / "README.md").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| variable | default |"))
    names = set()
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        first = line.strip("|").split("|")[0]
        names.update(re.findall(rf"`({_VARIABLE})`", first))
    return names


def module_doc(path: Path) -> str:
    return ast.get_docstring(ast.parse(path.read_text())) or ""


# --- (a) every variable read is documented, and everything documented is read --------------


@pytest.mark.parametrize("package", sorted(SETTINGS))
def test_from_env_reads_exactly_the_declared_variables(package: str) -> None:
    """What ``from_env`` asks a mapping for is what its fields declare, each once; no settings
    module reads a variable by hand (a literal ``read_var(env, "NAME", ...)``)."""
    cls, modules = SETTINGS[package]
    assert reads(cls) == READS[package]
    assert len(cls.variables()) == len(READS[package]), "a variable declared twice"
    for module in modules:
        assert read_var_names(Path(module.__file__)) == set(), module.__name__


def test_the_dag_files_read_their_variables_by_name() -> None:
    """The DAG files read at parse time, by hand: the names passed to ``read_var`` there."""
    assert len(EVERY_READ) > 80
    dag_variables = {
        "RECSYS_RETRAIN_SCHEDULE",
        "RECSYS_MAINTENANCE_SCHEDULE",
        "RECSYS_TASK_RETRIES",
        "RECSYS_RETRY_DELAY_SECONDS",
        "ONLINE_SCHEDULE",
    }
    assert dag_variables == DAG_READS


@pytest.mark.parametrize("package", sorted(SETTINGS))
def test_every_variable_read_is_in_the_module_table_and_the_readme(package: str) -> None:
    _, modules = SETTINGS[package]
    documented = set().union(*(table_names(module.__doc__ or "") for module in modules))
    assert READS[package] - documented == set(), f"{package}: not in its docstring table"
    assert READS[package] - readme_names() == set(), f"{package}: not in the README table"


def test_every_dag_variable_is_in_the_dag_table_and_the_readme() -> None:
    assert DAG_READS - table_names(module_doc(DAG_DOC)) == set()
    assert DAG_READS - readme_names() == set()


def test_nothing_documented_is_read_by_nothing() -> None:
    assert readme_names() - EVERY_READ == set(), "README lists variables nothing reads"
    for _, modules in SETTINGS.values():
        for module in modules:
            assert table_names(module.__doc__ or "") - EVERY_READ == set(), module.__name__
    assert table_names(module_doc(DAG_DOC)) - EVERY_READ == set()


def test_settings_modules_read_the_environment_only_through_read_var() -> None:
    paths = [Path(module.__file__) for _, modules in SETTINGS.values() for module in modules]
    for path in [*paths, *DAG_FILES, ROOT / "contracts" / "locations.py"]:
        tree = ast.parse(path.read_text())
        direct = [
            node.lineno
            for node in ast.walk(tree)
            if (isinstance(node, ast.Attribute) and node.attr in {"environ", "getenv"})
            or (isinstance(node, ast.ImportFrom) and node.module == "os")
        ]
        assert direct == [], f"{path.relative_to(ROOT)} reads os.environ itself: lines {direct}"


@pytest.mark.parametrize("package", sorted(SETTINGS))
def test_from_env_with_a_mapping_reads_nothing_else(
    package: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Given a mapping, ``from_env`` never looks at os.environ: garbage there changes nothing."""
    cls, _ = SETTINGS[package]
    for name in READS[package]:
        monkeypatch.setenv(name, "garbage!")
    monkeypatch.chdir(ROOT)  # the default data directory is relative to it
    assert cls.from_env({}) == cls.from_env(Recording({name: " " for name in READS[package]}))


# --- (b) a bad value is refused, naming the variable ---------------------------------------

# Integer variables and the least value each accepts (one less is refused, not clamped).
INTEGERS = {
    "KAFKA_SESSION_TIMEOUT_MS": 1,
    "REFRESH_SESSION_TIMEOUT_MS": 1,
    "REFRESH_BATCH_USERS": 1,
    "REFRESH_MIN_HISTORY": 1,
    "REFRESH_METRICS_PORT": 0,
    "INGEST_BATCH_SIZE": 1,
    "INGEST_METRICS_PORT": 0,
    "SNAPSHOT_KEEP": 1,
    "DRIFT_MIN_EVENTS": 0,
    "DRIFT_MIN_RATINGS": 0,
    "DRIFT_MIN_SAMPLE": 0,
    "TRAINING_SEED": 0,
    "SVD_FACTORS": 1,
    "SVD_EPOCHS": 1,
    "NEURAL_HIDDEN": 1,
    "NEURAL_EPOCHS": 1,
    "NEURAL_BATCH": 0,
    "NEURAL_TRAIN_USERS": 0,
    "EASE_RANK": 1,
    "PURESVD_FACTORS": 1,
    "IALS_FACTORS": 1,
    "IALS_ITERATIONS": 1,
    "EVAL_K": 1,
    "EVAL_MIN_INTERACTIONS": 1,
    "PRECOMPUTE_BLOCK_SIZE": 1,
    "PRECOMPUTE_THREADS": 1,
    "PRECOMPUTE_SHARDS": 1,
    "PUBLISH_BATCH": 1,
    "PUBLISH_VERIFY_SAMPLE": 1,
    "KEEP_VERSIONS": 2,
    "RULE_MAX_PER_YEAR": 0,
    "RULE_MAX_PER_PREFIX": 0,
    "RULE_PREFIX_WORDS": 1,
    "RULE_POOL": 20,
    "VERIFY_SAMPLE": 1,
    "REDIS_TIMEOUT_MS": 1,
    "REDIS_BREAKER_FAILURES": 1,
    "WEB_CONCURRENCY": 1,
    "GUNICORN_THREADS": 1,
    "REQUEST_LOG_QUEUE_SIZE": 1,
    "EXPERIMENT_LOOKS": 1,
    "EXPERIMENT_BOOTSTRAP": 1,
    "EXPERIMENT_SEED": 0,
    "BANDIT_DRAWS": 1,
}
# Number variables: a value accepted, and values out of range.
NUMBERS = {
    "INGEST_BATCH_SECONDS": ("0.5", ["0", "-1"]),
    "REFRESH_BATCH_SECONDS": ("0.5", ["0", "-1"]),
    "DRIFT_MIN_HOURS": ("0", ["-1"]),
    "DRIFT_VOLUME_FACTOR": ("1", ["0.99", "0"]),
    "DRIFT_RATING_MEAN": ("0", ["-0.1"]),
    "DRIFT_RATING_HISTOGRAM": ("0.5", ["-1"]),
    "DRIFT_NEW_USERS": ("0.5", ["-0.25"]),
    "DRIFT_NEW_MOVIES": ("0.5", ["-0.25"]),
    "DRIFT_WATCH_FACTOR": ("1.0", ["0.5"]),
    "DRIFT_REJECTED_RISE": ("0", ["-0.05"]),
    "NEURAL_LR": ("0.01", ["0", "-0.001"]),
    "NEURAL_DROPOUT": ("0", ["1", "-0.1"]),
    "NEURAL_WEIGHT_DECAY": ("0", ["-1e-6"]),
    "NEURAL_RECENCY_TAU": ("0.5", ["0", "-1"]),
    "NEURAL_RECENCY_FLOOR": ("0", ["1", "-0.1"]),
    "EASE_LAMBDA": ("0.5", ["0", "-1"]),
    "EASE_POP_EXPONENT": ("-0.2", []),  # any finite number
    "EASE_RECENCY_TAU": ("0.5", ["0", "-1"]),
    "EASE_RECENCY_FLOOR": ("0", ["1", "-0.1"]),
    "PURESVD_POP_NORM": ("-0.2", []),  # any finite number
    "PURESVD_RECENCY_TAU": ("0.5", ["0", "-1"]),
    "PURESVD_RECENCY_FLOOR": ("0", ["1", "-0.1"]),
    "IALS_REGULARIZATION": ("0", ["-0.1"]),
    "IALS_ALPHA": ("0", ["-0.1"]),
    "IALS_RECENCY_TAU": ("0.5", ["0", "-1"]),
    "IALS_RECENCY_FLOOR": ("0", ["1", "-0.1"]),
    "EVAL_TEST_SHARE": ("0.5", ["0", "1"]),
    "GATE_TOLERANCE": ("0", ["-0.01"]),
    "GATE_MIN_LIFT": ("-0.5", ["-1.5"]),
    "ROLLBACK_GRACE_SECONDS": ("0", ["-0.5"]),
    "REDIS_BREAKER_SECONDS": ("0", ["-1"]),
    "VERSION_REFRESH_SECONDS": ("0", ["-1"]),
    "ONLINE_WINDOW_HOURS": ("0.5", ["0", "-1"]),
    "ONLINE_DEDUP_SECONDS": ("0", ["-1"]),
    "EXPERIMENT_ALPHA": ("0.1", ["0", "1"]),
    "EXPERIMENT_POWER": ("0.9", ["0", "1"]),
    "EXPERIMENT_MDE": ("0.5", ["0", "1.5"]),
    "BANDIT_FLOOR": ("0", ["1", "-0.1"]),
}
# Other variables with a shape: a value accepted, and one refused.
SHAPED = {
    "KAFKA_BOOTSTRAP": ("k1:9092, k2:9093", "kafka"),
    "REDIS_URL": ("redis://10.0.0.5:6380/2", "localhost:6379"),
    "REDIS_MODE": ("cluster", "replica"),  # sentinel alone is refused: it needs REDIS_SENTINELS
    "REDIS_CLUSTER_NODES": ("r0:6379, r1:6379", "r0"),
    "REDIS_SENTINELS": ("s0:26379,s1:26379", "s0:"),
    "REQUEST_LOG_KAFKA_BOOTSTRAP": ("k1:9092", "kafka:"),
    "RATING_SCALE": ("1-10", "5-1"),
    "ONLINE_STREAM_RECOMMENDATIONS": ("no", "2"),
    "ONLINE_STREAM_SPLIT": ("control=90, treatment=10", "control"),
    "REQUEST_LOG_PATH": ("/logs/a.log, /logs/b-*.log", ","),
    "SERVICE_URL": ("http://127.0.0.1:8082", "127.0.0.1:8082"),
    "EXPERIMENT_REPORT_BUCKET": ("6h", "W"),
    "REQUEST_LOG": ("off", "stderr"),
    "SERVICE_BIND": ("0.0.0.0:8082", "8082"),
    "NEURAL_VALUE": ("rating", "stars"),
    "NEURAL_RECENCY": ("none", "latest"),
    "EASE_VALUE": ("binary", "stars"),
    "EASE_RECENCY": ("time", "latest"),
    "PURESVD_VALUE": ("binary", "stars"),
    "PURESVD_RECENCY": ("rank", "latest"),
    "IALS_VALUE": ("rating", "stars"),
    "IALS_RECENCY": ("relrank", "latest"),
    "PRECOMPUTE_DEVICE": ("cpu", "gpu"),
}
# Free text: any value is used as given.
TEXT = {
    "RECSYS_DATA_DIR",
    "SNAPSHOT_URI",
    "KAFKA_TOPIC",
    "KAFKA_GROUP",
    "REFRESH_KAFKA_GROUP",
    "NEURAL_DEVICE",  # torch judges it when the neural model trains, not SVD's settings
    "TUNED_PARAMS",  # a path, read when a model is built
    "REQUEST_LOG_KAFKA_TOPIC",
    "ONLINE_REFERENCE_LIST",
    "PUSHGATEWAY_URL",
    "ONLINE_PUSH_JOB",
    "FALLBACK_PATH",
    "REDIS_SENTINEL_MASTER",
    "PROMETHEUS_MULTIPROC_DIR",
}
NOT_A_NUMBER = ["abc", "nan", "inf", "-inf", "1e400", "1,5"]
NOT_AN_INTEGER = [*NOT_A_NUMBER, "1.5", "2.0", "1e3", "1_000", "0x10"]


def test_every_variable_has_a_kind_here() -> None:
    """A new variable must be added to one of the tables above (so its bad values are tried)."""
    kinds = [set(INTEGERS), set(NUMBERS), set(SHAPED), TEXT]
    assert sum(len(kind) for kind in kinds) == len(set().union(*kinds))  # no name twice
    assert set().union(*READS.values()) == set().union(*kinds)


def cases() -> Iterator[tuple[str, str, list[str], str | None]]:
    """(package, variable, refused values, an accepted value) for every read variable."""
    for package, names in sorted(READS.items()):
        for name in sorted(names):
            if name in INTEGERS:
                least = INTEGERS[name]
                refused = [*NOT_AN_INTEGER, str(least - 1)]
                if name == "INGEST_METRICS_PORT":
                    refused.append("65536")
                yield package, name, refused, str(least)
            elif name in NUMBERS:
                accepted, out_of_range = NUMBERS[name]
                yield package, name, [*NOT_A_NUMBER, *out_of_range], accepted
            elif name in SHAPED:
                accepted, refused_value = SHAPED[name]
                yield package, name, [refused_value], accepted


@pytest.mark.parametrize(
    ("package", "name", "refused", "accepted"),
    list(cases()),
    ids=[f"{package}-{name}" for package, name, _, _ in cases()],
)
def test_a_bad_value_is_refused_naming_the_variable(
    package: str, name: str, refused: list[str], accepted: str
) -> None:
    cls, _ = SETTINGS[package]
    default = cls.from_env({})
    for value in refused:
        with pytest.raises(SettingsError, match=re.escape(name)):
            cls.from_env({name: value})
    cls.from_env({name: f" {accepted} "})  # the least value allowed, or another good one
    assert cls.from_env({name: ""}) == default  # blank: the default


def test_boundary_values_are_accepted_as_given_not_moved() -> None:
    """KEEP_VERSIONS=2 and ROLLBACK_GRACE_SECONDS=0 are kept; 1 and -1 were once clamped."""
    settings = precompute.settings.Settings.from_env(
        {"KEEP_VERSIONS": "3", "ROLLBACK_GRACE_SECONDS": "0", "RULE_MAX_PER_YEAR": "0"}
    )
    assert (settings.keep_versions, settings.rollback_grace_seconds) == (3, 0.0)
    for name, value in [("KEEP_VERSIONS", "1"), ("ROLLBACK_GRACE_SECONDS", "-1")]:
        with pytest.raises(SettingsError, match=name):
            precompute.settings.Settings.from_env({name: value})
    for name in ("RULE_MAX_PER_YEAR", "RULE_MAX_PER_PREFIX"):
        with pytest.raises(SettingsError, match=name):
            precompute.settings.Settings.from_env({name: "-1"})


def test_precompute_fields_are_named_after_their_variables() -> None:
    settings = precompute.settings.Settings.from_env(
        {"PUBLISH_VERIFY_SAMPLE": "7", "VERIFY_SAMPLE": "9"}
    )
    assert (settings.publish_verify_sample, settings.verify_sample) == (7, 9)


def test_ingest_reads_the_shared_locations() -> None:
    env = {
        "RECSYS_DATA_DIR": "/data",
        "KAFKA_BOOTSTRAP": "k1:9092",
        "KAFKA_TOPIC": "movielog17",
        "SNAPSHOT_URI": "s3://bucket/snapshots",
    }
    settings = ingest.settings.Settings.from_env(env)
    assert (settings.data_dir, settings.bootstrap, settings.topic) == (
        Path("/data"),
        "k1:9092",
        "movielog17",
    )
    assert settings.snapshots == "s3://bucket/snapshots"
    assert ingest.settings.Settings.from_env({"RECSYS_DATA_DIR": "/data"}).snapshots == Path(
        "/data"
    )


@dataclass(frozen=True)
class Example(envvars.FromEnv):
    """A settings class declared like the real ones: a required field, an own variable, one
    whose default in code differs, a shared one, and nested settings."""

    root: Path = locations.data_dir_var("example").field(required=True)  # noqa: RUF009
    count: int = envvars.var("EXAMPLE_COUNT", envvars.positive_int, 3)
    port: int = envvars.var("EXAMPLE_PORT", envvars.port, 9000, in_code=0)
    topic: str = locations.KAFKA_TOPIC.field()
    note: str = "not a variable"
    drift: ingest.drift.DriftBounds = envvars.nested(ingest.drift.DriftBounds)  # noqa: RUF009


def test_declared_fields_give_from_env_its_variables_and_defaults(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    variables = Example.variables()
    assert variables[:4] == ("RECSYS_DATA_DIR", "EXAMPLE_COUNT", "EXAMPLE_PORT", "KAFKA_TOPIC")
    assert set(variables[4:]) == set(ingest.drift.DriftBounds.variables())
    assert reads(Example) == set(variables)
    with pytest.raises(TypeError):
        Example()  # a required field has no default in code
    in_code = Example(root=tmp_path)
    assert (in_code.count, in_code.port, in_code.topic) == (3, 0, locations.DEFAULT_TOPIC)
    monkeypatch.chdir(tmp_path)  # the data directory's default resolves when read
    assert Example.from_env({}) == Example(root=tmp_path / "var" / "example", port=9000)
    env = {"RECSYS_DATA_DIR": "/d", "EXAMPLE_COUNT": " 5 ", "DRIFT_MIN_HOURS": "1"}
    read = Example.from_env(env)
    assert (read.root, read.count, read.drift.min_hours) == (Path("/d/example"), 5, 1.0)
    assert read.note == "not a variable"
    for name, value in [("EXAMPLE_COUNT", "0"), ("DRIFT_WATCH_FACTOR", "0.5")]:
        with pytest.raises(SettingsError, match=name):
            Example.from_env({name: value})
    # The real ones: defaults in code that differ from the variable's default.
    assert ingest.settings.Settings(data_dir=tmp_path).metrics_port == 0
    assert ingest.settings.Settings.from_env({}).metrics_port == 9108
    assert precompute.settings.Settings(data_dir=tmp_path).threads == 1


def load_dag_defaults(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> ModuleType:
    """A fresh ``dags/recsys_defaults.py`` parsed under ``env`` (as the DAG processor does)."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    spec = importlib.util.spec_from_file_location("recsys_defaults_under_test", DAG_DOC)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_dag_defaults_are_parsed_and_refused_like_the_rest(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in DAG_READS:
        monkeypatch.delenv(name, raising=False)
    module = load_dag_defaults(monkeypatch, {})
    assert (module.RETRAIN_SCHEDULE, module.MAINTENANCE_SCHEDULE) == ("@daily", "@daily")
    assert module.DEFAULT_ARGS["retries"] == 2
    assert module.DEFAULT_ARGS["retry_delay"].total_seconds() == 120
    module = load_dag_defaults(
        monkeypatch, {"RECSYS_TASK_RETRIES": "0", "RECSYS_RETRAIN_SCHEDULE": " 0 3 * * * "}
    )
    assert (module.DEFAULT_ARGS["retries"], module.RETRAIN_SCHEDULE) == (0, "0 3 * * *")
    for name in ("RECSYS_TASK_RETRIES", "RECSYS_RETRY_DELAY_SECONDS"):
        for value in ["-1", "1.5", "two"]:
            with pytest.raises(SettingsError, match=name):
                load_dag_defaults(monkeypatch, {name: value})
        monkeypatch.delenv(name)


# --- (c) the shared defaults are defined in contracts/locations.py only --------------------

SHARED_LITERALS = ("redis://127.0.0.1:6379/0", "movielog", "127.0.0.1:9092", "recsys-requests")
SKIPPED_DIRS = {"tests", "tests_e2e", "var", "node_modules", "__pycache__"}


def non_test_sources() -> list[Path]:
    """Every .py file outside the tests, virtual environments and data directories."""
    sources = []
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in SKIPPED_DIRS]
        sources += [
            Path(folder) / name
            for name in files
            if name.endswith(".py") and not name.startswith("test_") and name != "conftest.py"
        ]
    return sorted(sources)


def code_strings(path: Path) -> Iterator[tuple[int, str]]:
    """Every string literal of ``path`` but docstrings (which document defaults), with line."""
    tree = ast.parse(path.read_text())
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            first = node.body[0] if node.body else None
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docstrings.add(id(first.value))
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings
        ):
            yield node.lineno, node.value


def test_only_contracts_locations_defines_the_shared_defaults() -> None:
    assert SHARED_LITERALS == (
        locations.DEFAULT_REDIS_URL,
        locations.DEFAULT_TOPIC,
        locations.DEFAULT_KAFKA_BOOTSTRAP,
        locations.DEFAULT_REQUEST_LOG_TOPIC,
    )
    sources = non_test_sources()
    assert len(sources) > 100 and ROOT / "contracts" / "locations.py" in sources
    found = [
        f"{path.relative_to(ROOT)}:{line} {literal!r}"
        for path in sources
        for line, text in code_strings(path)
        for literal in SHARED_LITERALS
        if literal in text
    ]
    assert sorted({entry.split(":")[0] for entry in found}) == ["contracts/locations.py"], found


# --- properties of the parsers ------------------------------------------------------------

DECIMAL = re.compile(r"[+-]?[0-9]+")


@given(st.integers())
def test_positive_int_accepts_exactly_the_integers_from_one(n: int) -> None:
    for text in (str(n), f"+{n}" if n >= 0 else str(n), f"0{n}" if n >= 0 else str(n)):
        if n >= 1:
            assert envvars.positive_int(text) == n
        else:
            with pytest.raises(ValueError, match="integer"):
                envvars.positive_int(text)


@given(st.text(max_size=12))
def test_the_integer_parsers_accept_only_decimal_digits(raw: str) -> None:
    for parse, least in [
        (envvars.integer, -math.inf),
        (envvars.positive_int, 1),
        (envvars.non_negative_int, 0),
        (envvars.at_least(2), 2),
    ]:
        expected = int(raw) if DECIMAL.fullmatch(raw) and int(raw) >= least else None
        try:
            assert parse(raw) == expected
        except ValueError:
            assert expected is None


@given(st.integers(), st.integers(min_value=-1000, max_value=1000))
def test_at_least_refuses_exactly_the_values_below_its_bound(n: int, low: int) -> None:
    if n >= low:
        assert envvars.at_least(low)(str(n)) == n
    else:
        with pytest.raises(ValueError, match=f">= {low}"):
            envvars.at_least(low)(str(n))


@given(st.integers(min_value=-100_000, max_value=100_000))
def test_port_accepts_exactly_0_to_65535(n: int) -> None:
    if 0 <= n <= 65_535:
        assert envvars.port(str(n)) == n
    else:
        with pytest.raises(ValueError):
            envvars.port(str(n))


FLOAT_PARSERS = [
    (envvars.number, lambda x: True),
    (envvars.non_negative_float, lambda x: x >= 0),
    (envvars.positive_float, lambda x: x > 0),
    (envvars.fraction, lambda x: 0 < x < 1),
    (envvars.share, lambda x: 0 <= x < 1),
    (envvars.float_at_least(1.0), lambda x: x >= 1),
    (envvars.float_at_least(-1.0), lambda x: x >= -1),
]


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_the_number_parsers_accept_exactly_finite_numbers_in_range(x: float) -> None:
    for parse, in_range in FLOAT_PARSERS:
        if math.isfinite(x) and in_range(x):
            assert parse(repr(x)) == x
        else:
            with pytest.raises(ValueError):
                parse(repr(x))


@given(st.text(max_size=12))
def test_a_number_parser_never_returns_nan_or_infinity(raw: str) -> None:
    for parse, in_range in FLOAT_PARSERS:
        try:
            value = parse(raw)
        except ValueError:
            continue
        assert math.isfinite(value) and in_range(value)


@given(st.text(alphabet=" \t\r\n\x0b\x0c\u00a0\u2003", max_size=8), st.integers())
def test_read_var_treats_blank_as_unset(blank: str, default: int) -> None:
    def never(_: str) -> int:
        raise AssertionError("a blank value must not be parsed")

    assert read_var({"X_VAR": blank}, "X_VAR", never, default) == default
    assert read_var({}, "X_VAR", never, default) == default


@given(st.integers(min_value=1), st.text(alphabet=" \t", max_size=3))
def test_read_var_strips_the_value_before_parsing(n: int, pad: str) -> None:
    assert read_var({"X_VAR": f"{pad}{n}{pad}"}, "X_VAR", envvars.positive_int, 0) == n


@given(st.text(min_size=1, max_size=12).filter(str.strip))
def test_read_var_names_the_variable_and_the_value_it_refuses(raw: str) -> None:
    def refuse(_: str) -> int:
        raise ValueError("no")

    with pytest.raises(SettingsError) as error:
        read_var({"SOME_VAR": raw}, "SOME_VAR", refuse, 0)
    assert str(error.value) == f"SOME_VAR={raw.strip()!r}: no"
    assert isinstance(error.value, ValueError)


TRUE, FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


@given(st.text(max_size=6))
def test_flag_accepts_exactly_its_words_in_any_case(raw: str) -> None:
    if raw.lower() in TRUE + FALSE:
        assert envvars.flag(raw) is (raw.lower() in TRUE)
    else:
        with pytest.raises(ValueError):
            envvars.flag(raw)


@given(st.lists(st.text(min_size=1, max_size=5), min_size=1, max_size=4, unique=True), st.text())
def test_choice_accepts_exactly_its_options(options: list[str], raw: str) -> None:
    parse = envvars.choice(*options)
    for option in options:
        assert parse(option) == option
    if raw not in options:
        with pytest.raises(ValueError):
            parse(raw)


ITEM = st.from_regex(r"[a-z0-9/*.-]([a-z0-9/*. -]*[a-z0-9/*.-])?", fullmatch=True)


@given(st.lists(ITEM, min_size=1, max_size=5), st.sampled_from([",", ", ", " ,", ",,"]))
def test_comma_list_splits_strips_and_drops_empty_items(items: list[str], sep: str) -> None:
    assert envvars.comma_list(sep.join(items)) == tuple(items)
    with pytest.raises(ValueError):
        envvars.comma_list(sep)


HOST = st.from_regex(r"[a-z0-9][a-z0-9.-]{0,15}", fullmatch=True)
PORT = st.integers(min_value=1, max_value=65_535)


@given(st.lists(st.tuples(HOST, PORT), min_size=1, max_size=3))
def test_bootstrap_servers_accepts_host_port_lists(servers: list[tuple[str, int]]) -> None:
    joined = ",".join(f"{host}:{port}" for host, port in servers)
    assert envvars.bootstrap_servers(joined.replace(",", " , ")) == joined
    for bad in (joined.replace(":", "/"), joined + ",", ":9092"):
        with pytest.raises(ValueError):
            envvars.bootstrap_servers(bad)


@given(HOST, PORT, st.sampled_from(["http", "https", "redis", "ftp", ""]))
def test_url_parsers_check_the_scheme(host: str, port: int, scheme: str) -> None:
    url = f"{scheme}://{host}:{port}/0"
    if scheme in ("http", "https"):
        assert envvars.http_url(url) == url
    else:
        with pytest.raises(ValueError):
            envvars.http_url(url)
    if scheme == "redis":
        assert envvars.redis_url(url) == url
    else:
        with pytest.raises(ValueError):
            envvars.redis_url(url)
    with pytest.raises(ValueError):
        envvars.http_url(f"{scheme}:///path")
