"""Co-occurrence evidence: which items appear near each other in training sessions, how often,
and in which order; and the reference lists built from it alone.

Item co-occurrence counts and sequential rules (forward transitions weighted 1 / distance) are
what a team computes with a few lines of SQL, and on real click logs they predict the next
item better than embeddings do (Ludewig & Jannach). The hybrid ranking (item2vec.rank) uses the
same evidence, and the evaluation scores these lists as the baselines to beat.

Evidence is counted once per run, for every pair of distinct items at most a few positions
apart in a session, as the handful of sums the ranking and the baselines read (symmetric
co-occurrences within a window, forward transitions weighted 1/d or 1/d^2). It is counted in
numpy inside Spark tasks and kept as chunks of items with their partners (``evidence``), the
form the ranking tasks read directly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from item2vec.events import ITEM
from item2vec.sessions import ITEMS
from item2vec.vocabulary import FREQUENCY

OTHER = "other_id"
# The sums kept per (item, partner) (see evidence); "near" and "near_c" count both orders.
FEATURES = ("near", "fwd1", "fwd2", "near_c", "rules")
SYMMETRIC = ("near", "near_c")
RANK, REC, SCORE = "rank", "rec_item", "score"
FIT = "_fit"  # sessions column: true for the part that fits the evidence used to tune weights


def item_counts(sessions: DataFrame) -> DataFrame:
    """(item_id, frequency): occurrences of every item in the training sessions."""
    return (sessions.select(F.explode(ITEMS).alias(ITEM)).groupBy(ITEM)
            .agg(F.count(F.lit(1)).alias(FREQUENCY)))


@dataclass(frozen=True)
class Windows:
    """The windows (in positions) the evidence is counted for: the hybrid's symmetric and
    forward windows, and the baselines' (item-kNN co-occurrence, sequential rules)."""

    near: int
    forward: int
    cooc: int
    rules: int

    @property
    def longest(self) -> int:
        return max(self.near, self.forward, self.cooc, self.rules)


# -- evidence as bucketed numpy blobs ---------------------------------------------------------
# Each row of the evidence DataFrame is one chunk of one bucket of items (item key % buckets):
# an Arrow IPC stream of one record batch, a row per item (ITEM int) with its partners as
# parallel lists (OTHER int, then one float list per feature, fit features as <name>_fit),
# items and partners in key order. The ranking tasks read the chunks as they are: no partner
# row is converted between the JVM's rows and Arrow on the way.
# ``side``: what a ``finish`` step computed from the chunk besides it (evidence), or null.
EVIDENCE_SCHEMA = "bucket int, items int, pairs bigint, data binary, side binary"
# A step run on every chunk as it is built (evidence's ``finish``): the chunk -> (the chunk to
# keep, bytes to keep beside it or None). The ranking uses it to search the chunk's embedding
# neighbours and score the validation pairs while the sums are in memory.
Finish = Callable[[pa.RecordBatch], tuple[pa.RecordBatch, bytes | None]]
_CODES_SCHEMA = "bucket int, data binary"
# Partner rows per evidence chunk (the unit a ranking task works on) and occurrence records per
# bucket (what one aggregation task holds at once, 8 bytes each); a map task ships the records
# it holds once they reach _FLUSH_BYTES.
CHUNK_ROWS = 500_000
BUCKET_RECORDS = 4_000_000
_FLUSH_BYTES = 64 << 20
# Chunks are LZ4-compressed: sorted partner keys and small-count sums shrink several times, so
# the cached evidence fits memory (decompressing is a fraction of what reading it saves).
_IPC = pa.ipc.IpcWriteOptions(compression="lz4")


