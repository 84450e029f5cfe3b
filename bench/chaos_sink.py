"""The chaos bench's SMTP sink: accepts every message and appends one JSON line per message received.

    python -m bench.chaos_sink --port 2525 --out received.jsonl

A line is written (and flushed) before the 250 reply, so whatever a sender may believe, the file lists every
message the sink took: `{"t": epoch seconds, "mid": Message-ID, "rcpt": [...], "subject": ..., "text": ...}`,
the plain-text body kept only for mails that carry action links (`/liens/`), which the bench then clicks.
Duplicates are counted by the bench, by Message-ID (deterministic per outbox row).
"""

import argparse
import asyncio
import email
import json
import signal
import time
from email.message import EmailMessage
from email.policy import default as default_policy
from typing import IO, Any

from aiosmtpd.smtp import SMTP, Envelope, Session


class Recorder:
    def __init__(self, out: IO[str]) -> None:
        self.out = out

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802 (aiosmtpd)
        content = envelope.content if isinstance(envelope.content, bytes) else str(envelope.content).encode()
        message = email.message_from_bytes(content, policy=default_policy)
        assert isinstance(message, EmailMessage)
        record: dict[str, Any] = {"t": time.time(), "mid": str(message["Message-ID"] or ""),
                                  "rcpt": list(envelope.rcpt_tos), "subject": str(message["Subject"] or "")}
        part = message.get_body(preferencelist=("plain",))
        text = str(part.get_content()) if part is not None else ""
        if "/liens/" in text:  # bodies are base64 or quoted-printable: look once decoded
            record["text"] = text
        self.out.write(json.dumps(record, ensure_ascii=False) + "\n")
        self.out.flush()
        return "250 2.0.0 Message accepted for delivery"


async def serve(port: int, path: str) -> None:
    with open(path, "a", encoding="utf-8") as out:  # noqa: ASYNC230 (once, before serving)
        recorder = Recorder(out)
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: SMTP(recorder, hostname="chaos-sink"), "127.0.0.1", port)
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        print(f"sink listening on 127.0.0.1:{port}", flush=True)
        await stop.wait()
        server.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.out))
