"""Request and reservation ids: random UUIDs (version 4), made without `uuid.uuid4()`.

`str(uuid.uuid4())` builds a `UUID` object to print it, and reads the system's
random source once per id: that read releases the GIL, so a placement handed the
interpreter to the history's writer thread in the middle of its decision (50 µs a
placement under load, measured). Here the same kind of id is written from random
bytes read 4 KiB at a time (256 ids a read), straight into the usual text form.
A child process made by fork starts with an empty pool, never its parent's bytes.
"""

from __future__ import annotations

import os
import threading

# The variant's two bits are 10 (RFC 9562, section 4.1): the 17th hex digit is 8-b.
_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}
_READ = 4096  # bytes of randomness read at once: 256 ids

_lock = threading.Lock()
_pool = b""
_used = 0


def new_id() -> str:
    """A random version-4 UUID in its usual text form, as `str(uuid.uuid4())` gives."""
    global _pool, _used  # noqa: PLW0603  (the pool is this module's one state)
    with _lock:
        if _used >= len(_pool):
            _pool, _used = os.urandom(_READ), 0
        h = _pool[_used : _used + 16].hex()
        _used += 16
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"


def _forget() -> None:
    """In a forked child: the parent's unused bytes are the parent's ids."""
    global _pool, _used
    _pool, _used = b"", 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget)
