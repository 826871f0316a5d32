"""Synthetic e-commerce event logs with planted structure, for tests, examples and benchmarks.

Real click logs cannot ship with an open-source repo, yet item2vec needs data whose answer is
known: items of one category should end up close together. The generator plants exactly that.
Each user likes 1-3 categories, a session browses one category and items inside it are drawn by
Zipf popularity, so co-occurrence is mostly within-category. Two knobs blur the signal the way
real traffic does: ``noise`` (random off-category clicks) and ``drift`` (a session wanders into
another category).

Categories alone flatter embeddings: any item of the right category is a good neighbour. Two
more knobs add what dominates real click logs. ``transition``: every item has 1-3 fixed
successors (accessory, next episode, "customers then viewed"), in its own category except for a
``noise`` share, and a click follows such a link with this probability, so the next item is often
one specific item, not just any item of the category. ``tail_share``: that share of every
category is long tail, drawn about twice in the whole log whatever its size, so most of the
catalogue is too rare to embed, as in real catalogues. Tail items are never successors nor noise
targets, otherwise those clicks (about 6 per item in the default sample) would lift them out of
the tail. Everything is vectorised numpy, seeded, and byte-for-byte reproducible.
"""

from __future__ import annotations

import datetime
import itertools
import math
import numbers
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from item2vec import config

__all__ = ["EVENT_TYPES", "chunk_count", "chunk_events", "generate", "items_table",
           "write_parquet"]

EVENT_TYPES: tuple[str, ...] = ("view", "cart", "purchase")
_EVENT_CUMPROB = np.array([0.80, 0.95])  # view 80 %, cart 15 %, purchase 5 %

_US = 1_000_000
_SESSION_GAP_MIN_US = 3601 * _US  # strictly more than one hour between sessions of a user
_CLICK_GAP_MIN_S, _CLICK_GAP_MAX_S, _CLICK_GAP_MEDIAN_S = 10.0, 300.0, 45.0
_LONG_SESSION_SHARE, _LONG_SESSION_FACTOR = 0.05, 4.0  # a few sessions are much longer
_MAX_SUCCESSORS = 3  # each item links to 1-3 successors
_TAIL_EXPECTED_COUNT = 2.0  # expected draws of one tail item in the whole log
_MAX_TAIL_MASS = 0.5  # tiny logs: the tail takes at most half of a category's draws
_MAX_TAIL_SHARE = 0.9  # every category keeps popular items
_VIRTUAL_USERS = 10_000  # users simulated to measure category traffic for the tail
_VIRTUAL_KEY = 1 << 40  # seed stream of that simulation, apart from the chunks' 0, 1, ...
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)

_COLORS = (
    "Red", "Blue", "Green", "Black", "White", "Silver",
    "Golden", "Pink", "Orange", "Purple", "Grey", "Teal",
)  # fmt: skip
_NOUNS = (
    "widget", "lamp", "mug", "sneaker", "backpack", "headphones", "novel", "blender",
    "jacket", "watch", "sofa", "kettle", "drone", "scarf", "guitar", "tent",
    "puzzle", "vase", "helmet", "notebook", "candle", "charger", "bicycle", "pillow",
)  # fmt: skip


