"""The job's configuration: one frozen dataclass tree, loaded from TOML and validated once.

Defaults live only in ``conf/default.toml``; the dataclasses declare names, types and bounds.
A user file (``--config``) and ``--set section.key=value`` overrides are merged over the
defaults, and every key is checked before Spark starts, so a typo fails in a second, not after
an hour of training.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
import typing
import zipfile
import zoneinfo
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from item2vec.errors import BadInput


def _rule(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False,
          choices: tuple[str, ...] | None = None) -> Any:
    return field(metadata={"lo": lo, "hi": hi, "lo_open": lo_open, "choices": choices})


@dataclass(frozen=True)
class InputConfig:
    format: str = _rule(choices=("auto", "parquet", "csv"))
    user_col: str = _rule()
    item_col: str = _rule()
    time_col: str = _rule()
    event_type_col: str = _rule()
    event_types: tuple[str, ...] = _rule()
    id_type: str = _rule(choices=("string", "long"))
    time_unit: str = _rule(choices=("s", "ms"))
    time_zone: str = _rule()
    lookback_days: int = _rule(0)
    partition_col: str = _rule()


@dataclass(frozen=True)
class SessionConfig:
    gap_minutes: float = _rule(0, lo_open=True)
    dedupe_consecutive: bool = _rule()
    min_length: int = _rule(1)
    max_length: int = _rule(2)
    long_policy: str = _rule(choices=("split", "truncate"))


@dataclass(frozen=True)
class VocabularyConfig:
    min_count: int = _rule(1)
    max_vocab: int = _rule(0)


@dataclass(frozen=True)
class CorpusConfig:
    subsample: float = _rule(0, 1)
    copies: int = _rule(0, 100)
    max_auto_copies: int = _rule(1, 100)
    mode: str = _rule(choices=("sequence", "basket"))
    min_sentence_length: int = _rule(2)


@dataclass(frozen=True)
class TrainConfig:
    vector_size: int = _rule(1, 4096)
    window: int = _rule(1, 1000)
    iterations: int = _rule(0, 1000)
    auto_tokens: int = _rule(1)
    max_auto_passes: int = _rule(1, 10000)
    step_size: float = _rule(0, 1, lo_open=True)
    num_partitions: int = _rule(0, 10000)
    tokens_per_partition: int = _rule(1)
    seed: int = _rule()
    max_sentence_length: int = _rule(2)


@dataclass(frozen=True)
class SimilarConfig:
    mode: str = _rule(choices=("hybrid", "embedding", "cooccurrence"))
    k: int = _rule(1, 10000)
    candidates: int = _rule(1, 10000)
    partners: int = _rule(1, 10000)
    window: int = _rule(1, 100)
    forward_window: int = _rule(1, 100)
    weights: tuple[float, ...] = _rule()
    forward_decay: int = _rule(1, 2)
    tune_weights: bool = _rule()
    validation_fraction: float = _rule(0, 0.5, lo_open=True)
    max_validation_pairs: int = _rule(100, 10_000_000)
    min_tuning_pairs: int = _rule(1)
    block_bytes: int = _rule(1 << 20)
    partitions: int = _rule(0)
    search: str = _rule(choices=("exact", "ivf", "hnsw"))
    ivf_nlist: int = _rule(0, 1 << 20)
    ivf_nprobe: int = _rule(1, 1 << 16)
    hnsw_m: int = _rule(4, 128)
    hnsw_ef_construction: int = _rule(8, 2048)
    hnsw_ef_search: int = _rule(8, 4096)


@dataclass(frozen=True)
class EvaluateConfig:
    enabled: bool = _rule()
    method: str = _rule(choices=("auto", "previous_run", "holdout"))
    test_fraction: float = _rule(0, 1, lo_open=True)
    ks: tuple[int, ...] = _rule()
    max_test_pairs: int = _rule(0)
    cooc_window: int = _rule(1, 100)
    cooc_alpha: float = _rule(0, 1)
    cooc_lambda: float = _rule(0)
    rules_window: int = _rule(1, 100)


@dataclass(frozen=True)
class GateConfig:
    min_lift_over_popularity: float = _rule(0)
    min_lift_over_cooc: float = _rule(0)
    min_hr: float = _rule(0, 1)
    max_drop_vs_previous: float = _rule(0, 1)
    history_runs: int = _rule(1, 1000)


@dataclass(frozen=True)
class OutputConfig:
    retention_days: int = _rule(0)
    lock_lease_minutes: float = _rule(0, 24 * 60, lo_open=True)


@dataclass(frozen=True)
class ReportConfig:
    enabled: bool = _rule()
    top_n: int = _rule(10)
    trend_runs: int = _rule(2)


@dataclass(frozen=True)
class SparkConfig:
    log_level: str = _rule(choices=("ALL", "DEBUG", "INFO", "WARN", "ERROR", "FATAL", "OFF"))
    shuffle_partitions: int = _rule(0)


@dataclass(frozen=True)
class SampleConfig:
    users: int = _rule(1)
    items: int = _rule(2)
    categories: int = _rule(1)
    sessions_per_user: float = _rule(1)
    session_length: float = _rule(1)
    zipf_exponent: float = _rule(0)
    noise: float = _rule(0, 1)
    drift: float = _rule(0, 1)
    transition: float = _rule(0, 1)
    tail_share: float = _rule(0, 0.9)
    days: int = _rule(1)
    seed: int = _rule()


@dataclass(frozen=True)
class Config:
    input: InputConfig
    session: SessionConfig
    vocabulary: VocabularyConfig
    corpus: CorpusConfig
    train: TrainConfig
    similar: SimilarConfig
    evaluate: EvaluateConfig
    gate: GateConfig
    output: OutputConfig
    report: ReportConfig
    spark: SparkConfig
    sample: SampleConfig

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Plain nested dict (tuples as lists): what the manifest records."""
        return {
            f.name: {k: list(v) if isinstance(v, tuple) else v
                     for k, v in dataclasses.asdict(getattr(self, f.name)).items()}
            for f in dataclasses.fields(self)
        }

    def replace(self, **sections: dict[str, Any]) -> Config:
        """A copy with some keys changed, e.g. ``cfg.replace(train={"window": 5})``; validated."""
        data = self.to_dict()
        for section, values in sections.items():
            _merge(data, {section: values}, origin="replace()")
        return from_dict(data)


