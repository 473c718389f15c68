"""The Next.js frontend: the only service users reach (NodePort 30080)."""

from reconciler import plugin_api

plugin = plugin_api.ServicePlugin(
    name=plugin_api.ServiceName("frontend"),
    context="services/frontend",
    dockerfile="services/frontend/Dockerfile",
    image="lumina/frontend",
    values_key="frontend",
    liveness=plugin_api.Probe("/api/health", 3000),
    readiness=plugin_api.Probe("/api/health", 3000),
    public=True,
    description="Next.js 16 UI; its route handlers call backend and chatbot.",
)
