"""Drives wagate's Meta-compatible surface with pywa, used as its users use it: the only change is
where requests go (an httpx transport that sends graph.facebook.com's requests to wagate).

Environment: WAGATE_URL (http://127.0.0.1:PORT), WAGATE_API_KEY, PHONE_ID, WABA_ID, CUSTOMER
(E.164), INBOUND_WAMID (a customer message to mark read), USER_ID and USER_WAMID (a username
user, known only by a business-scoped user id, and a message of theirs to reply to). Prints one JSON line per call; exits non-zero on
the first surprise.
"""

import hashlib
import json
import os
import struct
import sys
import time
import zlib

import httpx
from pywa import WhatsApp, types
from pywa.errors import WhatsAppError
from pywa.types import templates as t

WAGATE = httpx.URL(os.environ["WAGATE_URL"])


class ToWagate(httpx.HTTPTransport):
    """graph.facebook.com/v23.0/... -> WAGATE/graph/v23.0/..."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host == "graph.facebook.com":
            request.url = request.url.copy_with(
                scheme=WAGATE.scheme, host=WAGATE.host, port=WAGATE.port, path="/graph" + request.url.path
            )
            request.headers["host"] = f"{WAGATE.host}:{WAGATE.port}"
        return super().handle_request(request)


def main() -> None:
    wa = WhatsApp(
        phone_id=os.environ["PHONE_ID"],
        token=os.environ["WAGATE_API_KEY"],
        session=httpx.Client(transport=ToWagate(), timeout=10),
        api_version="23.0",
        waba_id=os.environ["WABA_ID"],
    )
    to = os.environ["CUSTOMER"]
    inbound = os.environ["INBOUND_WAMID"]
    sent = {}

    def record(name, message):
        if not message.id.startswith("wamid."):
            sys.exit(f"{name}: not a wamid: {message.id}")
        sent[name] = message.id
        print(json.dumps({"call": name, "wamid": message.id}), flush=True)

    record("text", wa.send_message(to=to, text="Hello from pywa"))
    record("text with preview", wa.send_message(to=to, text="See https://example.com", preview_url=True))
    record(
        "reply buttons",
        wa.send_message(
            to=to,
            text="Pick one",
            header="Your order",
            footer="Lucky Shrub",
            buttons=[types.Button(title="Track", callback_data="track"), types.Button(title="Cancel", callback_data="cancel")],
        ),
    )
    record(
        "list",
        wa.send_message(
            to=to,
            text="Choose shipping",
            buttons=types.SectionList(
                button_title="Options",
                sections=[
                    types.Section(
                        title="Fast",
                        rows=[types.SectionRow(title="Express", callback_data="express", description="Next day")],
                    ),
                    types.Section(title="Cheap", rows=[types.SectionRow(title="Ground", callback_data="ground")]),
                ],
            ),
        ),
    )
    record("cta url", wa.send_message(to=to, text="Our site", buttons=types.URLButton(title="Visit", url="https://example.com")))
    record("reply", wa.send_message(to=to, text="Answering you", reply_to_message_id=inbound))
    record("image", wa.send_image(to=to, image="https://example.com/aloe.png", caption="An aloe"))
    record("document", wa.send_document(to=to, document="https://example.com/a.pdf", filename="a.pdf", caption="Invoice"))
    record("audio", wa.send_audio(to=to, audio="https://example.com/a.mp3"))
    record("video", wa.send_video(to=to, video="https://example.com/a.mp4", caption="A video"))
    record("sticker", wa.send_sticker(to=to, sticker="https://example.com/s.webp"))
    record("location", wa.send_location(to=to, latitude=37.44, longitude=-122.16, name="Philz", address="101 Forest Ave"))
    record("location request", wa.request_location(to=to, text="Where should we deliver?"))
    record(
        "contact",
        wa.send_contact(
            to=to,
            contact=types.Contact(
                name=types.Contact.Name(formatted_name="Ana Rao", first_name="Ana"),
                phones=[types.Contact.Phone(phone="+16505551234", type="WORK")],
            ),
        ),
    )
    record("reaction", wa.send_reaction(to=to, emoji="\U0001F44D", message_id=inbound))

    # Media: uploaded through the Graph surface, sent by the id it answered, read back, deleted.
    image = png()
    media = wa.upload_media(media=image, mime_type="image/png", filename="dot.png")
    record("image by uploaded id", wa.send_image(to=to, image=media.id, caption="Uploaded through wagate"))
    url = wa.get_media_url(media.id)
    if url.mime_type != "image/png" or url.sha256 != hashlib.sha256(image).hexdigest() or url.file_size != len(image):
        sys.exit(f"media URL answer: {url}")
    if wa.get_media_bytes(url=url.url) != image:
        sys.exit("the downloaded file is not the one uploaded")
    print(json.dumps({"call": "media", "id": media.id, "downloaded": len(image)}), flush=True)

    # A reply to a username user, known only by a business-scoped user id: pywa names them in
    # `recipient`, as Meta's SDKs now do.
    user_reply = wa.send_message(to=os.environ["USER_ID"], text="Replying to you", reply_to_message_id=os.environ["USER_WAMID"])
    print(json.dumps({"call": "reply to a user id", "user_wamid": user_reply.id}), flush=True)

    # Templates: created (Meta reviews it), read back, and listed.
    name = f"pywa_order_{int(time.time() * 1000)}"
    created = wa.create_template(
        template=t.Template(
            name=name,
            category=t.TemplateCategory.UTILITY,
            language=t.TemplateLanguage.ENGLISH_US,
            parameter_format=t.ParamFormat.POSITIONAL,
            components=[t.BodyText("Your order {{1}} has shipped.", "4711")],
        )
    )
    if not created.id or str(created.status) not in ("PENDING", "APPROVED"):
        sys.exit(f"created template: {created}")
    details = wa.get_template(created.id)
    if details.name != name or details.language != t.TemplateLanguage.ENGLISH_US:
        sys.exit(f"template read back: {details}")
    listed = [tpl.name for tpl in wa.get_templates(name=name)]
    if listed != [name]:
        sys.exit(f"templates listed by name: {listed}")
    print(json.dumps({"call": "template", "id": created.id, "name": name}), flush=True)

    if not wa.delete_media(media.id):
        sys.exit("delete media did not succeed")
    print(json.dumps({"call": "delete media", "success": True}), flush=True)

    if not wa.mark_message_as_read(message_id=inbound):
        sys.exit("mark as read did not succeed")
    print(json.dumps({"call": "mark as read", "success": True}), flush=True)
    if not wa.indicate_typing(message_id=inbound):
        sys.exit("typing indicator did not succeed")
    print(json.dumps({"call": "typing indicator", "success": True}), flush=True)

    # Meta's errors arrive as pywa's errors, with Meta's codes.
    try:
        wa.send_message(to=to, text="x" * 4097)
        sys.exit("a 4097-character text was accepted")
    except WhatsAppError as e:
        if e.code != 100:
            sys.exit(f"4097 characters: expected code 100, got {e.code}: {e}")
        print(json.dumps({"call": "too long", "error_code": e.code}), flush=True)
    try:
        WhatsApp(
            phone_id=os.environ["PHONE_ID"],
            token="EAAGnot-a-key",
            session=httpx.Client(transport=ToWagate(), timeout=10),
            api_version="23.0",
        ).send_message(to=to, text="hi")
        sys.exit("a wrong token was accepted")
    except WhatsAppError as e:
        if e.code != 190:
            sys.exit(f"wrong token: expected code 190, got {e.code}: {e}")
        print(json.dumps({"call": "wrong token", "error_code": e.code}), flush=True)

    print(json.dumps({"sent": len(sent)}), flush=True)


def png() -> bytes:
    """A 1×1 PNG, made here so the test carries no binary file."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\x2e\x8b\x57")
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


if __name__ == "__main__":
    main()
