"""Déposes screens: the requester's (demandes, véhicules) and the deposer's extranet (déposes)."""

from fastapi import APIRouter

from services.removals.views import deposer, home, requester, tracking

router = APIRouter()
for module in (home, requester, tracking, deposer):
    router.include_router(module.router)
