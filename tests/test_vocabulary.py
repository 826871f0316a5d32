from item2vec.vocabulary import build_vocabulary


def _sessions(spark, lists):
    return spark.createDataFrame([(i, items) for i, items in enumerate(lists)],
                                 "session_id long, items array<string>")


def test_index_by_frequency_then_id_and_min_count(spark):
    s = _sessions(spark, [["b", "a", "c"], ["a", "b", "d"], ["c", "a", "e"]])
    rows = build_vocabulary(s, min_count=2, max_vocab=0).orderBy("item_index").collect()
    assert [(r.item_id, r.item_index, r.frequency) for r in rows] == [
        ("a", 0, 3), ("b", 1, 2), ("c", 2, 2)]


def test_max_vocab_keeps_most_frequent(spark):
    s = _sessions(spark, [["b", "a", "c"], ["a", "b", "d"], ["c", "a", "e"]])
    rows = build_vocabulary(s, min_count=1, max_vocab=2).orderBy("item_index").collect()
    assert [r.item_id for r in rows] == ["a", "b"]


def test_schema_types(spark):
    s = _sessions(spark, [["x", "y"]])
    schema = build_vocabulary(s, min_count=1, max_vocab=0).schema
    assert [(f.name, f.dataType.simpleString()) for f in schema.fields] == [
        ("item_id", "string"), ("item_index", "int"), ("frequency", "bigint")]