_FORBIDDEN_INPUT_CHARS = ",;{}()\n\t="
# The evidences similar.weights weighs, in order (see item2vec/rank.py).
WEIGHT_NAMES = ("cooccurrence", "forward", "cosine")


def default_config_text() -> str:
    """Text of conf/default.toml, from the repository or from the zip shipped to the cluster."""
    here = Path(__file__).resolve().parent.parent
    candidate = here / "conf" / "default.toml"
    if candidate.is_file():
        return candidate.read_text(encoding="utf-8")
    if zipfile.is_zipfile(here):
        with zipfile.ZipFile(here) as zf:
            return zf.read("conf/default.toml").decode("utf-8")
    raise FileNotFoundError(f"conf/default.toml not found next to {here}")


def load(config_file: str | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Defaults, then ``config_file``, then ``--set`` overrides; validated. Raises BadInput."""
    data = _parse_toml(default_config_text(), "conf/default.toml")
    if config_file:
        path = Path(config_file)
        if not path.is_file():
            raise BadInput(f"--config {config_file}: file not found")
        _merge(data, _parse_toml(path.read_text(encoding="utf-8"), config_file), origin=config_file)
    for item in overrides:
        key, sep, raw = item.partition("=")
        section, dot, name = key.strip().partition(".")
        if not sep or not dot or not section or not name:
            raise BadInput(f"--set {item!r}: expected section.key=value")
        _merge(data, {section: {name: _parse_value(raw.strip())}}, origin=f"--set {key}")
    return from_dict(data)


def from_dict(data: dict[str, dict[str, Any]]) -> Config:
    """Build and validate a Config from a complete nested dict."""
    sections = {}
    hints = typing.get_type_hints(Config)
    for sec in dataclasses.fields(Config):
        cls = hints[sec.name]
        cls_hints = typing.get_type_hints(cls)
        values = data.get(sec.name)
        if not isinstance(values, dict):
            raise BadInput(f"config: missing section [{sec.name}]")
        kwargs = {}
        for f in dataclasses.fields(cls):
            if f.name not in values:
                raise BadInput(f"config: missing key {sec.name}.{f.name}")
            kwargs[f.name] = _check(f"{sec.name}.{f.name}", values[f.name], f, cls_hints[f.name])
        sections[sec.name] = cls(**kwargs)
    cfg = Config(**sections)
    _cross_checks(cfg)
    return cfg


def _parse_toml(text: str, origin: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BadInput(f"{origin}: invalid TOML: {exc}") from None


def _parse_value(raw: str) -> Any:
    """TOML literal if it parses (numbers, booleans, arrays, quoted strings), else a bare string."""
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _merge(base: dict[str, Any], extra: dict[str, Any], *, origin: str) -> None:
    for section, values in extra.items():
        if section not in base:
            raise BadInput(f"{origin}: unknown config section [{section}]; "
                           f"known: {', '.join(sorted(base))}")
        if not isinstance(values, dict):
            raise BadInput(f"{origin}: [{section}] must be a table")
        for key, value in values.items():
            if key not in base[section]:
                raise BadInput(f"{origin}: unknown config key {section}.{key}; "
                               f"known: {', '.join(sorted(base[section]))}")
            base[section][key] = value


def _check(key: str, value: Any, f: dataclasses.Field, tp: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin is tuple:
        inner = typing.get_args(tp)[0]
        if inner is float and isinstance(value, list | tuple):
            value = [float(v) if _is(v, int) else v for v in value]
        if not isinstance(value, list | tuple) or not all(_is(v, inner) for v in value):
            raise BadInput(f"config {key}: expected a list of {inner.__name__}, got {value!r}")
        return tuple(value)
    if tp is float and _is(value, int):
        value = float(value)
    if not _is(value, tp):
        raise BadInput(f"config {key}: expected {tp.__name__}, got {value!r}")
    meta = f.metadata
    lo, hi = meta.get("lo"), meta.get("hi")
    if lo is not None and (value < lo or (meta.get("lo_open") and value == lo)):
        op = ">" if meta.get("lo_open") else ">="
        raise BadInput(f"config {key}: expected a value {op} {lo}, got {value!r}")
    if hi is not None and value > hi:
        raise BadInput(f"config {key}: expected a value <= {hi}, got {value!r}")
    choices = meta.get("choices")
    if choices and value not in choices:
        raise BadInput(f"config {key}: expected one of {', '.join(choices)}, got {value!r}")
    return value


def _is(value: Any, tp: type) -> bool:
    if tp is bool:
        return isinstance(value, bool)
    if tp in (int, float):
        return isinstance(value, tp) and not isinstance(value, bool)
    return isinstance(value, tp)


def _cross_checks(cfg: Config) -> None:
    for key in ("user_col", "item_col", "time_col"):
        name = getattr(cfg.input, key)
        if not name.strip() or any(c in name for c in _FORBIDDEN_INPUT_CHARS):
            raise BadInput(f"config input.{key}: expected a column name, got {name!r}")
    part = cfg.input.partition_col
    if part and (part != part.strip() or any(c in part for c in _FORBIDDEN_INPUT_CHARS)):
        raise BadInput(f"config input.partition_col: expected a column name or \"\", got {part!r}")
    if not _known_time_zone(cfg.input.time_zone):
        raise BadInput(f"config input.time_zone: unknown time zone {cfg.input.time_zone!r}; "
                       f"expected an IANA name such as \"UTC\" or \"Europe/Berlin\", or an "
                       f"offset such as \"+01:00\"")
    if cfg.session.min_length > cfg.session.max_length:
        raise BadInput(f"config session.min_length ({cfg.session.min_length}) must be <= "
                       f"session.max_length ({cfg.session.max_length})")
    weights = cfg.similar.weights
    if len(weights) != len(WEIGHT_NAMES) or any(w < 0 for w in weights) or not sum(weights):
        raise BadInput(f"config similar.weights: expected {len(WEIGHT_NAMES)} weights >= 0 "
                       f"({', '.join(WEIGHT_NAMES)}), not all 0, got {list(weights)}")
    if cfg.similar.candidates < cfg.similar.k:
        raise BadInput(f"config similar.candidates ({cfg.similar.candidates}) must be >= "
                       f"similar.k ({cfg.similar.k})")
    if not cfg.evaluate.ks or any(k < 1 for k in cfg.evaluate.ks):
        raise BadInput(f"config evaluate.ks: expected positive cut-offs, "
                       f"got {list(cfg.evaluate.ks)}")


def _known_time_zone(name: str) -> bool:
    """An IANA zone name, UTC/Z or a fixed offset: what the reader appends to zone-less times."""
    if name in ("UTC", "Z") or re.fullmatch(r"(?:UTC|GMT)?[+-]\d{2}:\d{2}", name):
        return True
    try:
        zoneinfo.ZoneInfo(name)
        return True
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        # No zone database on this machine: leave the check to Spark (Java has its own).
        return not zoneinfo.available_timezones()


def reference_markdown(text: str | None = None) -> str:
    """docs/config.md, generated from conf/default.toml's comments (kept in sync by a test)."""
    text = default_config_text() if text is None else text
    lines = ["# Configuration reference", "",
             "Generated from `conf/default.toml` by `python -m item2vec.config > docs/config.md`;",
             "a test keeps the two in sync. Override any key with `--config FILE.toml` or",
             "`--set section.key=value`.", ""]
    section, notes = "", []
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            lines += ["", f"## [{section}]", "", "| key | default | meaning |",
                      "| --- | --- | --- |"]
            notes = []
        elif line.startswith("#"):
            notes.append(line.lstrip("#").strip())
        elif "=" in line and section:
            key, _, value = line.partition("=")
            meaning = " ".join(notes).replace("|", "\\|")
            lines.append(f"| `{key.strip()}` | `{value.strip()}` | {meaning} |")
            notes = []
        elif not line:
            notes = [] if not section else notes
    return "\n".join(lines).replace("\n\n\n", "\n\n") + "\n"


if __name__ == "__main__":
    print(reference_markdown(), end="")
