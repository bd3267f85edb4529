"""State the patches keep per library object, without attributes of ours on faust's or aiokafka's objects."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class PerObject(Generic[T]):
    """`state_of(consumer)`: that object's state, made by `factory` on first use, gone with the object."""

    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._states: weakref.WeakKeyDictionary[Any, T] = weakref.WeakKeyDictionary()

    def __call__(self, obj: Any) -> T:
        state = self._states.get(obj)
        if state is None:
            state = self._states[obj] = self._factory()
        return state
