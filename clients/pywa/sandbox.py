"""Drives the standalone sandbox (`wagate sandbox`) with pywa as a bot developer would use it
against Meta: the only change is where requests go (graph.facebook.com -> the sandbox). pywa sends
messages, uploads and downloads media, and receives the sandbox's webhooks through its own
signature verifier and update parser.

Environment: SANDBOX_URL (http://127.0.0.1:PORT/sandbox), PHONE_ID, ACCESS_TOKEN, APP_SECRET,
VERIFY_TOKEN, CUSTOMER (digits). Prints one JSON line per step; exits non-zero on the first
surprise.
"""

import json
import os
import queue
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
from pywa import WhatsApp, types, utils
from pywa.errors import TemplateNotExists
from pywa.types.templates import TemplateLanguage

SANDBOX = httpx.URL(os.environ["SANDBOX_URL"])
PHONE_ID = os.environ["PHONE_ID"]
CUSTOMER = os.environ["CUSTOMER"]
PATIENCE = 15


class ToSandbox(httpx.HTTPTransport):
    """graph.facebook.com/v23.0/... -> SANDBOX/v23.0/...; other URLs (media downloads) as they are."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host == "graph.facebook.com":
            request.url = request.url.copy_with(
                scheme=SANDBOX.scheme, host=SANDBOX.host, port=SANDBOX.port, path=SANDBOX.path + request.url.path
            )
            request.headers["host"] = f"{SANDBOX.host}:{SANDBOX.port}"
        return super().handle_request(request)


def fail(why: str) -> None:
    sys.exit(f"FAIL: {why}")


def step(name: str, **facts) -> None:
    print(json.dumps({"step": name, **facts}), flush=True)


wa = WhatsApp(
    phone_id=PHONE_ID,
    token=os.environ["ACCESS_TOKEN"],
    session=httpx.Client(transport=ToSandbox(), timeout=10),
    api_version="23.0",
    server=None,
    verify_token=os.environ["VERIFY_TOKEN"],
    app_secret=os.environ["APP_SECRET"],
    validate_updates=True,
)
# The same bot with the wrong app secret: its verifier must refuse the sandbox's signatures.
impostor = WhatsApp(
    phone_id=PHONE_ID,
    token="unused",
    server=None,
    verify_token="unused",
    app_secret="not-the-app-secret",
    validate_updates=True,
)

messages: "queue.Queue[types.Message]" = queue.Queue()
statuses: "queue.Queue[types.MessageStatus]" = queue.Queue()
refused_by_impostor = []


@wa.on_message()
def on_message(_: WhatsApp, msg: types.Message) -> None:
    messages.put(msg)


@wa.on_message_status()
def on_status(_: WhatsApp, status: types.MessageStatus) -> None:
    statuses.put(status)


class Webhook(BaseHTTPRequestHandler):
    """The bot's webhook endpoint, as pywa's docs show for a custom server."""

    def do_GET(self) -> None:
        params = httpx.URL(self.path).params
        body, code = wa.webhook_challenge_handler(vt=params.get(utils.HUB_VT), ch=params.get(utils.HUB_CH))
        self.answer(code, body or "")

    def do_POST(self) -> None:
        update = self.rfile.read(int(self.headers["content-length"]))
        signature = self.headers.get(utils.HUB_SIG)
        if impostor.webhook_update_validator(update, signature) is not None:
            refused_by_impostor.append(signature)
        error = wa.webhook_update_validator(update, signature)
        if error is not None:
            fail(f"pywa refused the sandbox's signature {signature}: {error}")
        body, code = wa.webhook_update_handler(update)
        self.answer(code, body)

    def answer(self, code: int, body: str) -> None:
        self.send_response(code)
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *_) -> None:
        pass


def control(method: str, path: str, body=None) -> dict:
    resp = httpx.request(method, f"{SANDBOX}/{path}", json=body, timeout=10)
    if resp.status_code >= 300:
        fail(f"{method} {path}: {resp.status_code} {resp.text}")
    return resp.json() if resp.content else {}


def wait(q: "queue.Queue", what: str, match):
    deadline = time.monotonic() + PATIENCE
    while time.monotonic() < deadline:
        try:
            item = q.get(timeout=0.2)
        except queue.Empty:
            continue
        if match(item):
            return item
    fail(f"timed out waiting for {what}")


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Webhook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    control("PUT", "control/webhook", {"url": f"http://127.0.0.1:{server.server_port}/"})

    # The customer writes (non-ASCII, escaped and signed as Meta does); pywa verifies and parses it.
    text = "Olá, äöå 😀"
    inbound = control(
        "POST",
        "simulate/inbound",
        {"phone_number_id": PHONE_ID, "from": CUSTOMER, "name": "Ana", "message": {"type": "text", "text": {"body": text}}},
    )
    msg = wait(messages, "the customer's message", lambda m: m.id == inbound["wamid"])
    if msg.text != text or msg.from_user.wa_id != CUSTOMER or msg.from_user.name != "Ana":
        fail(f"pywa parsed {msg.text!r} from {msg.from_user}")
    if msg.from_user.country_code != "US" or not msg.from_user.bsuid:
        fail(f"pywa found no business-scoped user id: {msg.from_user}")
    step("inbound verified and parsed", wamid=msg.id)

    # Sends, and the statuses that follow, parsed by pywa.
    sent = wa.send_message(to=CUSTOMER, text="Hello from pywa", reply_to_message_id=msg.id)
    for status in ("sent", "delivered", "read"):
        wait(statuses, f"{status} of {sent.id}", lambda s: s.id == sent.id and s.status.value == status)
    step("text sent, statuses received", wamid=sent.id)
    wa.mark_message_as_read(message_id=msg.id)
    step("marked read")

    # Media: upload, look up, download with the token, send by id.
    png = b"\x89PNG\r\n\x1a\n" + b"pywa sandbox image" * 10
    uploaded = wa.upload_media(media=png, mime_type="image/png", filename="pixel.png")
    url = wa.get_media_url(uploaded.id)
    if url.mime_type != "image/png" or int(url.file_size) != len(png):
        fail(f"media lookup: {url}")
    downloaded = wa.get_media_bytes(url.url)
    if downloaded != png:
        fail("the downloaded bytes differ from the uploaded ones")
    step("media uploaded and downloaded", media_id=uploaded.id, bytes=len(downloaded))
    image = wa.send_image(to=CUSTOMER, image=uploaded.id, caption="Your pixel")
    wait(statuses, f"delivered of {image.id}", lambda s: s.id == image.id and s.status.value == "delivered")
    step("image sent by media id", wamid=image.id)

    # A template from Meta's starter set, then a refusal in Meta's shape.
    hello = wa.send_template(to=CUSTOMER, name="hello_world", language=TemplateLanguage.ENGLISH_US)
    step("template sent", wamid=hello.id)
    try:
        wa.send_template(to=CUSTOMER, name="no_such_template", language=TemplateLanguage.ENGLISH_US)
        fail("an unknown template was accepted")
    except TemplateNotExists as e:  # pywa's own class for Meta's 132001
        step("unknown template refused", code=e.code)

    if not refused_by_impostor:
        fail("a verifier with the wrong app secret accepted the sandbox's signatures")
    step("wrong app secret refused", count=len(refused_by_impostor))
    server.shutdown()


if __name__ == "__main__":
    main()
