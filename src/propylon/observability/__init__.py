"""Metrics, health, monitoring, logs and tracing (docs/observability.md).

On the request path: ``recorder.Recorder.finish`` (counters), the access
log's queue (``logs.writer.LogWriter.access``) and ``tracing.begin``.
Everything else runs at scrape time, in the supervisor, or in a thread.
"""
