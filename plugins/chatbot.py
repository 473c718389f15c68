"""The chatbot: an Agents-SDK agent managing a user's todos through MCP tools."""

from reconciler import services

plugin = services.ServicePlugin(
    name=services.ServiceName("chatbot"),
    context="services/chatbot",
    dockerfile="services/chatbot/Dockerfile",
    image="lumina/chatbot",
    values_key="chatbot",
    liveness=services.Probe("/health", 8001),
    readiness=services.Probe("/ready", 8001),
    secrets=(
        services.SecretSpec(
            secret="chatbot-secrets",
            key="OPENAI_API_KEY",
            required=False,
            description="model API key; without it chat is off and says why",
        ),
    ),
    description="FastAPI + OpenAI Agents SDK + MCP; calls the backend as the user.",
)
