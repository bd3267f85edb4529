"""Hand memory the process no longer uses back to the operating system."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc


def release_free_memory() -> None:
    """After a large transient build (the circle index rebuild at 1M circles parses every
    held copy): collect, then ask glibc to return its free heap pages (`malloc_trim`), so
    resident memory shows what is held, not what was once needed. No-op without glibc."""
    gc.collect()
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass
