"""Training throughput and quality: MLlib Word2Vec (the project's corpus + train code) vs gensim.

    .venv/bin/python -m bench.bench_train                          # 50k items, ~1.2M tokens
    .venv/bin/python -m bench.bench_train --events 3000000 --partitions 1,2,4

Both train on the identical sentence list: the project's sessions -> vocabulary -> corpus
(copies 1, no subsampling, sequence mode) on the earlier 80 % of sessions; the corpus is
collected once for gensim (the benchmark collects, the job never does). Settings match MLlib:
skip-gram, hierarchical softmax (hs=1, negative=0), same dim / window / epochs / learning rate,
no subsampling, min_count 1 on the already-filtered corpus, gensim workers = cores.
Throughput = corpus tokens x epochs / training seconds (MLlib: fit, which also counts the
vocabulary, + vectors to numpy; gensim: build_vocab() + train()). Quality = HR@10 on
held-out next-item pairs (latest 20 % of sessions, previous item -> next item), exact cosine
top-10 from both models, computed identically.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np

from bench import datagen

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def hr_at(matrix: np.ndarray, prev: np.ndarray, nxt: np.ndarray, k: int = 10) -> float:
    """Share of (prev, next) pairs whose next item is among prev's k nearest (cosine)."""
    from item2vec.similar import normalize, top_k_block

    m = normalize(matrix)
    queries = np.unique(prev)
    pos = {}
    for s in range(0, len(queries), 512):
        qb = queries[s:s + 512].astype(np.int32)
        idx, _ = top_k_block(qb, m[qb], m, k)
        for qi, row in zip(qb, idx, strict=True):
            pos[int(qi)] = set(row.tolist())
    hits = sum(1 for p, n in zip(prev.tolist(), nxt.tolist(), strict=True)
               if n >= 0 and n in pos[p])
    return hits / max(1, len(prev))


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=1_400_000)
    p.add_argument("--items", type=int, default=50_000)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--window", type=int, default=5)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--min-count", type=int, default=5)
    p.add_argument("--partitions", default="1,2", help="MLlib numPartitions to compare")
    p.add_argument("--reps", type=int, default=1, help="repetitions of each trainer")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    p.add_argument("--master", default="local[2]")
    p.add_argument("--tag", default="", help="suffix of the result file (train<tag>.json)")
    a = p.parse_args(argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PYSPARK_SUBMIT_ARGS", "--driver-memory 3g pyspark-shell")

    from gensim.models import Word2Vec as GensimW2V
    from pyspark import StorageLevel

    from item2vec import corpus as corpus_mod
    from item2vec import evaluate as eval_mod
    from item2vec import events as events_mod
    from item2vec import sessions as sessions_mod
    from item2vec import train as train_mod
    from item2vec import vocabulary as vocab_mod
    from item2vec.config import load
    from item2vec.sparkenv import get_spark

    cfg = load(None, [])
    spark, _ = get_spark("bench-train", log_level="ERROR", master=a.master, shuffle_partitions=0)
    data = datagen.dataset(a.events, a.items)
    raw = events_mod.read_events(spark, str(data / "events"), fmt="parquet")
    i = cfg.input
    events = events_mod.canonical_events(raw, user_col=i.user_col, item_col=i.item_col,
                                         time_col=i.time_col, event_type_col=i.event_type_col,
                                         event_types=i.event_types, id_type="string",
                                         time_unit=i.time_unit, time_zone=i.time_zone)
    s = cfg.session
    sessions = sessions_mod.sessionize(events, gap_minutes=s.gap_minutes,
                                       dedupe_consecutive=s.dedupe_consecutive,
                                       min_length=s.min_length, max_length=s.max_length,
                                       long_policy=s.long_policy).persist()
    train, test, _ = eval_mod.split_by_start(sessions, fraction=0.2)
    test_pairs, _ = eval_mod.sample_pairs(eval_mod.session_pairs(test), max_pairs=100_000,
                                          seed=42)
    vocab = vocab_mod.build_vocabulary(train, min_count=a.min_count, max_vocab=0).persist()
    vsize = vocab.count()
    sentences = corpus_mod.build_corpus(train, vocab, subsample=0.0, copies=1,
                                        mode="sequence", min_sentence_length=2, seed=42)
    sentences = sentences.persist(StorageLevel.MEMORY_AND_DISK)
    corpus = [list(r) for r in sentences.toArrow().column(corpus_mod.SENTENCE).to_pylist()]
    tokens = sum(len(x) for x in corpus)
    index_of = {r[0]: r[1] for r in vocab.select(events_mod.ITEM, vocab_mod.INDEX).collect()}
    pairs = test_pairs.select(eval_mod.PREV, eval_mod.NEXT).toArrow()
    prev_ids, next_ids = pairs.column(0).to_pylist(), pairs.column(1).to_pylist()
    keep = [i for i, x in enumerate(prev_ids) if x in index_of]
    prev = np.array([index_of[prev_ids[i]] for i in keep], dtype=np.int64)
    nxt = np.array([index_of.get(next_ids[i], -1) for i in keep], dtype=np.int64)
    print(f"corpus: {len(corpus):,} sentences, {tokens:,} tokens, vocabulary {vsize:,}; "
          f"holdout pairs {len(prev):,} (prev item in vocabulary); dim {a.dim} window "
          f"{a.window} epochs {a.epochs}", flush=True)

    results: dict[str, dict] = {}

    def record(name: str, secs: list[float], matrix: np.ndarray) -> None:
        med = statistics.median(secs)
        results[name] = {"seconds": med, "all_s": secs, "tokens_per_s": tokens * a.epochs / med,
                         "hr@10": hr_at(matrix, prev, nxt)}
        print(f"{name}: {med:.1f}s, {results[name]['tokens_per_s']:,.0f} tokens/s, HR@10 "
              f"{results[name]['hr@10']:.4f}", flush=True)

    for _rep in range(a.reps):
        for npart in [int(x) for x in a.partitions.split(",")]:
            name = f"mllib np={npart}"
            t0 = time.perf_counter()
            vecs = train_mod.train_vectors(sentences, vocab_size=vsize, vector_size=a.dim,
                                           window=a.window, iterations=a.epochs, step_size=0.025,
                                           num_partitions=npart, seed=42,
                                           max_sentence_length=1000)
            matrix, _ = train_mod.to_matrix(vecs, vsize)
            dt_ = time.perf_counter() - t0
            prev_s = results.get(name, {}).get("all_s", [])
            record(name, [*prev_s, dt_], matrix)
        model = GensimW2V(vector_size=a.dim, window=a.window, min_count=1, sg=1, hs=1,
                          negative=0, sample=0, alpha=0.025, min_alpha=0.0001, seed=42,
                          workers=a.workers)
        t0 = time.perf_counter()  # like MLlib's fit, which counts its own vocabulary
        model.build_vocab(corpus)
        model.train(corpus, total_examples=len(corpus), epochs=a.epochs)
        dt_ = time.perf_counter() - t0
        matrix = np.zeros((vsize, a.dim), dtype=np.float32)
        for w, i in model.wv.key_to_index.items():
            matrix[int(w)] = model.wv.vectors[i]
        name = f"gensim workers={a.workers}"
        record(name, [*results.get(name, {}).get("all_s", []), dt_], matrix)

    g = results[f"gensim workers={a.workers}"]
    print(f"\n{'trainer':<22}{'seconds':>9}{'tokens/s':>12}{'x gensim':>10}{'HR@10':>8}"
          f"{'HR vs gensim':>14}")
    for name, r in results.items():
        print(f"{name:<22}{r['seconds']:>9.1f}{r['tokens_per_s']:>12,.0f}"
              f"{r['tokens_per_s'] / g['tokens_per_s']:>10.2f}{r['hr@10']:>8.4f}"
              f"{r['hr@10'] - g['hr@10']:>+14.4f}")
    out = {"tokens": tokens, "sentences": len(corpus), "vocabulary": vsize,
           "holdout_pairs": len(prev), "dim": a.dim, "window": a.window, "epochs": a.epochs,
           "workers": a.workers, "results": results}
    (RESULTS / f"train{a.tag}.json").write_text(json.dumps(out, indent=2))
    spark.stop()
    return out


if __name__ == "__main__":
    main()
