"""Deterministic workflow code only: no I/O, no DB, no clock but workflow.now()."""
