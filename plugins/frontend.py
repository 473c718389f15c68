"""The Next.js frontend: the only service users reach (NodePort 30080)."""

from reconciler import services

plugin = services.ServicePlugin(
    name=services.ServiceName("frontend"),
    context="services/frontend",
    dockerfile="services/frontend/Dockerfile",
    image="lumina/frontend",
    values_key="frontend",
    liveness=services.Probe("/api/health", 3000),
    readiness=services.Probe("/api/health", 3000),
    description="Next.js 16 UI; its route handlers call backend and chatbot.",
)
