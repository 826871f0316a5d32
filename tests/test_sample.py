"""The synthetic log must be reproducible, well-typed and carry structure item2vec can find."""

from __future__ import annotations

import datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pytest

from item2vec.sample import generate, write_parquet

END = datetime.datetime(2024, 6, 1, tzinfo=datetime.UTC)
PARAMS = {
    "users": 1_000,
    "items": 1_000,
    "categories": 10,
    "sessions_per_user": 5.0,
    "session_length": 8.0,
    "zipf_exponent": 1.0,
    "noise": 0.1,
    "drift": 0.05,
    "days": 30,
    "end": END,
    "seed": 42,
}


@pytest.fixture(scope="module")
def sample() -> tuple[pa.Table, pa.Table]:
    return generate(**PARAMS)


def _categories(events: pa.Table, items: pa.Table) -> np.ndarray:
    pos = pc.index_in(events["item_id"], value_set=items["item_id"]).to_numpy()
    return items["category"].to_numpy(zero_copy_only=False)[pos]


def _within_session_pairs(events: pa.Table) -> np.ndarray:
    """Mask over consecutive event pairs: same user and less than 30 minutes apart."""
    users = events["user_id"].to_numpy(zero_copy_only=False)
    ts = events["timestamp"].cast(pa.int64()).to_numpy()
    return (users[1:] == users[:-1]) & (np.diff(ts) < 30 * 60 * 1_000_000)


def test_same_arguments_give_identical_tables(sample):
    events, items = generate(**PARAMS)
    assert events.equals(sample[0])
    assert items.equals(sample[1])


def test_different_seed_differs(sample):
    events, _ = generate(**{**PARAMS, "seed": 43})
    assert not events.equals(sample[0])


def test_schema_and_types(sample):
    events, items = sample
    assert events.schema == pa.schema(
        [
            ("user_id", pa.string()),
            ("item_id", pa.string()),
            ("timestamp", pa.timestamp("us", tz="UTC")),
            ("event_type", pa.string()),
        ]
    )
    assert items.schema.names[:3] == ["item_id", "category", "title"]
    assert items.schema.field("category").type == pa.string()
    assert items.schema.field("popularity_rank").type == pa.int32()
    assert items.num_rows == PARAMS["items"]
    assert pc.count_distinct(items["item_id"]).as_py() == items.num_rows
    assert pc.count_distinct(items["category"]).as_py() == PARAMS["categories"]
    assert sorted(items["popularity_rank"].to_pylist()) == list(range(1, items.num_rows + 1))
    first = items.slice(0, 1).to_pylist()[0]
    assert first["item_id"] == "i000000"
    assert first["category"].startswith("c")
    assert first["title"].split()[-1] == "0"
    assert events["user_id"][0].as_py() == "u0000000"
    assert set(pc.unique(events["item_id"]).to_pylist()) <= set(items["item_id"].to_pylist())


def test_int_item_ids():
    events, items = generate(**{**PARAMS, "users": 50, "item_id_type": "int"})
    assert events.schema.field("item_id").type == pa.int64()
    assert items.schema.field("item_id").type == pa.int64()
    assert items["item_id"].to_pylist() == list(range(PARAMS["items"]))


def test_timestamps_inside_window_and_sorted(sample):
    events, _ = sample
    ts = events["timestamp"]
    assert pc.max(ts).as_py() < END
    assert pc.min(ts).as_py() >= END - datetime.timedelta(days=PARAMS["days"])
    users = events["user_id"].to_numpy(zero_copy_only=False)
    us = ts.cast(pa.int64()).to_numpy()
    same_user = users[1:] == users[:-1]
    assert (users[1:] >= users[:-1]).all()
    gaps = np.diff(us)[same_user] / 1e6
    assert (gaps >= 10).all()  # clicks at least 10 s apart
    # Every gap is either a click gap (<= 5 min) or a session gap (> 1 h), never in between.
    assert not ((gaps > 300) & (gaps <= 3600)).any()


