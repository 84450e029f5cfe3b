"""Campaigns business functions: keyword-only, one unit of work each, organisation-scoped."""
