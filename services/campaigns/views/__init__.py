"""Campaigns manager UI (French, server-rendered): one module per screen family."""

from fastapi import APIRouter

from services.campaigns.views import (
    campaigns,
    fines,
    fleet,
    lists,
    mailtemplates,
    orgchart,
    suivi,
    testmail,
    workflowdefs,
)

router = APIRouter()
for module in (fleet, orgchart, fines, campaigns, lists, mailtemplates, suivi, testmail, workflowdefs):
    router.include_router(module.router)
