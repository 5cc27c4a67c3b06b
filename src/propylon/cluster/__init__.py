"""Cluster mode: a supervisor process and the worker processes it runs.

    supervisor.py  owns the listening socket, admin API, signals, reload,
                   memory and request limits
    pool.py        the workers: start, restart (policy.py), replace, spare
    workers.py     the supervisor's handle on one worker process
    worker.py      the worker process itself (``python -m propylon.cluster.worker``)
    channel.py     framed messages between the two, over a socketpair
    policy.py      restart backoff and when to give up
    source.py      the config file, read once: validated config and its sha256

Importing this package imports nothing heavy: workers must start fast.
"""
