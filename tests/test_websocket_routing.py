"""Websocket paths that no page follows are refused cleanly, for anyone."""

import logging

import pytest

from slmlab.consumers import NOT_FOUND
from tests import websockets
from tests.factories import make_user

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("path", ["/ws/runs/abc/", "/ws/nope/", "/ws/datasets/1/extra/", "/"])
def test_it_refuses_an_unknown_path_like_a_missing_object(path, caplog):
    user = make_user()
    with caplog.at_level(logging.WARNING):
        signed_in = websockets.connect(path, user)
        anonymous = websockets.connect(path, None)
    assert signed_in == (False, NOT_FOUND, None)
    assert anonymous == (False, NOT_FOUND, None)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
