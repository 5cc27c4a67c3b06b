"""The admin API (aiohttp), served by the supervisor: status, reload, stop.

app.py       builds the application and runs its listener
auth.py      bearer-token middleware
problems.py  problem+json errors
control.py   the protocol the supervisor implements for the routes
client.py    the HTTP client the CLI (``propylon status|reload|stop``) uses
routes/      one module per group of endpoints, each with a ``routes`` table
"""