@dataclass(frozen=True)
class _Config:
    """Validated generator arguments; one place so generate and write_parquet agree."""

    users: int
    items: int
    categories: int
    sessions_per_user: float
    session_length: float
    zipf_exponent: float
    noise: float
    drift: float
    days: int
    end: datetime.datetime
    seed: int
    item_id_type: str = "string"
    transition: float | None = None  # None: [sample] default from conf/default.toml
    tail_share: float | None = None

    def __post_init__(self) -> None:
        for name in ("transition", "tail_share"):
            if getattr(self, name) is None:
                object.__setattr__(self, name, getattr(_default_sample(), name))
        for name in ("users", "items", "categories", "days"):
            _require_int(name, getattr(self, name), minimum=1)
        _require_int("seed", self.seed, minimum=0)
        if self.categories > self.items:
            raise ValueError(
                f"categories must be <= items (every category needs an item), "
                f"got categories={self.categories}, items={self.items}"
            )
        _require_real("sessions_per_user", self.sessions_per_user, low=1.0)
        _require_real("session_length", self.session_length, low=1.0)
        _require_real("zipf_exponent", self.zipf_exponent, low=0.0)
        _require_real("noise", self.noise, low=0.0, high=1.0)
        _require_real("drift", self.drift, low=0.0, high=1.0)
        _require_real("transition", self.transition, low=0.0, high=1.0)
        _require_real("tail_share", self.tail_share, low=0.0, high=_MAX_TAIL_SHARE)
        end_ok = isinstance(self.end, datetime.datetime)  # ValueError too: one type to catch
        if not end_ok:
            raise ValueError(f"end must be a datetime.datetime, got {self.end!r}")
        if self.item_id_type not in ("string", "int"):
            raise ValueError(f"item_id_type must be 'string' or 'int', got {self.item_id_type!r}")

    @property
    def end_us(self) -> int:
        """``end`` in microseconds since the epoch; a naive datetime is taken to be UTC."""
        end = self.end if self.end.tzinfo else self.end.replace(tzinfo=datetime.UTC)
        return (end - _EPOCH) // datetime.timedelta(microseconds=1)


def _default_sample() -> config.SampleConfig:
    """The job's [sample] defaults: the one place the new knobs' defaults live."""
    return config.load().sample


