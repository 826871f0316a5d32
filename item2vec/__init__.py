"""item2vec on Spark: sessionise event logs, train MLlib Word2Vec, publish vectors, neighbours."""

__version__ = "0.1.0"
