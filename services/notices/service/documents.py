"""The PDF of each notice as sent: stored once with its SHA-256, never changed, fetched by its storage key.

Storing the same notice (entity, number) again returns the row already there, untouched: a retried activity or a
double click cannot replace what a client may already have received. The database refuses any UPDATE of the table.
"""

import hashlib
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from core.db import get_scoped, scoped
from core.logging import log
from services.notices.models import NoticeDocument


class DocumentCorrupted(Exception):
    """The stored bytes no longer match the SHA-256 recorded when they were stored."""


@dataclass(frozen=True)
class Stored:
    document: NoticeDocument
    created: bool  # False: this notice was stored before, the earlier row is returned


def storage_key(legal_entity_id: int, notice_number: int) -> str:
    """How mails and workflows name a notice's PDF (never its bytes)."""
    return f"notices/avis-{legal_entity_id}-{notice_number}.pdf"


def store_notice_pdf(session: Session, *, organisation_id: int, legal_entity_id: int, notice_number: int,
                     pdf: bytes, client_id: int | None = None, receipt_id: int | None = None) -> Stored:
    """Keep a notice's PDF for good; the existing row if this notice was already stored."""
    if not pdf.startswith(b"%PDF"):
        raise ValueError("ce contenu n'est pas un PDF")
    key = storage_key(legal_entity_id, notice_number)
    digest = hashlib.sha256(pdf).hexdigest()
    new_id = session.scalar(insert(NoticeDocument).values(
        organisation_id=organisation_id, legal_entity_id=legal_entity_id, notice_number=notice_number,
        client_id=client_id, receipt_id=receipt_id, storage_key=key, filename=f"avis-echeance-{notice_number}.pdf",
        content_type="application/pdf", content=pdf, sha256=digest, size=len(pdf),
    ).on_conflict_do_nothing().returning(NoticeDocument.id))
    document = session.scalars(select(NoticeDocument).where(NoticeDocument.storage_key == key)).one()
    if new_id is None and document.sha256 != digest:
        log.warning("notices.document_kept", storage_key=key, kept=document.sha256, offered=digest)
    return Stored(document, created=new_id is not None)


def _intact(document: NoticeDocument) -> bool:
    return hashlib.sha256(document.content).hexdigest() == document.sha256


def _checked(document: NoticeDocument | None) -> NoticeDocument | None:
    if document is not None and not _intact(document):
        raise DocumentCorrupted(document.storage_key)
    return document


def fetch_document(session: Session, *, organisation_id: int, document_id: int) -> NoticeDocument | None:
    """One stored notice of the organisation (bytes checked against their SHA-256), or None."""
    return _checked(get_scoped(session, NoticeDocument, document_id, organisation_id))


def fetch_documents(session: Session, *, organisation_id: int,
                    document_ids: list[int]) -> dict[int, NoticeDocument | DocumentCorrupted]:
    """Several stored notices of the organisation in one query, by id, each checked against its SHA-256: one whose
    bytes changed comes as its DocumentCorrupted, so that the others can still be used."""
    out: dict[int, NoticeDocument | DocumentCorrupted] = {}
    for document in session.scalars(scoped(NoticeDocument, organisation_id).where(NoticeDocument.id.in_(document_ids))):
        out[document.id] = document if _intact(document) else DocumentCorrupted(document.storage_key)
    return out


def fetch_by_key(session: Session, *, organisation_id: int, key: str) -> NoticeDocument | None:
    """A stored notice by its storage key (what an outbox attachment names), or None."""
    stmt = scoped(NoticeDocument, organisation_id).where(NoticeDocument.storage_key == key)
    return _checked(session.scalars(stmt).first())
