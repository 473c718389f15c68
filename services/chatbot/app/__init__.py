"""Lumina chatbot service: FastAPI app (`app.main:app`), agent, MCP todo tools."""
