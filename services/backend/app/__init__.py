"""Lumina Todo backend: users, JWT auth and per-user todos over SQLite (FastAPI + SQLModel)."""
