"""A stand-in for a cloud's instance-metadata server on 127.0.0.1, for cluster/spot_drain.py: the
node-script tests and the elastic slow test announce spot reclaims through it."""

from __future__ import annotations

import datetime as dt
import http.server
import json
import threading


class Metadata:
    """A stand-in instance-metadata server: ``routes[path] = (status, body)``, changeable while it runs;
    records every request's method, path and headers (names in lower case)."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, str]] = {}
        self.seen: list[tuple[str, str, dict]] = []
        meta = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self) -> None:
                meta.seen.append((self.command, self.path, {k.lower(): v for k, v in self.headers.items()}))
                status, body = meta.routes.get(self.path.split("?")[0], (404, ""))
                self.send_response(status)
                self.end_headers()
                self.wfile.write(body.encode())

            do_GET = do_PUT = _answer

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def aws_notice_in(seconds: float) -> str:
    """The body EC2 serves at ``/latest/meta-data/spot/instance-action`` once a reclaim is scheduled."""
    when = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=seconds)
    return json.dumps({"action": "terminate", "time": when.strftime("%Y-%m-%dT%H:%M:%SZ")})
