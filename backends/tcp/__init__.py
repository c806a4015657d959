"""TCP machinery of the asyncio runtime.

Pure protocol logic (no I/O): :mod:`.framing`, :mod:`.wire`, :mod:`.session`,
:mod:`.assembly`. I/O: :mod:`.messaging` (asyncio, small messages),
:mod:`.records` (record streams, ``open_stream``: set up in a worker thread,
then driven from the event loop through :mod:`.loopsocket`),
:mod:`.transfers` (asyncio control plane of bulk transfers) and
:mod:`.streams` (blocking bulk-data I/O in worker threads, and the connect,
accept, congestion-control and checksum helpers both bulk paths share).
"""
