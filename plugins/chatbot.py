"""The chatbot: an Agents-SDK agent managing a user's todos through MCP tools."""

from reconciler import plugin_api

plugin = plugin_api.ServicePlugin(
    name=plugin_api.ServiceName("chatbot"),
    context="services/chatbot",
    dockerfile="services/chatbot/Dockerfile",
    image="lumina/chatbot",
    values_key="chatbot",
    liveness=plugin_api.Probe("/health", 8001),
    readiness=plugin_api.Probe("/ready", 8001),
    secrets=(
        plugin_api.SecretSpec(
            secret="chatbot-secrets",
            key="OPENAI_API_KEY",
            required=False,
            description="model API key; without it chat is off and says why",
        ),
    ),
    description="FastAPI + OpenAI Agents SDK + MCP; calls the backend as the user.",
)
