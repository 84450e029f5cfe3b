"""Avis d'échéance screens: the reference data (entités, clients, contrats, quittances), its Excel imports, and the
notices kept for each client."""

from fastapi import APIRouter

from services.notices.views import clients, contracts, documents, entities, home, imports, queue, robot, runs, texts

router = APIRouter()
for module in (home, runs, texts, queue, robot, entities, clients, contracts, imports, documents):
    router.include_router(module.router)
