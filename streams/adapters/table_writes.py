"""Table helpers for faust tables."""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from faust.streams import _current_event


@contextmanager
def for_event(event: Any) -> Iterator[None]:
    """Table writes on behalf of `event` after the stream has moved past it.

    A table finds the partition a key is written to from the stream's current event, which
    is unset once `take_events` has handed out a batch ("Cannot modify table key from outside
    of stream iteration"). Writing a batch's table updates after its effects are stored needs
    each update's own event back in place.
    """
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)