def _require_int(name: str, value: object, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _require_real(name: str, value: object, *, low: float, high: float | None = None) -> None:
    ok = (
        not isinstance(value, bool)
        and isinstance(value, numbers.Real)
        and math.isfinite(value)
        and value >= low
        and (high is None or value <= high)
    )
    if not ok:
        expected = f"a number >= {low}" if high is None else f"a number in [{low}, {high}]"
        raise ValueError(f"{name} must be {expected}, got {value!r}")


# --------------------------------------------------------------------------- item catalogue


@dataclass(frozen=True)
class _Catalog:
    """Items laid out category-major ("positions"), plus the lookups events need."""

    cat_cdf: np.ndarray  # (C,) cumulative category popularity, last == 1
    item_cdf: np.ndarray  # (N,) category index + within-category draw CDF, monotone
    cat_end: np.ndarray  # (C,) one past the last position of each category
    item_of_pos: np.ndarray  # (N,) item number at each position (shuffled ids)
    head_pos: np.ndarray  # (H,) positions of the non-tail items: targets of noise clicks
    succ: np.ndarray  # (N, _MAX_SUCCESSORS) successor positions of each position
    n_succ: np.ndarray  # (N,) how many of succ's columns are used (1.._MAX_SUCCESSORS)
    table: pa.Table


def _catalog(cfg: _Config) -> _Catalog:
    """Build the item table and the sampling tables; the same for every chunk of users."""
    rng = np.random.default_rng(cfg.seed)
    n, c = cfg.items, cfg.categories
    # Uneven category sizes; bigger and intrinsically "hotter" categories get more traffic.
    sizes = 1 + rng.multinomial(n - c, _normalise(rng.lognormal(0.0, 0.6, c)))
    cat_weight = _normalise(sizes * rng.lognormal(0.0, 1.0, c))
    cat_cdf = np.cumsum(cat_weight)
    cat_cdf[-1] = 1.0
    cat_end = np.cumsum(sizes)
    cat_start = cat_end - sizes
    cat_of_pos = np.repeat(np.arange(c), sizes)
    rank_in_cat = np.arange(n) - cat_start[cat_of_pos] + 1
    # The last positions of each category are the tail; the head is drawn by Zipf.
    n_tail = _tail_sizes(sizes, cfg.tail_share)
    n_head = sizes - n_tail
    is_tail = rank_in_cat > n_head[cat_of_pos]
    zipf = np.where(is_tail, 0.0, rank_in_cat.astype(np.float64) ** -cfg.zipf_exponent)
    head_total = np.add.reduceat(zipf, cat_start)
    # A tail item gets a fixed expected number of draws in the whole log, not a share of it:
    # Zipf alone gives a category's 100th item about 20 clicks in the 100k-event default sample.
    draws, link_rate = _expected_draws(cfg, cat_cdf)
    tail_mass = np.minimum(_MAX_TAIL_MASS, _TAIL_EXPECTED_COUNT * n_tail / np.maximum(draws, 1.0))
    per_tail = tail_mass / np.maximum(n_tail, 1)
    prob = np.where(
        is_tail,
        per_tail[cat_of_pos],
        (1.0 - tail_mass[cat_of_pos]) * zipf / head_total[cat_of_pos],
    )
    within = _group_cumsum(prob, cat_start[cat_of_pos])
    within[cat_end - 1] = 1.0  # exact, so searchsorted never leaks into the next category
    item_cdf = cat_of_pos + within
    # Ids are shuffled so an item's number says nothing about its category or popularity.
    item_of_pos = rng.permutation(n)
    pos_of_item = np.empty(n, dtype=np.int64)
    pos_of_item[item_of_pos] = np.arange(n)
    item_cat = cat_of_pos[pos_of_item]
    colors = rng.integers(0, len(_COLORS), n)
    head_pos = np.flatnonzero(~is_tail)
    succ, n_succ = _successors(
        rng, cfg, is_tail, rank_in_cat, n_head[cat_of_pos], cat_start[cat_of_pos], head_pos
    )
    # Expected global share of each position -> popularity rank (1 = most popular).
    draw_share = prob * (draws / max(draws.sum(), 1.0))[cat_of_pos]
    share = _expected_share(cfg, draw_share, link_rate, head_pos, succ, n_succ)
    rank_of_pos = np.empty(n, dtype=np.int32)
    rank_of_pos[np.argsort(-share, kind="stable")] = np.arange(1, n + 1, dtype=np.int32)
    numbers_ = pa.array(np.arange(n, dtype=np.int64))
    titles = pc.binary_join_element_wise(
        pa.array(_COLORS).take(pa.array(colors)),
        pa.array(_NOUNS).take(pa.array(item_cat % len(_NOUNS))),
        pc.cast(numbers_, pa.string()),
        " ",
    )
    table = pa.table(
        {
            "item_id": _item_ids(numbers_, cfg),
            "category": _padded_ids("c", pa.array(item_cat), width=max(3, len(str(c - 1)))),
            "title": titles,
            "popularity_rank": pa.array(rank_of_pos[pos_of_item]),
        }
    )
    return _Catalog(cat_cdf, item_cdf, cat_end, item_of_pos, head_pos, succ, n_succ, table)


def _tail_sizes(sizes: np.ndarray, share: float) -> np.ndarray:
    """Tail items per category: round(share x items) in all, every category keeping a head."""
    raw = share * sizes
    tail = np.minimum(np.floor(raw).astype(np.int64), sizes - 1)
    short = round(share * int(sizes.sum())) - int(tail.sum())
    if short > 0:  # largest remainders first, among categories that can still give an item
        room = tail < sizes - 1
        order = np.argsort(np.where(room, tail - raw, np.inf), kind="stable")[:short]
        tail[order[room[order]]] += 1
    return tail


def _expected_draws(cfg: _Config, cat_cdf: np.ndarray) -> tuple[np.ndarray, float]:
    """Expected in-category draws per category in the whole log, and the share of events that
    follow a link; measured on a virtual population browsing exactly as the users will.

    Category weights alone are not enough: distinct favourites and drifts flatten traffic (a
    category of weight 0.02 can get 0.04 of the sessions), and tail items of small categories
    would then be seen twice as often as meant.
    """
    rng = np.random.default_rng(np.random.SeedSequence(cfg.seed, spawn_key=(_VIRTUAL_KEY,)))
    n_users = min(cfg.users, _VIRTUAL_USERS)
    b = _browsing(rng, cfg, cat_cdf, n_users)
    drawn = np.where(b.boundary, 1.0, 1.0 - cfg.transition)  # expected, per event
    per_cat = np.bincount(b.ev_cat, drawn, minlength=len(cat_cdf))
    link_rate = cfg.transition * float(1.0 - b.boundary.mean())
    return per_cat * (1.0 - cfg.noise) * (cfg.users / n_users), link_rate


def _successors(
    rng: np.random.Generator,
    cfg: _Config,
    is_tail: np.ndarray,
    rank_in_cat: np.ndarray,
    head_of_cat: np.ndarray,
    start_of_cat: np.ndarray,
    head_pos: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """1-3 successor positions per position: a uniform other head item of the same category,
    or with probability ``noise`` of any category. Uniform (not by popularity) so that links are
    specific pairs rather than "the bestsellers again"; never the tail, which must stay rare."""
    n, k = len(is_tail), _MAX_SUCCESSORS
    n_succ = rng.integers(1, k + 1, n)
    u = rng.random((n, k))
    cross = rng.random((n, k)) < cfg.noise
    is_head = ~is_tail[:, None]
    # Same category: index j among the category's head items, skipping the item itself.
    own = (rank_in_cat - 1)[:, None]
    cand = head_of_cat[:, None] - is_head
    j = (u * np.maximum(cand, 1)).astype(np.int64)
    j += is_head & (cand > 0) & (j >= own)
    in_cat = start_of_cat[:, None] + j
    # Any category: index among all head items, skipping the item itself.
    own = (np.cumsum(~is_tail) - 1)[:, None]
    cand = len(head_pos) - is_head
    j = (u * np.maximum(cand, 1)).astype(np.int64)
    j += is_head & (cand > 0) & (j >= own)
    return np.where(cross, head_pos[j], in_cat), n_succ


def _expected_share(
    cfg: _Config,
    draw_share: np.ndarray,
    link_rate: float,
    head_pos: np.ndarray,
    succ: np.ndarray,
    n_succ: np.ndarray,
) -> np.ndarray:
    """Expected share of events per position: independent draws (in-category and noise) plus
    what successor links bring in, iterated to the fixed point s = (1 - t) z + t L s."""
    n = len(draw_share)
    z = (1.0 - cfg.noise) * draw_share
    z[head_pos] += cfg.noise / len(head_pos)
    t = link_rate
    used = np.arange(succ.shape[1]) < n_succ[:, None]
    targets = succ[used]
    share = z
    for _ in range(min(100, math.ceil(math.log(1e-9) / math.log(t))) if t > 0 else 0):  # t < 1
        out = np.broadcast_to((share / n_succ)[:, None], succ.shape)[used]
        share = (1.0 - t) * z + t * np.bincount(targets, out, minlength=n)
    return share


# --------------------------------------------------------------------------------- events


@dataclass(frozen=True)
class _Browsing:
    """Sessions and the category of every event, before items are chosen."""

    n_sess: np.ndarray  # (users,) sessions per user
    user_first_sess: np.ndarray  # (users,)
    sess_user: np.ndarray  # (sessions,)
    sess_first_ev: np.ndarray  # (sessions,)
    ev_sess: np.ndarray  # (events,)
    is_first: np.ndarray  # (events,) first event of its session
    boundary: np.ndarray  # (events,) first event of a category segment (session start or drift)
    ev_cat: np.ndarray  # (events,) category of the event's segment


def _browsing(
    rng: np.random.Generator, cfg: _Config, cat_cdf: np.ndarray, n_users: int
) -> _Browsing:
    """Users, their sessions and the category each click browses."""
    c = cfg.categories
    # Users: session counts (geometric tail) and 1-3 distinct favourite categories.
    max_sessions = max(1, cfg.days * 12 + 1)  # leaves >= half the window for browsing
    n_sess = 1 + _geometric0(rng, cfg.sessions_per_user - 1.0, n_users)
    np.minimum(n_sess, max_sessions, out=n_sess)
    n_fav = rng.integers(1, min(3, c) + 1, n_users)
    fav = _favourites(rng, cat_cdf, n_users)

    # Sessions: owner, starting category, length (geometric, 5 % of them ~4x longer).
    n_sessions = int(n_sess.sum())
    sess_user = np.repeat(np.arange(n_users), n_sess)
    user_first_sess = np.cumsum(n_sess) - n_sess
    pick = (rng.random(n_sessions) * n_fav[sess_user]).astype(np.int64)
    sess_cat = fav[sess_user, pick]
    base = (cfg.session_length - 1.0) / (1.0 + _LONG_SESSION_SHARE * (_LONG_SESSION_FACTOR - 1))
    long_ = rng.random(n_sessions) < _LONG_SESSION_SHARE
    sess_len = 1 + _geometric0(rng, np.where(long_, base * _LONG_SESSION_FACTOR, base), None)

    # Events: category segments (a drift starts a new segment in a different category).
    n_events = int(sess_len.sum())
    ev_sess = np.repeat(np.arange(n_sessions), sess_len)
    sess_first_ev = np.cumsum(sess_len) - sess_len
    is_first = np.zeros(n_events, dtype=bool)
    is_first[sess_first_ev] = True
    drifts = (rng.random(n_events) < cfg.drift) & ~is_first if c > 1 else np.zeros_like(is_first)
    boundary = is_first | drifts
    seg_first_ev = np.flatnonzero(boundary)
    seg_is_drift = drifts[seg_first_ev]
    seg_cat = sess_cat[ev_sess[seg_first_ev]]
    seg_cat[seg_is_drift] = _draw(rng, cat_cdf, int(seg_is_drift.sum()))
    _force_switch(rng, seg_cat, seg_is_drift, cat_cdf)
    ev_cat = seg_cat[np.cumsum(boundary) - 1]
    return _Browsing(
        n_sess, user_first_sess, sess_user, sess_first_ev, ev_sess, is_first, boundary, ev_cat
    )


def _events(cfg: _Config, cat: _Catalog, first_user: int, n_users: int, chunk: int) -> pa.Table:
    """Events of users [first_user, first_user + n_users), sorted by user then time."""
    rng = np.random.default_rng(np.random.SeedSequence(cfg.seed, spawn_key=(chunk,)))
    window_us = cfg.days * 86_400 * _US - 1  # every timestamp strictly before `end`
    b = _browsing(rng, cfg, cat.cat_cdf, n_users)
    n_sessions, n_events = len(b.sess_user), len(b.ev_sess)

    # Items: a click inside a segment follows a successor link of the previous item with prob
    # `transition`; otherwise it is drawn independently: Zipf within the segment's category, or
    # with prob `noise` a uniformly random head item.
    linked = (rng.random(n_events) < cfg.transition) & ~b.boundary
    drawn = np.flatnonzero(~linked)
    drawn_cat = b.ev_cat[drawn]
    pos = np.empty(n_events, dtype=np.int64)
    drawn_pos = np.searchsorted(cat.item_cdf, drawn_cat + rng.random(drawn.size), side="right")
    np.minimum(drawn_pos, cat.cat_end[drawn_cat] - 1, out=drawn_pos)  # c + u may round to c + 1
    noisy = rng.random(drawn.size) < cfg.noise
    drawn_pos[noisy] = cat.head_pos[rng.integers(0, cat.head_pos.size, int(noisy.sum()))]
    pos[drawn] = drawn_pos
    _follow_links(rng, pos, linked, cat)
    item = cat.item_of_pos[pos]
    etype = np.searchsorted(_EVENT_CUMPROB, rng.random(n_events), side="right")

    # Time inside sessions: log-normal click gaps clipped to [10 s, 5 min], in integer us.
    gap_s = rng.lognormal(math.log(_CLICK_GAP_MEDIAN_S), 0.9, n_events)
    gap = (np.clip(gap_s, _CLICK_GAP_MIN_S, _CLICK_GAP_MAX_S) * _US).astype(np.int64)
    gap[b.is_first] = 0
    ev_user = b.sess_user[b.ev_sess]
    sess_dur = np.add.reduceat(gap, b.sess_first_ev)
    user_busy = np.add.reduceat(sess_dur, b.user_first_sess)
    avail = window_us - (b.n_sess - 1) * _SESSION_GAP_MIN_US
    over = user_busy > avail  # only for absurd settings: squeeze that user's clicks to fit
    if over.any():
        factor = np.where(over, avail / np.maximum(user_busy, 1), 1.0)
        gap = (gap * factor[ev_user]).astype(np.int64)
        sess_dur = np.add.reduceat(gap, b.sess_first_ev)
        user_busy = np.add.reduceat(sess_dur, b.user_first_sess)
    within = _group_cumsum(gap, b.sess_first_ev[b.ev_sess])

    # Time between sessions: > 1 h each, the slack spread randomly (hours to days) so that a
    # user's sessions fill the window; exponential slot weights = uniform spacings.
    free = avail - user_busy
    slot_w = rng.exponential(size=n_sessions)
    slot_total = np.bincount(b.sess_user, slot_w, n_users) + rng.exponential(size=n_users)
    slot = (slot_w / slot_total[b.sess_user] * free[b.sess_user]).astype(np.int64)
    sess_rank = np.arange(n_sessions) - b.user_first_sess[b.sess_user]
    first_of_user = b.user_first_sess[b.sess_user]
    start = (
        _group_cumsum(slot, first_of_user)
        + _group_cumsum(sess_dur, first_of_user)
        - sess_dur
        + sess_rank * _SESSION_GAP_MIN_US
    )
    ts = (cfg.end_us - window_us - 1) + start[b.ev_sess] + within

    users = pa.array(np.arange(first_user, first_user + n_users))
    user_ids = _padded_ids("u", users, width=max(7, len(str(cfg.users - 1))))
    return pa.table(
        {
            "user_id": user_ids.take(pa.array(ev_user)),
            "item_id": _item_ids(pa.array(item), cfg),
            "timestamp": pa.array(ts, type=pa.timestamp("us", tz="UTC")),
            "event_type": pa.array(EVENT_TYPES).take(pa.array(etype)),
        }
    )


def _follow_links(
    rng: np.random.Generator, pos: np.ndarray, linked: np.ndarray, cat: _Catalog
) -> None:
    """Fill pos[linked] with a random successor of the previous event's item (in place).

    Links chain (a successor's successor), so events are resolved by their distance from the
    last drawn event: one vectorised step per distance, about 20 steps for 10M events.
    """
    idx = np.flatnonzero(linked)
    if idx.size == 0:
        return
    pick = rng.random(idx.size)
    last_drawn = np.maximum.accumulate(np.where(linked, 0, np.arange(len(linked))))
    depth = idx - last_drawn[idx]
    depth = depth.astype(np.uint16) if depth.max() < 1 << 16 else depth  # uint16: radix sort
    order = np.argsort(depth, kind="stable")
    idx, pick = idx[order], pick[order]
    ends = np.cumsum(np.bincount(depth))
    for lo, hi in itertools.pairwise(ends):  # ends[0] == 0: no linked event at depth 0
        at = idx[lo:hi]
        prev = pos[at - 1]
        pos[at] = cat.succ[prev, (pick[lo:hi] * cat.n_succ[prev]).astype(np.int64)]


def _favourites(rng: np.random.Generator, cat_cdf: np.ndarray, n_users: int) -> np.ndarray:
    """(n_users, 3) categories by popularity, distinct where a few redraws can make them so."""
    fav = _draw(rng, cat_cdf, (n_users, 3))
    if len(cat_cdf) == 1:
        return fav
    for _ in range(16):
        dup = np.zeros((n_users, 3), dtype=bool)
        dup[:, 1] = fav[:, 1] == fav[:, 0]
        dup[:, 2] = (fav[:, 2] == fav[:, 0]) | (fav[:, 2] == fav[:, 1])
        if not dup.any():
            break
        fav[dup] = _draw(rng, cat_cdf, int(dup.sum()))
    return fav


def _force_switch(
    rng: np.random.Generator, seg_cat: np.ndarray, seg_is_drift: np.ndarray, cat_cdf: np.ndarray
) -> None:
    """Make every drift segment differ from its predecessor (in place).

    Redraws by popularity first; if one category dominates, falls back to a uniform other
    category, which always resolves the clash (a chain of clashes shortens each round).
    """
    c = len(cat_cdf)
    if c == 1:
        return
    rounds = 0
    while True:
        clash = np.flatnonzero(seg_is_drift[1:] & (seg_cat[1:] == seg_cat[:-1])) + 1
        if clash.size == 0:
            return
        if rounds < 8:
            seg_cat[clash] = _draw(rng, cat_cdf, clash.size)
        else:
            seg_cat[clash] = (seg_cat[clash - 1] + rng.integers(1, c, clash.size)) % c
        rounds += 1


# -------------------------------------------------------------------------------- helpers


def _normalise(weights: np.ndarray) -> np.ndarray:
    return weights / weights.sum()


def _draw(rng: np.random.Generator, cdf: np.ndarray, size: int | tuple[int, ...]) -> np.ndarray:
    """Categorical draws by inverse CDF: far faster than rng.choice for large sizes."""
    return np.minimum(np.searchsorted(cdf, rng.random(size), side="right"), len(cdf) - 1)


def _geometric0(rng: np.random.Generator, mean: float | np.ndarray, size: int | None) -> np.ndarray:
    """Geometric on {0, 1, ...} with the given mean(s): a simple long-tailed count."""
    p = 1.0 / (1.0 + np.asarray(mean, dtype=np.float64))
    return rng.geometric(p, size).astype(np.int64) - 1


def _group_cumsum(values: np.ndarray, group_first: np.ndarray) -> np.ndarray:
    """Inclusive cumulative sum restarting at each group; group_first[i] = group's first index."""
    total = np.cumsum(values)
    return total - (total - values)[group_first]


def _padded_ids(prefix: str, numbers_: pa.Array, *, width: int) -> pa.Array:
    """'u0000123'-style ids, built in Arrow's C++ kernels rather than a Python loop."""
    digits = pc.utf8_lpad(pc.cast(numbers_, pa.string()), width=width, padding="0")
    return pc.binary_join_element_wise(prefix, digits, "")


def _item_ids(numbers_: pa.Array, cfg: _Config) -> pa.Array:
    if cfg.item_id_type == "int":
        return pc.cast(numbers_, pa.int64())
    return _padded_ids("i", numbers_, width=max(6, len(str(cfg.items - 1))))


# ------------------------------------------------------------------------------ public API


def generate(
    *,
    users: int,
    items: int,
    categories: int,
    sessions_per_user: float,
    session_length: float,
    zipf_exponent: float,
    noise: float,
    drift: float,
    days: int,
    end: datetime.datetime,
    seed: int,
    item_id_type: str = "string",
    transition: float | None = None,
    tail_share: float | None = None,
) -> tuple[pa.Table, pa.Table]:
    """Return (events, items): a synthetic click log whose answer (item categories) is known.

    events: user_id string, item_id string|int64, timestamp timestamp[us, UTC], event_type
    string ("view"/"cart"/"purchase"), sorted by user then time, all in [end - days, end).
    items: item_id, category ("c007"), title ("Blue widget 42"), popularity_rank int32
    (1 = most popular by construction). Same arguments give byte-identical tables.
    ``transition`` and ``tail_share`` left as None take the [sample] values of
    conf/default.toml, so the defaults live in one place.
    Holds everything in memory; use write_parquet for logs of tens of millions of events.
    """
    cfg = _Config(
        users=users,
        items=items,
        categories=categories,
        sessions_per_user=sessions_per_user,
        session_length=session_length,
        zipf_exponent=zipf_exponent,
        noise=noise,
        drift=drift,
        days=days,
        end=end,
        seed=seed,
        item_id_type=item_id_type,
        transition=transition,
        tail_share=tail_share,
    )
    catalog = _catalog(cfg)
    return _events(cfg, catalog, 0, cfg.users, chunk=0), catalog.table


def items_table(**params: object) -> pa.Table:
    """The item catalogue (item_id, category, title, popularity_rank) of generate(params),
    without generating the events."""
    return _catalog(_Config(**params)).table  # type: ignore[arg-type]


def chunk_count(*, events_per_chunk: int = 2_000_000, **params: object) -> int:
    """How many user chunks of about ``events_per_chunk`` events the log has (see
    chunk_events); ``params`` are generate()'s keyword arguments."""
    cfg = _Config(**params)  # type: ignore[arg-type]  # TypeError on unknown/missing names
    return -(-cfg.users // _chunk_users(cfg, events_per_chunk))


def chunk_events(chunk: int, *, events_per_chunk: int = 2_000_000,
                 **params: object) -> pa.Table:
    """The events of one user chunk: what a distributed reader generates per task, so the log
    never travels from the driver. With a single chunk the events equal generate()'s."""
    _require_int("events_per_chunk", events_per_chunk, minimum=1)
    cfg = _Config(**params)  # type: ignore[arg-type]
    users = _chunk_users(cfg, events_per_chunk)
    first = chunk * users
    return _events(cfg, _catalog(cfg), first, min(users, cfg.users - first), chunk)


def _chunk_users(cfg: _Config, events_per_chunk: int) -> int:
    return max(1, int(events_per_chunk / (cfg.sessions_per_user * cfg.session_length)))


def write_parquet(
    path: str | os.PathLike[str], *, events_per_file: int = 2_000_000, **params: object
) -> dict[str, int]:
    """Write a log too big for memory: path/events/part-NNNNN.parquet plus path/items.parquet.

    Users are generated in chunks of about events_per_file events, one file per chunk, so
    memory stays bounded for 10M+ events. ``params`` are generate()'s keyword arguments.
    Output is deterministic for fixed arguments; with a single chunk the events equal
    generate()'s. Stale part files from an earlier run in path/events/ are removed.
    Returns counts: events, users, items, categories and files written.
    """
    _require_int("events_per_file", events_per_file, minimum=1)
    cfg = _Config(**params)  # type: ignore[arg-type]  # TypeError on unknown/missing names
    catalog = _catalog(cfg)
    root = Path(path)
    events_dir = root / "events"
    events_dir.mkdir(parents=True, exist_ok=True)
    for stale in events_dir.glob("part-*.parquet"):
        stale.unlink()
    pq.write_table(catalog.table, root / "items.parquet")

    chunk_users = _chunk_users(cfg, events_per_file)
    total = files = 0
    for chunk, first in enumerate(range(0, cfg.users, chunk_users)):
        table = _events(cfg, catalog, first, min(chunk_users, cfg.users - first), chunk)
        pq.write_table(table, events_dir / f"part-{chunk:05d}.parquet")
        total += table.num_rows
        files += 1
    return {
        "events": total,
        "users": cfg.users,
        "items": cfg.items,
        "categories": cfg.categories,
        "files": files,
    }
