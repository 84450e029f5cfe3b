"""The common outbox message written directly as bytes: exactly what `core.outbox.build_email(...).as_bytes()` gives
(the `email` package, compat32 policy), at a tenth of its cost.

The `email` package spends most of a campaign mail's build in generic work: folding every header through
`email.header.Header` (a per-character loop for an accented subject), one regex compiled per message to check its
random MIME boundary, policy and charset look-ups. For the message a campaign sends (no attachment, text and
optional HTML bodies in UTF-8, short ASCII headers, a subject of one line) the result is fixed by these rules:

- every body is UTF-8 in base64 (lines of 76), in a `text/plain` or `text/html` part with its three headers;
- a header that fits in 78 columns is written as it is; an accented subject is split into RFC 2047 words by the
  same greedy rule as `Charset.header_encode_lines` (base64 or quoted-printable, whichever is shorter for the whole
  subject), the first word on a line of its own when it does not fit after `Subject: `;
- a multipart message gets a boundary drawn as `Generator._make_boundary` draws it.

Anything else (attachments, a header that needs folding, control characters, empty bodies) returns None and the
caller builds the message with the `email` package. `tests/test_outbox.py` compares both on many messages.
"""

import base64
import random
import sys
from collections.abc import Sequence
from email import base64mime, quoprimime

_MAX_LINE = 78  # compat32's max_line_length
_WORD_CHROME = len("=?utf-8?b??=")  # what an RFC 2047 word adds to its encoded text (RFC2047_CHROME_LEN + charset)
# `Header.encode`'s widths (the first line, then after the continuation space), less the chrome
_FIRST_WORD, _NEXT_WORD = 78 - _WORD_CHROME, 78 - 1 - _WORD_CHROME  # 78: email.header.MAXLINELEN
_QP_LENGTH = [quoprimime.header_length(bytes([octet])) for octet in range(256)]
_BOUNDARY_DIGITS = len(repr(sys.maxsize - 1))
_PART_HEADERS = 'Content-Type: text/%s; charset="utf-8"\nMIME-Version: 1.0\nContent-Transfer-Encoding: base64\n\n'


def _plain(value: str) -> bool:
    """Printable ASCII only: nothing the folding could split or encode."""
    return value.isascii() and value.isprintable()


def _header(name: str, value: str) -> str | None:
    """The header's line when it needs no folding."""
    if not value or not _plain(value) or len(name) + 2 + len(value) > _MAX_LINE:
        return None
    return f"{name}: {value}\n"


def _encoded_words(text: str) -> list[str] | None:
    """`Header(text, "utf-8").encode()` as its list of RFC 2047 words (the same greedy split, computed once)."""
    data = text.encode()
    b64 = base64mime.header_length(data) < quoprimime.header_length(data)
    encode = base64mime.header_encode if b64 else quoprimime.header_encode
    words: list[str] = []
    start, octets, length, limit = 0, 0, 0, _FIRST_WORD
    for index, character in enumerate(text):
        raw = character.encode()
        grown = (octets + len(raw) + 2) // 3 * 4 if b64 else length + sum(_QP_LENGTH[o] for o in raw)
        if grown <= limit:
            octets, length = octets + len(raw), grown
            continue
        if index == start:
            return None  # not even one character fits: left to the `email` package
        words.append(encode(text[start:index].encode(), charset="utf-8"))
        start, limit = index, _NEXT_WORD
        octets = len(raw)
        length = (octets + 2) // 3 * 4 if b64 else sum(_QP_LENGTH[o] for o in raw)
    words.append(encode(text[start:].encode(), charset="utf-8"))
    return words


def _subject(subject: str) -> str | None:
    if not subject or subject.splitlines() != [subject] or not subject.isprintable():
        return None
    if subject.isascii():
        return _header("Subject", subject)
    words = _encoded_words(subject)
    if words is None:
        return None
    # compat32 folds the encoded value again: a first word too long for the line goes to a line of its own.
    first = "Subject: \n " if len("Subject: ") + len(words[0]) > _MAX_LINE else "Subject: "
    return first + "\n ".join(words) + "\n"


def _part(subtype: str, body: str) -> str:
    return _PART_HEADERS % subtype + base64mime.body_encode(body.encode())


def _boundary() -> str:
    return f"{'=' * 15}{random.randrange(sys.maxsize):0{_BOUNDARY_DIGITS}d}=="


def _attachment(content_type: str, filename: str, content: bytes) -> str | None:
    """An `application/*` part as `MIMEApplication` + Content-Disposition write it, or None (another shape)."""
    maintype, _, subtype = content_type.partition("/")
    disposition = f'Content-Disposition: attachment; filename="{filename}"'
    if maintype != "application" or not subtype or not _plain(filename) or '"' in filename or "\\" in filename \
            or len(disposition) > _MAX_LINE or not _plain(subtype):
        return None
    data = base64.encodebytes(content).decode()  # lines of 76, each ended, as the generator writes them
    return (f"Content-Type: {content_type}\nMIME-Version: 1.0\nContent-Transfer-Encoding: base64\n{disposition}\n\n"
            f"{data}")


def message_bytes(*, sender: str, to: str, cc: str | None, reply_to: str | None, subject: str, message_id: str,
                  date: str | None, text: str, html: str | None,
                  attachments: Sequence[tuple[str, str, bytes]] = ()) -> bytes | None:
    """The message (header values as `build_email` sets them: addresses already formatted, the subject as given),
    with `attachments` (content type, file name, bytes), or None when it is not of the common shape. `date` None:
    no Date header."""
    if not text or (html is not None and not html):
        return None
    try:
        lines = [_header("From", sender), _header("To", to), "" if cc is None else _header("Cc", cc),
                 "" if reply_to is None else _header("Reply-To", reply_to), _subject(subject),
                 _header("Message-ID", message_id), "" if date is None else _header("Date", date)]
        if any(line is None for line in lines):
            return None
        headers = "".join(line for line in lines if line)
        if html is None:
            body = _part("plain", text)
        else:
            parts = [_part("plain", text), _part("html", html)]
            boundary = _boundary()
            if "--" + boundary in parts[0] or "--" + boundary in parts[1]:
                return None  # never in base64 text; the `email` package would draw another
            body = (f'Content-Type: multipart/alternative;\n boundary="{boundary}"\nMIME-Version: 1.0\n\n'
                    f"--{boundary}\n{parts[0]}\n--{boundary}\n{parts[1]}\n--{boundary}--\n")
        if not attachments:  # the message's headers after the body's own
            return body.replace("\n\n", "\n" + headers + "\n", 1).encode()
        files = [_attachment(*item) for item in attachments]
        if any(f is None for f in files):
            return None
        outer = _boundary()  # drawn after the inner one, as the generator does
        if "--" + outer in body:
            return None
        return (f'Content-Type: multipart/mixed; boundary="{outer}"\nMIME-Version: 1.0\n{headers}\n--{outer}\n{body}'
                + "".join(f"\n--{outer}\n{f}" for f in files) + f"\n--{outer}--\n").encode()
    except UnicodeEncodeError:  # a lone surrogate: the `email` package decides
        return None
