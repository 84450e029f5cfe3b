"""Campaigns manager UI (French, server-rendered): one module per screen family."""

from fastapi import APIRouter

from services.campaigns.views import campaigns, fleet, lists, mailtemplates, testmail

router = APIRouter()
for module in (fleet, campaigns, lists, mailtemplates, testmail):
    router.include_router(module.router)
