"""A memory cache bounded by bytes, least recently used out first: what a
replica keeps of the objects it fetched from the shared store."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

__all__ = ["ByteLRU"]


class ByteLRU:
    """Values by key, each counted with the size given, at most ``limit``
    bytes in all; putting more drops the least recently used. A value
    larger than ``limit`` is not kept. Safe to use from many threads."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._items: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: Hashable) -> Any:
        """The value of ``key`` (now the most recently used), or None."""
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            self._items.move_to_end(key)
            return item[0]

    def put(self, key: Hashable, value: Any, size: int) -> bool:
        """Keep ``value``; False if it is larger than the whole cache."""
        if size > self.limit:
            return False
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self.used -= old[1]
            self._items[key] = (value, size)
            self.used += size
            while self.used > self.limit:
                _key, (_value, dropped) = self._items.popitem(last=False)
                self.used -= dropped
        return True

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self.used = 0
