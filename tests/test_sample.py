"""The synthetic log must be reproducible, well-typed and carry structure item2vec can find."""

from __future__ import annotations

import datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pytest

from item2vec import config
from item2vec.sample import _catalog, _Config, generate, write_parquet

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
    "transition": 0.4,
    "tail_share": 0.4,
    "days": 30,
    "end": END,
    "seed": 42,
}
# Only independent in-category draws, so a successor hit is a link or plain chance.
LINKS = {**PARAMS, "users": 2_000, "noise": 0.0, "drift": 0.0, "item_id_type": "int"}


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


def _occurrences(events: pa.Table, items: pa.Table) -> np.ndarray:
    """Events per catalogue item (0 for items never clicked), in the items table's order."""
    counts = pc.value_counts(events["item_id"])
    out = np.zeros(items.num_rows, dtype=np.int64)
    where = pc.index_in(counts.field("values"), value_set=items["item_id"]).to_numpy()
    out[where] = counts.field("counts").to_numpy()
    return out


def _successor_hits(params: dict) -> np.ndarray:
    """For each within-session pair (a, b): is b one of a's planted successors? (int item ids)"""
    cat = _catalog(_Config(**params))
    used = np.arange(cat.succ.shape[1]) < cat.n_succ[:, None]
    succ = np.empty_like(cat.succ)
    succ[cat.item_of_pos] = np.where(used, cat.item_of_pos[cat.succ], -1)
    events, _ = generate(**params)
    item = events["item_id"].to_numpy()
    within = _within_session_pairs(events)
    return (succ[item[:-1][within]] == item[1:][within][:, None]).any(axis=1)


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
    # Successor links included: without noise every link stays in its category.
    clean = {**PARAMS, "users": 300, "noise": 0.0, "drift": 0.0, "transition": 0.8}
    clean_events, items = generate(**clean)
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


def test_next_click_follows_successor_links_at_the_configured_rate():
    chance = float(_successor_hits({**LINKS, "transition": 0.0}).mean())
    assert chance < 0.06  # 1-3 specific items out of ~60 of the category
    for rate in (0.4, 0.8):
        hits = float(_successor_hits({**LINKS, "transition": rate}).mean())
        assert hits == pytest.approx(rate + (1 - rate) * chance, abs=0.015)


def test_next_item_distribution_concentrates_with_links():
    """Seen from the log alone: a frequent item's next clicks pile up on a few specific items."""

    def median_top3_share(transition: float) -> float:
        # Uniform popularity: without links no next item stands out.
        events, _ = generate(**{**LINKS, "zipf_exponent": 0.0, "transition": transition})
        item = events["item_id"].to_numpy()
        within = _within_session_pairs(events)
        n = PARAMS["items"]
        pair, count = np.unique(item[:-1][within] * n + item[1:][within], return_counts=True)
        first = pair // n
        starts = np.flatnonzero(first[1:] != first[:-1]) + 1
        shares = [np.sort(c)[-3:].sum() / c.sum() for c in np.split(count, starts) if c.sum() >= 50]
        assert len(shares) >= 20
        return float(np.median(shares))

    assert median_top3_share(0.0) < 0.25  # measured 0.15
    assert median_top3_share(0.5) > 0.45  # measured 0.55: links plus chance


def test_tail_share_of_the_catalogue_is_rare(sample):
    events, items = sample
    counts = _occurrences(events, items)
    n_tail = round(PARAMS["tail_share"] * PARAMS["items"])
    tail = items["popularity_rank"].to_numpy() > PARAMS["items"] - n_tail  # planted last
    assert 1.5 < counts[tail].mean() < 2.5  # about two clicks each
    assert (counts[tail] < 5).mean() > 0.9
    assert (counts[~tail] < 5).mean() < 0.02
    assert float((counts < 5).mean()) == pytest.approx(PARAMS["tail_share"], abs=0.04)
    no_tail, items0 = generate(**{**PARAMS, "tail_share": 0.0})
    assert float((_occurrences(no_tail, items0) < 5).mean()) < 0.06


def test_tail_stays_rare_as_the_log_grows():
    big = {**PARAMS, "users": 4 * PARAMS["users"]}
    events, items = generate(**big)
    counts = _occurrences(events, items)
    tail = items["popularity_rank"].to_numpy() > PARAMS["items"] - 400
    assert 1.5 < counts[tail].mean() < 2.5
    assert counts[~tail].min() >= 5


def test_omitted_knobs_take_the_configured_defaults():
    defaults = config.load().sample
    small = {k: v for k, v in PARAMS.items() if k not in ("transition", "tail_share")}
    small["users"] = 100
    events, items = generate(**small)
    explicit = generate(**small, transition=defaults.transition, tail_share=defaults.tail_share)
    assert events.equals(explicit[0]) and items.equals(explicit[1])
    assert not events.equals(generate(**small, transition=0.0, tail_share=0.0)[0])


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
        ("transition", 1.5),
        ("transition", "0.3"),
        ("tail_share", 0.95),  # every category must keep popular items
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
