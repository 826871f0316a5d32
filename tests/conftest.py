"""One SparkSession for the whole suite, built like the job's (item2vec.sparkenv, TEST_CONF)."""

from __future__ import annotations

import pytest

from item2vec import sparkenv


@pytest.fixture(scope="session")
def spark():
    session = sparkenv.new_session("item2vec-tests", conf=sparkenv.TEST_CONF)
    yield session
    session.stop()
