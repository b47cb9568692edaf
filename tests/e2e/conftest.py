"""The stack the browser tests of the default configuration share (test_web*.py): one start for all of them."""

import pytest

from tests.helpers import fresh_stack


@pytest.fixture(scope="session")
def web_stack(tmp_path_factory):
    s = fresh_stack(tmp_path_factory, "web-stack")
    yield s
    s.stop()
