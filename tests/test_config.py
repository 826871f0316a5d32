import pytest

from item2vec import config
from item2vec.errors import BadInput


def test_defaults_load_and_round_trip():
    cfg = config.load()
    assert cfg.session.gap_minutes == 30
    assert cfg.similar.k >= 10
    assert config.from_dict(cfg.to_dict()) == cfg


def test_overrides_parse_toml_literals_and_lists():
    cfg = config.load(overrides=["train.window=7", 'input.event_types=["view", "cart"]',
                                 "corpus.subsample=0", "session.long_policy=truncate"])
    assert cfg.train.window == 7
    assert cfg.input.event_types == ("view", "cart")
    assert cfg.corpus.subsample == 0.0 and isinstance(cfg.corpus.subsample, float)
    assert cfg.session.long_policy == "truncate"


def test_config_file_merges_over_defaults(tmp_path):
    f = tmp_path / "my.toml"
    f.write_text("[train]\nvector_size = 8\n[similar]\nk = 12\n")
    cfg = config.load(str(f), ["similar.k=15"])
    assert (cfg.train.vector_size, cfg.similar.k, cfg.train.window) == (8, 15, 5)


@pytest.mark.parametrize(("override", "message"), [
    ("train.windw=3", "unknown config key train.windw"),
    ("nosuch.key=1", "unknown config section [nosuch]"),
    ("train.window=0", "train.window: expected a value >= 1"),
    ("similar.k=0", "similar.k: expected a value >= 1"),
    ("train.vector_size=0", "train.vector_size: expected a value >= 1"),
    ("vocabulary.min_count=0", "vocabulary.min_count: expected a value >= 1"),
    ("session.gap_minutes=0", "session.gap_minutes: expected a value > 0"),
    ("train.window=2.5", "train.window: expected int"),
    ("evaluate.enabled=1", "evaluate.enabled: expected bool"),
    ("corpus.mode=bag", "corpus.mode: expected one of sequence, basket"),
    ("input.event_types=view", "input.event_types: expected a list of str"),
    ("session.min_length=300", "session.min_length (300) must be <= session.max_length"),
    ("similar.mode=mixed", "similar.mode: expected one of hybrid, embedding, cooccurrence"),
    ("similar.weights=[1, 1]", "similar.weights: expected 3 weights >= 0"),
    ("similar.weights=[0, 0, 0]", "similar.weights: expected 3 weights >= 0"),
    ("similar.weights=[1, -1, 0]", "similar.weights: expected 3 weights >= 0"),
    ("similar.candidates=5", "similar.candidates (5) must be >= similar.k (20)"),
    ("evaluate.method=yesterday", "evaluate.method: expected one of auto, previous_run, holdout"),
    ("gate.max_drop_vs_previous=1.5", "gate.max_drop_vs_previous: expected a value <= 1"),
    ("novalue", "expected section.key=value"),
])
def test_bad_values_are_rejected_with_the_key_named(override, message):
    with pytest.raises(BadInput, match=None) as err:
        config.load(overrides=[override])
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_bad_toml_file_is_bad_input(tmp_path):
    f = tmp_path / "broken.toml"
    f.write_text("[train\nwindow = 3")
    with pytest.raises(BadInput, match="invalid TOML"):
        config.load(str(f))


def test_config_reference_doc_is_in_sync():
    from pathlib import Path

    doc = Path(__file__).resolve().parents[1] / "docs" / "config.md"
    assert doc.read_text() == config.reference_markdown(), \
        "regenerate: python -m item2vec.config > docs/config.md"
    assert "| `min_count` | `5` |" in doc.read_text()
