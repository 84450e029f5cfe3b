"""A stored notice, as it was sent (the PDF bytes kept with their SHA-256)."""

from fastapi import APIRouter, HTTPException
from fastapi.responses import Response

from core.auth import DbSession
from services.notices.service import documents
from services.notices.views.roles import Broker, RecordId

router = APIRouter()


@router.get("/documents/{document_id}.pdf", include_in_schema=False)
def document(document_id: RecordId, user: Broker, session: DbSession) -> Response:
    found = documents.fetch_document(session, organisation_id=user.organisation_id, document_id=document_id)
    if found is None:
        raise HTTPException(404, "Ce document n'existe pas.")
    return Response(found.content, media_type=found.content_type,
                    headers={"Content-Disposition": f'inline; filename="{found.filename}"',
                             "X-Content-SHA256": found.sha256,
                             "X-Frame-Options": "SAMEORIGIN"})  # shown beside the queue's list, on our own pages
