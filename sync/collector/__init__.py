"""The collector: the service gates upload their scan logs to and fetch documents from.

- :mod:`sync.collector.app`: the HTTP API (FastAPI) of docs/sync-protocol.md
- :mod:`sync.collector.storage`: SQLite or PostgreSQL behind one interface; all the SQL
- :mod:`sync.collector.chain`: what an uploaded batch does to the held hash chain
- :mod:`sync.collector.records`: the wire form of scan records, checked strictly
- :mod:`sync.collector.documents`: checking published documents against the office root key
- :mod:`sync.collector.cli`: ``gate-collector serve | enrol | gates``

See docs/collector.md.
"""
