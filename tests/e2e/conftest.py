import pytest

from tests.e2e.pipeline import Pipeline


@pytest.fixture
def pipeline(tmp_path):
    pipe = Pipeline(tmp_path).start()
    yield pipe
    pipe.stop()
