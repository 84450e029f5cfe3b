"""Déposes screens: the requester's (demandes, véhicules) and the deposer's extranet (déposes)."""

from fastapi import APIRouter

from services.removals.views import deposer, home, requester

router = APIRouter()
for module in (home, requester, deposer):
    router.include_router(module.router)
