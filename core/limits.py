"""Limits for every service: a request-body cap (uploads are refused before they fill a temporary file), and the
refusal of a rate-limited request (`RateLimited`, e.g. «Mot de passe oublié ?», `core.passwordreset`)."""

from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_BODY_BYTES = 25 * 1024 * 1024
TOO_LARGE = b"Fichier ou formulaire trop volumineux (25 Mo au maximum)."


class BodySizeLimit:
    """Pure ASGI middleware: a Content-Length over the cap is answered 413 at once; a body without one
    (chunked) is counted as it streams and cut at the cap."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await _refuse(send)
            return
        seen = 0
        refused = answered = False

        async def counted() -> Message:
            nonlocal seen, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                refused = True  # stop reading; whatever the app answers becomes our 413
                return {"type": "http.disconnect"}
            return message

        async def guarded(message: Message) -> None:
            nonlocal answered
            if not refused:
                await send(message)
            elif not answered:
                answered = True
                await _refuse(send)

        try:
            await self.app(scope, counted, guarded)
        except Exception:
            if not refused:
                raise
        if refused and not answered:
            await _refuse(send)


async def _refuse(send: Send) -> None:
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": TOO_LARGE})


class RateLimited(Exception):
    """Too many requests of one kind (counted in the database, so across every process): answered 429."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