@dataclass(frozen=True)
class Layout:
    """How pair occurrences are coded: ``span`` bounds the catalogue keys, ``window`` the
    distance; a record is ((item x span + other) << bits) | slot, slot = (direction x 2 + fit)
    x window + distance - 1 (direction 0: other came after item, 1: before). A record
    ((item x span + item) << bits) | ``present`` only says "list this item"."""

    span: int
    window: int
    buckets: int

    @property
    def present(self) -> int:
        return 4 * self.window

    @property
    def bits(self) -> int:
        return self.present.bit_length()

    def check(self) -> None:
        if (self.span * self.span) << self.bits >= 1 << 63:
            raise ValueError(f"{self.span:,} catalogue keys with window {self.window} do not fit "
                             "a 64-bit pair code")

    def weights(self, name: str, windows: Windows) -> np.ndarray:
        """Per slot value (0 .. 2^bits - 1), what one record adds to feature ``name``
        (``<feature>_fit``: over the fit sessions only); 0 for ``present`` records."""
        base, fit_only = (name[:-len(FIT)], True) if name.endswith(FIT) else (name, False)
        slot = np.arange(1 << self.bits)
        d = (slot % self.window + 1).astype(np.float64)
        forward = slot < 2 * self.window
        fit = (slot // self.window) % 2 == 1
        limit = {"near": windows.near, "near_c": windows.cooc, "fwd1": windows.forward,
                 "fwd2": windows.forward, "rules": windows.rules}[base]
        value = {"near": np.ones_like(d), "near_c": np.ones_like(d), "fwd1": 1 / d,
                 "fwd2": 1 / (d * d), "rules": 1 / d}[base]
        use = ((d <= limit) & (forward | (base in SYMMETRIC)) & (fit | (not fit_only))
               & (slot < self.present))
        return np.where(use, value, 0.0)


def buckets_for(tokens: int, window: int, *, partitions: int) -> int:
    """Buckets so that one holds at most about BUCKET_RECORDS occurrence records (each token
    makes at most 2 x window), and at least ``partitions`` (the cores, to keep them busy)."""
    return max(partitions, -(-2 * window * tokens // BUCKET_RECORDS), 1)


def occurrence_codes(keys: np.ndarray, offsets: np.ndarray, fit: np.ndarray,
                     layout: Layout) -> np.ndarray:
    """Both records of every pair occurrence (distinct items at most layout.window positions
    apart) of the sessions whose keys are keys[offsets[s]:offsets[s + 1]]: one for each item of
    the pair, see Layout."""
    return _occurrences(keys, offsets, fit, layout)[0]


def _occurrences(keys: np.ndarray, offsets: np.ndarray, fit: np.ndarray,
                 layout: Layout) -> tuple[np.ndarray, np.ndarray]:
    """occurrence_codes and the bucket of each record (of its first item: taken per token,
    not divided out of every record)."""
    w, span = layout.window, np.int64(layout.span)
    keys = keys[offsets[0]:offsets[-1]].astype(np.int64)
    bucket_of = _bucket_of(keys, layout)
    offsets = offsets - offsets[0]
    lengths = np.diff(offsets)
    session = np.repeat(np.arange(len(lengths)), lengths)
    left = (offsets[1:] - 1)[session] - np.arange(len(keys))  # tokens after, in its session
    parts, buckets = [], []
    for d in range(1, w + 1):
        at = np.flatnonzero(left >= d)
        a, b = keys[at], keys[at + d]
        ok = a != b
        at, a, b = at[ok], a[ok], b[ok]
        f = fit[session[at]].astype(np.int64)
        parts.append(((a * span + b) << layout.bits) | (f * w + d - 1))
        parts.append(((b * span + a) << layout.bits) | ((2 + f) * w + d - 1))
        buckets += [bucket_of[at], bucket_of[at + d]]
    if not parts:
        return np.zeros(0, dtype=np.int64), bucket_of[:0]
    return np.concatenate(parts), np.concatenate(buckets)


def _bucket_of(keys: np.ndarray, layout: Layout) -> np.ndarray:
    """The bucket of each item key, as the smallest integer type that holds it (small integer
    types sort by radix: several times faster than int64's merge sort)."""
    kind = np.int16 if layout.buckets <= np.iinfo(np.int16).max else np.int32
    return (keys % layout.buckets).astype(kind)


def _by_bucket(codes: np.ndarray, bucket: np.ndarray,
               layout: Layout) -> Iterator[tuple[int, np.ndarray]]:
    order = np.argsort(bucket, kind="stable")
    counts = np.bincount(bucket, minlength=layout.buckets)
    ends = np.cumsum(counts)
    for b in np.flatnonzero(counts):
        yield int(b), codes[order[ends[b] - counts[b]:ends[b]]]


def _codes_batch(bucket: int, codes: np.ndarray) -> pa.RecordBatch:
    """One (bucket, codes as bytes) row."""
    return pa.RecordBatch.from_arrays([pa.array([bucket], pa.int32()),
                                       pa.array([codes.tobytes()], pa.binary())],
                                      names=["bucket", "data"])


def _codes_task(layout: Layout, column: str, with_fit: bool
                ) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """Sessions (key arrays in ``column``, [_fit]) -> (bucket, codes as bytes) rows, a few MB
    each."""
    def task(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        held: dict[int, list[np.ndarray]] = {}
        size = 0

        def ship() -> Iterator[pa.RecordBatch]:
            for b in sorted(held):
                yield _codes_batch(b, np.concatenate(held[b]))
            held.clear()

        for batch in batches:
            lists = batch.column(column)
            offsets = lists.offsets.to_numpy().astype(np.int64)
            keys = lists.values.to_numpy(zero_copy_only=False)
            fit = (batch.column(FIT).to_numpy(zero_copy_only=False).astype(bool) if with_fit
                   else np.zeros(len(offsets) - 1, dtype=bool))
            for b, codes in _by_bucket(*_occurrences(keys, offsets, fit, layout), layout):
                held.setdefault(b, []).append(codes)
                size += codes.nbytes
            if size >= _FLUSH_BYTES:
                yield from ship()
                size = 0
        yield from ship()
    return task


def _presence_task(layout: Layout) -> Callable[[Iterator[pa.RecordBatch]],
                                                Iterator[pa.RecordBatch]]:
    """Item keys -> records of the pair (item, item), which only says "list this item"."""
    def task(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            keys = batch.column(0).to_numpy(zero_copy_only=False).astype(np.int64)
            codes = ((keys * np.int64(layout.span) + keys) << layout.bits) | layout.present
            for b, part in _by_bucket(codes, _bucket_of(keys, layout), layout):
                yield _codes_batch(b, part)
    return task


def _sorted(codes: np.ndarray) -> np.ndarray:
    """np.sort(codes) for non-negative codes, a third faster on millions: a stable radix
    argsort by their top 15 bits (numpy sorts int16 by radix), then each run of equal top bits
    (a few hundred codes, within cache) sorted on its own."""
    if len(codes) < 1 << 16:
        return np.sort(codes)
    top = (codes >> max(int(codes.max()).bit_length() - 15, 0)).astype(np.int16)
    out = codes[np.argsort(top, kind="stable")]
    start = 0
    for end in np.cumsum(np.bincount(top)).tolist():
        if end - start > 1:
            out[start:end].sort()
        start = end
    return out


def aggregate(codes: np.ndarray, layout: Layout, windows: Windows, names: Sequence[str], *,
              chunk_rows: int = CHUNK_ROWS) -> Iterator[tuple[int, int, pa.RecordBatch]]:
    """One bucket's records -> its evidence chunks as (items, forward pairs, record batch):
    per item its partners in key order and the sums ``names`` over their records."""
    codes = _sorted(codes)
    pair = codes >> layout.bits
    slot = codes & ((1 << layout.bits) - 1)
    span = np.int64(layout.span)
    # groups of equal pairs; a presence record's pair (item, item) is a group of its own, which
    # weighs nothing (Layout.weights) and is dropped below
    new = np.r_[True, pair[1:] != pair[:-1]] if len(pair) else np.zeros(0, bool)
    group = np.cumsum(new) - 1
    first = np.flatnonzero(new)
    sums = {name: np.bincount(group, weights=layout.weights(name, windows)[slot],
                              minlength=len(first)).astype(np.float32) for name in names}
    forward = np.bincount(group, weights=slot < 2 * layout.window, minlength=len(first)) > 0
    is_present = slot[first] == layout.present
    present = pair[first[is_present]] // span
    real = ~is_present
    item, other = pair[first[real]] // span, pair[first[real]] % span
    sums = {name: values[real] for name, values in sums.items()}
    forward = forward[real]
    # item is sorted: its distinct values start its runs; ends[i] = rows of keys <= keys[i]
    keys = np.union1d(item[np.r_[True, item[1:] != item[:-1]]] if len(item) else item, present)
    ends = np.searchsorted(item, keys, side="right")
    start_key = 0
    while start_key < len(keys):  # chunks of whole items, about chunk_rows rows each
        row0 = ends[start_key - 1] if start_key else 0
        stop = int(np.searchsorted(ends, row0 + chunk_rows, side="right"))
        stop = max(stop, start_key + 1)
        row1 = ends[stop - 1]
        offsets = pa.array(np.r_[0, ends[start_key:stop] - row0].astype(np.int32))
        cols = [pa.array(keys[start_key:stop].astype(np.int32)),
                pa.ListArray.from_arrays(offsets, pa.array(other[row0:row1].astype(np.int32)))]
        cols += [pa.ListArray.from_arrays(offsets, pa.array(sums[name][row0:row1]))
                 for name in names]
        chunk = pa.RecordBatch.from_arrays(cols, names=[ITEM, OTHER, *names])
        yield stop - start_key, int(forward[row0:row1].sum()), chunk
        start_key = stop


def write_chunk(batch: pa.RecordBatch) -> bytes:
    """A record batch as compressed Arrow IPC bytes (what read_chunk reads)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema, options=_IPC) as writer:
        writer.write_batch(batch)
    return sink.getvalue().to_pybytes()


def read_chunk(data: Any) -> pa.RecordBatch:
    """One evidence chunk (the ``data`` of an evidence row, bytes or an Arrow scalar) back as
    its record batch (zero copy)."""
    buf = data.as_buffer() if hasattr(data, "as_buffer") else pa.py_buffer(data)
    return pa.ipc.open_stream(buf).read_next_batch()


def evidence(sessions: DataFrame, items: DataFrame, *, windows: Windows, span: int,
             buckets: int, features: Sequence[str] = FEATURES, fit: Sequence[str] = (),
             column: str = "keys", chunk_rows: int = CHUNK_ROWS,
             finish: Finish | None = None) -> DataFrame:
    """Co-occurrence evidence of every item with its partners, as EVIDENCE_SCHEMA rows.

    Per item i and partner j (distinct items at most windows.longest positions apart in a
    session, keys < ``span``): ``near`` = occurrences with d <= windows.near (either order),
    ``near_c`` = the same within windows.cooc, ``fwd1`` / ``fwd2`` = sum of 1/d and 1/d^2 over
    the occurrences of j d <= windows.forward positions after i, ``rules`` = sum of 1/d over
    d <= windows.rules; ``features`` names those counted, ``fit`` those also summed over the
    sessions whose ``_fit`` is true (as ``<name>_fit``). ``items`` (item_id keys) get a row
    even without partners. ``column`` names the sessions' key arrays; ``buckets`` (see
    buckets_for) and ``chunk_rows`` size the pieces. ``finish`` (see Finish), when given, runs
    on every chunk before it is stored.

    The pairs are counted in numpy: each task codes its sessions' pair occurrences as int64
    records (Layout) and ships them per bucket of items as a few large binary rows; one
    shuffle brings each bucket's records together, and its task sorts and sums them into
    chunks. Spark moves megabyte blobs, not 45M rows (the row-by-row aggregation of a 10M-event
    log's pair occurrences and the two conversions of 32M partner rows into Arrow for the
    ranking took most of the similar stage). The sums do not depend on the order the records
    arrive in.
    """
    layout = Layout(span=max(span, 1), window=windows.longest, buckets=buckets)
    layout.check()
    names = [f for f in FEATURES if f in features] + [f + FIT for f in FEATURES if f in fit]
    with_fit = bool(fit)
    sessions = sessions.select(column, *([FIT] if with_fit else []))
    codes = sessions.mapInArrow(_codes_task(layout, column, with_fit), _CODES_SCHEMA)
    codes = codes.unionByName(items.select(F.col(ITEM).cast("long"))
                              .mapInArrow(_presence_task(layout), _CODES_SCHEMA))

    def task(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        current, held = None, []

        def flush() -> Iterator[pa.RecordBatch]:
            if held:
                codes = np.concatenate([np.frombuffer(x, dtype=np.int64) for x in held])
                for n_items, pairs, chunk in aggregate(codes, layout, windows, names,
                                                       chunk_rows=chunk_rows):
                    chunk, side = finish(chunk) if finish is not None else (chunk, None)
                    yield pa.RecordBatch.from_arrays(
                        [pa.array([current], pa.int32()), pa.array([n_items], pa.int32()),
                         pa.array([pairs], pa.int64()),
                         pa.array([write_chunk(chunk)], pa.binary()),
                         pa.array([side], pa.binary())],
                        names=["bucket", "items", "pairs", "data", "side"])

        for batch in batches:
            bucket = batch.column("bucket").to_numpy()
            data = batch.column("data")
            for i in range(batch.num_rows):
                if bucket[i] != current:
                    yield from flush()
                    current, held = int(bucket[i]), []
                held.append(data[i].as_buffer())
        yield from flush()

    # one bucket per partition (see _routes); sorted, so a task groups its rows by bucket
    # whatever partition they land in
    route = F.element_at(F.array(*[F.lit(v) for v in _routes(sessions.sparkSession, buckets)]),
                         F.col("bucket") + 1)
    return (codes.repartition(buckets, route).sortWithinPartitions("bucket")
            .mapInArrow(task, EVIDENCE_SCHEMA))


def _routes(spark: SparkSession, n: int) -> list[int]:
    """For each partition b < n an int whose hash partition among n (pmod(hash(v), n), what
    ``repartition(n, column)`` computes) is b, so that repartitioning bucket b's rows by it puts
    them alone in partition b. Hashing the bucket numbers themselves leaves some partitions
    with two buckets and some with none: the tasks with two finish last, one core idle (on a
    10M-event log 25 buckets went to 15 tasks, and the last one ran 3-4 s alone)."""
    v = F.col("id").cast("int")
    found = (spark.range(0, 64 * n, 1, 1).groupBy(F.pmod(F.hash(v), F.lit(n)).alias("p"))
             .agg(F.min(v).alias("v")).collect())
    by_partition = {int(r["p"]): int(r["v"]) for r in found}
    return [by_partition.get(b, b) for b in range(n)]  # 64n draws miss none in practice


def partner_rows(evidence: DataFrame) -> DataFrame:
    """The evidence as one row per (item_id, other_id) with its sums: for reading and tests."""
    sample = evidence.first()
    names = [] if sample is None else read_chunk(sample["data"]).schema.names[2:]
    schema = f"{ITEM} int, {OTHER} int" + "".join(f", {n} double" for n in names)

    def task(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            for data in batch.column("data"):
                chunk = read_chunk(data)
                sizes = np.diff(chunk.column(OTHER).offsets.to_numpy())
                cols = [pa.array(np.repeat(chunk.column(ITEM).to_numpy(), sizes)),
                        chunk.column(OTHER).flatten()]
                cols += [pa.array(chunk.column(n).flatten().to_numpy().astype(np.float64))
                         for n in names]
                yield pa.RecordBatch.from_arrays(cols, names=[ITEM, OTHER, *names])

    return evidence.select("data").mapInArrow(task, schema)


def popularity(counts: DataFrame, *, k: int) -> DataFrame:
    """(rank, rec_item, score): the k + 1 most frequent training items (ties to the smaller id).
    The same list serves every query; where it is used the query item itself is dropped, so k
    remain."""
    top = counts.orderBy(F.col(FREQUENCY).desc(), F.col(ITEM)).limit(k + 1).collect()
    rows = [(rank, r[ITEM], float(r[FREQUENCY])) for rank, r in enumerate(top, 1)]
    schema = counts.schema[ITEM].dataType.simpleString()
    return counts.sparkSession.createDataFrame(
        rows, f"{RANK} int, {REC} {schema}, {SCORE} double")