def test_counts_roughly_as_requested(sample):
    events, _ = sample
    expected = PARAMS["users"] * PARAMS["sessions_per_user"] * PARAMS["session_length"]
    assert 0.7 * expected < events.num_rows < 1.3 * expected
    assert pc.count_distinct(events["user_id"]).as_py() == PARAMS["users"]
    sessions = events.num_rows - int(_within_session_pairs(events).sum())
    per_user = sessions / PARAMS["users"]
    assert 0.7 * PARAMS["sessions_per_user"] < per_user < 1.3 * PARAMS["sessions_per_user"]


def test_event_type_shares(sample):
    events, _ = sample
    counts = {d["values"]: d["counts"] for d in pc.value_counts(events["event_type"]).to_pylist()}
    shares = {k: v / events.num_rows for k, v in counts.items()}
    assert set(shares) == {"view", "cart", "purchase"}
    assert shares["view"] == pytest.approx(0.80, abs=0.02)
    assert shares["cart"] == pytest.approx(0.15, abs=0.02)
    assert shares["purchase"] == pytest.approx(0.05, abs=0.01)


def test_sessions_stay_in_category(sample):
    events, items = sample
    cats = _categories(events, items)
    within = _within_session_pairs(events)
    same = float((cats[1:] == cats[:-1])[within].mean())
    _, counts = np.unique(cats, return_counts=True)
    random_pairs = float(((counts / counts.sum()) ** 2).sum())
    assert same > 0.6
    assert same > 2.5 * random_pairs


def test_without_noise_or_drift_sessions_never_leave_category():
    clean_events, items = generate(**{**PARAMS, "users": 300, "noise": 0.0, "drift": 0.0})
    cats = _categories(clean_events, items)
    assert (cats[1:] == cats[:-1])[_within_session_pairs(clean_events)].all()


def test_popularity_is_skewed(sample):
    events, items = sample
    counts = np.sort(pc.value_counts(events["item_id"]).field("counts").to_numpy())[::-1]
    top = counts[: len(items) // 10].sum() / events.num_rows
    assert top > 0.4
    # popularity_rank is the planted order: top-ranked items are drawn far more often.
    ranked = items.filter(pc.less_equal(items["popularity_rank"], 10))["item_id"]
    hits = pc.sum(pc.is_in(events["item_id"], value_set=ranked).cast(pa.int64())).as_py()
    assert hits / events.num_rows > 10 * 10 / len(items)


def test_write_parquet_round_trip(tmp_path):
    params = {**PARAMS, "users": 400}
    counts = write_parquet(str(tmp_path), events_per_file=5_000, **params)
    files = sorted((tmp_path / "events").glob("*.parquet"))
    assert counts["files"] == len(files) > 1
    events = ds.dataset(tmp_path / "events", format="parquet").to_table()
    assert events.num_rows == counts["events"]
    assert pc.count_distinct(events["user_id"]).as_py() == params["users"]
    assert events.schema.field("timestamp").type == pa.timestamp("us", tz="UTC")
    items = ds.dataset(tmp_path / "items.parquet", format="parquet").to_table()
    assert items.num_rows == counts["items"] == params["items"]
    # Deterministic, and a rerun into the same directory replaces (not adds to) the parts.
    again = write_parquet(str(tmp_path), events_per_file=5_000, **params)
    assert again == counts
    assert ds.dataset(tmp_path / "events", format="parquet").to_table().equals(events)


def test_write_parquet_single_chunk_matches_generate(tmp_path):
    params = {**PARAMS, "users": 100}
    write_parquet(tmp_path, events_per_file=10**9, **params)
    events = ds.dataset(tmp_path / "events", format="parquet").to_table()
    assert events.equals(generate(**params)[0])


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("users", 0),
        ("items", -1),
        ("categories", 2.5),
        ("categories", 2_000),  # more categories than items
        ("sessions_per_user", 0.5),
        ("session_length", float("nan")),
        ("zipf_exponent", -1.0),
        ("noise", 1.5),
        ("drift", -0.1),
        ("days", 0),
        ("end", "2024-06-01"),
        ("seed", -1),
        ("item_id_type", "uuid"),
    ],
)
def test_invalid_arguments(name, value):
    with pytest.raises(ValueError, match=name):
        generate(**{**PARAMS, name: value})


def test_invalid_events_per_file(tmp_path):
    with pytest.raises(ValueError, match="events_per_file"):
        write_parquet(str(tmp_path), events_per_file=0, **PARAMS)
