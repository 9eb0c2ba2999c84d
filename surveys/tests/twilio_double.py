"""A local double of Twilio's Messages API: a real HTTP server on 127.0.0.1 that checks what the official
client sends (POST /2010-04-01/Accounts/<SID>/Messages.json, Basic auth with the account SID and auth token,
form fields To, From or MessagingServiceSid, Body) and answers the way Twilio does:
201 with the message JSON (`sid` SM…), 400 with Twilio's error JSON (code 21211) for a number marked bad,
and a status the test chooses (429, 503) while `outage` is set.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs


@dataclass
class TwilioDouble:
    server: ThreadingHTTPServer
    account_sid: str
    auth_token: str
    bad_numbers: set[str] = field(default_factory=set)
    outage: int | None = None
    messages: list[dict] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"


def _handler(double: TwilioDouble):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format, *args):  # noqa: A002
            return

        def _json(self, code: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _reject(self, code: int, twilio_code: int, message: str) -> None:
            with double.lock:
                double.rejected.append(message)
            self._json(code, {"code": twilio_code, "message": message, "more_info": "", "status": code})

        def do_POST(self):  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode() if length else ""
            if self.path != f"/2010-04-01/Accounts/{double.account_sid}/Messages.json":
                return self._reject(404, 20404, f"unknown path {self.path}")
            expected = base64.b64encode(f"{double.account_sid}:{double.auth_token}".encode()).decode()
            if self.headers.get("Authorization") != f"Basic {expected}":
                return self._reject(401, 20003, "Authenticate")
            if not (self.headers.get("Content-Type") or "").startswith("application/x-www-form-urlencoded"):
                return self._reject(400, 20001, "not a form")
            form = {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}
            if double.outage:
                return self._json(double.outage, {"code": 20500, "message": "Internal Server Error", "status": 500})
            if not form.get("To") or not form.get("Body") or not (form.get("From") or form.get("MessagingServiceSid")):
                return self._reject(400, 21604, "A 'To', 'Body' and 'From' or 'MessagingServiceSid' are required")
            if form["To"] in double.bad_numbers:
                return self._reject(400, 21211, f"The 'To' number {form['To']} is not a valid phone number.")
            sid = "SM" + secrets.token_hex(16)
            with double.lock:
                double.messages.append({"sid": sid, **form})
            return self._json(
                201,
                {
                    "sid": sid,
                    "account_sid": double.account_sid,
                    "to": form["To"],
                    "from": form.get("From"),
                    "messaging_service_sid": form.get("MessagingServiceSid"),
                    "body": form["Body"],
                    "status": "queued",
                    "num_segments": "1",
                    "direction": "outbound-api",
                    "api_version": "2010-04-01",
                    "uri": f"/2010-04-01/Accounts/{double.account_sid}/Messages/{sid}.json",
                },
            )

    return Handler


def start() -> TwilioDouble:
    server = ThreadingHTTPServer(("127.0.0.1", 0), None)
    double = TwilioDouble(server=server, account_sid="AC" + secrets.token_hex(16), auth_token=secrets.token_hex(16))
    server.RequestHandlerClass = _handler(double)
    threading.Thread(target=server.serve_forever, daemon=True, name="twilio-double").start()
    return double


def stop(double: TwilioDouble) -> None:
    double.server.shutdown()
    double.server.server_close()
