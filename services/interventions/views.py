"""Interventions: manager UI. Screens arrive with the interventions issue (seed 003)."""

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from core.auth import CurrentUser
from core.ui import render_page

router = APIRouter()


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def home(request: Request, user: CurrentUser) -> HTMLResponse:
    return render_page(request, "shell_home.html", user=user)
