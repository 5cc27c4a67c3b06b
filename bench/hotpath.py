"""Pure-Python cost of one proxied request (no sockets): fake transports."""
import time, sys, cProfile, pstats
import uvloop
from propylon.config.models import GatewayConfig
from propylon.server.state import GatewayState
from propylon.server.protocol import ClientConnection
from propylon.server.upstream.connection import UpstreamConnection

class T:
    def __init__(self): self.out = 0
    def write(self, d): self.out += 1
    def is_closing(self): return False
    def pause_reading(self): pass
    def resume_reading(self): pass
    def get_extra_info(self, k, d=None): return ("127.0.0.1", 5555)
    def close(self): pass
    def abort(self): pass

loop = uvloop.new_event_loop()
cfg = GatewayConfig.model_validate({"services": {"up": {"targets": [{"url": "http://127.0.0.1:18181"}]}}, "routes": [{"name": "all", "match": {"path": "/"}, "service": "up"}], **({"cors": {}, "security_headers": {}} if "plugins" in sys.argv else {})})
state = GatewayState(cfg, loop)
pool = state.services["up"].pools[0]
up = UpstreamConnection(pool); up.connection_made(T()); pool.release(up)
client = ClientConnection(state); client.connection_made(T())
REQ = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:18180\r\n\r\n"
BODY = b'{"id":1,"name":"Alice Example","email":"alice@example.com","roles":["user","agent"],"active":true,"created":"2026-01-01T00:00:00Z","tags":["a","b","c"],"note":"benchmark payload of about two hundred bytes"}'
RESP = b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Sun, 22 Nov 2026 05:20:00 GMT\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: keep-alive\r\n\r\n%s" % (len(BODY), BODY)
def one():
    client.data_received(REQ)
    up.data_received(RESP)
import gc
if "freeze" in sys.argv: gc.freeze(); gc.set_threshold(100_000, 50, 100)
N = int(__import__("os").environ.get("N", "100000"))
for _ in range(min(N, 2000) if N else 0): one()
t = time.perf_counter()
for _ in range(N): one()
dt = time.perf_counter() - t
print(f"{dt/N*1e6:.2f} us per request (python only)")
if "prof" in sys.argv:
    cProfile.run("for _ in range(30000): one()", "/tmp/hp/p.out")
    pstats.Stats("/tmp/hp/p.out").sort_stats("tottime").print_stats(25)
