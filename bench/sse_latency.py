#!/usr/bin/env python3
"""Relay latency of SSE events: the test server stamps each event with the time it left
(microseconds since the epoch, field `t`); this client notes when each event arrives.
Usage: sse_latency.py URL N  -> prints median and p99 of (arrival - sent) in microseconds."""
import json, socket, ssl, sys, time
from urllib.parse import urlsplit

url, n = sys.argv[1], int(sys.argv[2])
u = urlsplit(url)
sock = socket.create_connection((u.hostname, u.port))
sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
if u.scheme == "https":
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    sock = ctx.wrap_socket(sock, server_hostname=u.hostname)
path = u.path + ("?" + u.query if u.query else "")
sock.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n\r\n".encode())
buf, lat = b"", []
while len(lat) < n:
    data = sock.recv(65536)
    now = time.time_ns() // 1000
    if not data:
        break
    buf += data
    while b"\ndata: " in buf:
        start = buf.index(b"\ndata: ") + 7
        end = buf.find(b"\n", start)
        if end < 0:
            break
        event = json.loads(buf[start:end])
        lat.append(now - event["t"])
        buf = buf[end:]
lat.sort()
if len(lat) < n:
    sys.exit(f"only {len(lat)} of {n} events arrived")
print(lat[len(lat) // 2], lat[min(len(lat) - 1, int(len(lat) * 0.99))])
