"""TCP machinery of the asyncio runtime.

Pure protocol logic (no I/O): :mod:`.framing`, :mod:`.wire`, :mod:`.session`,
:mod:`.assembly`. I/O: :mod:`.messaging` (asyncio, small messages),
:mod:`.transfers` (asyncio control plane of bulk transfers) and
:mod:`.streams` (blocking bulk-data I/O in worker threads).
"""
