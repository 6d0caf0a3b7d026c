"""A webhook receiver process for tests and benchmarks (stdlib only).

Every POST is appended to ``--log`` as one JSON line {"t", "path", "headers", "body", "status"} (flushed at
once, so a test can read it while the receiver runs). The first ``--fail-first`` requests get
``--fail-status`` (with ``Retry-After: --retry-after`` when given); later ones 200. ``--port 0`` picks a free
port and writes it to ``--port-file``. ``--no-log`` skips the log (benchmarks count requests instead, printed
on SIGTERM as "count N"). ``--dedup``: what the README tells a receiver to do with webhooks (delivered at least
once): a 2xx request whose ``X-Delivery-ID`` was already processed is answered 200 again and not processed
(logged with "duplicate": true); the first one of each id is ("duplicate": false).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--log")
    ap.add_argument("--fail-first", type=int, default=0)
    ap.add_argument("--fail-status", type=int, default=500)
    ap.add_argument("--retry-after")
    ap.add_argument("--delay-ms", type=float, default=0.0)
    ap.add_argument("--tls-cert")  # serve HTTPS with this certificate (and --tls-key)
    ap.add_argument("--tls-key")
    ap.add_argument("--dedup", action="store_true", help="process each X-Delivery-ID once (see the docstring)")
    args = ap.parse_args()

    lock = threading.Lock()
    state = {"count": 0}
    processed: set[str] = set()  # --dedup: the delivery ids processed so far
    log = open(args.log, "a", encoding="utf-8") if args.log else None  # noqa: SIM115 (lives as long as the process)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, like a real receiver

        def do_POST(self) -> None:  # noqa: N802 (http.server naming)
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            if len(body) < length:  # the sender died mid-request: nothing was delivered
                self.close_connection = True
                return
            if args.delay_ms:
                time.sleep(args.delay_ms / 1000)
            with lock:
                state["count"] += 1
                n = state["count"]
                status = args.fail_status if n <= args.fail_first else 200
                record = {
                    "t": time.time(),
                    "path": self.path,
                    "headers": dict(self.headers),
                    "body": body.decode("utf-8", "replace"),
                    "status": status,
                }
                if args.dedup and status == 200:
                    delivery_id = self.headers.get("X-Delivery-ID", "")
                    record["duplicate"] = delivery_id in processed
                    processed.add(delivery_id)
                if log is not None:
                    log.write(json.dumps(record) + "\n")
                    log.flush()
            reply = b'{"ok": true}' if status == 200 else b'{"ok": false}'
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            if status != 200 and args.retry_after is not None:
                self.send_header("Retry-After", args.retry_after)
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, format: str, *a: object) -> None:  # noqa: A002 (quiet)
            pass

    class Server(ThreadingHTTPServer):
        request_queue_size = 256  # listen backlog (default 5): many senders connect at once
        daemon_threads = True

    server = Server(("127.0.0.1", args.port), Handler)
    if args.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
        server.socket = ctx.wrap_socket(server.socket, server_side=True)

    def stop(*_: object) -> None:
        print(f"count {state['count']}", flush=True)
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    if args.port_file:
        with open(args.port_file + ".tmp", "w") as f:
            f.write(str(server.server_address[1]))
        os.replace(args.port_file + ".tmp", args.port_file)
    print(f"listening {server.server_address[1]}", flush=True)
    server.serve_forever(poll_interval=0.05)
    if log is not None:
        log.close()
    sys.exit(0)


if __name__ == "__main__":
    main()
