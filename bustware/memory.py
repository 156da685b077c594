"""The memory policy of an index: how many bytes it may hold, how many it
holds, and its private directory for the computed bytes that do not fit.

The scan, the reference linker and the live compressor each receive the
index's :class:`MemoryPolicy` and count what they hold on it; none of them
needs the index itself for that.
"""

from __future__ import annotations

from .files import make_spill_dir, spill

__all__ = ["MemoryPolicy"]


class MemoryPolicy:
    """Files of up to ``threshold`` bytes are held in memory while the total
    held stays within ``budget``; ``used`` counts what is held."""

    __slots__ = ("__weakref__", "_spill_dir", "budget", "threshold", "used")

    def __init__(self, threshold: int, budget: int) -> None:
        self.threshold = threshold
        self.budget = budget
        #: Bytes held now; whoever holds bytes adds them, whoever lets go of
        #: them takes them off.
        self.used = 0
        self._spill_dir: str | None = None

    def fits(self, size: int) -> bool:
        """Whether ``size`` more bytes may be held."""
        return size <= self.threshold and self.used + size <= self.budget

    def hold_or_spill(self, data: bytes, digest: str) -> tuple[bytes | None, str | None]:
        """Keep computed bytes (rewritten, or compressed from rewritten) in
        memory if the policy allows, else in the private directory: they
        exist nowhere else, and the budget is a promise. Returns
        ``(data, None)`` or ``(None, path)``."""
        if self.fits(len(data)):
            self.used += len(data)
            return data, None
        return None, self.spill(data, digest)

    def spill(self, data: bytes, digest: str) -> str:
        """Write ``data`` to the private directory, named by its digest; the
        directory goes when this policy (so its index) does."""
        if self._spill_dir is None:
            self._spill_dir = make_spill_dir(self)
        return spill(self._spill_dir, data, digest)

    @property
    def spill_dir(self) -> str | None:
        """The private directory of spilled bytes, None until one is."""
        return self._spill_dir
