"""The FastAPI + SQLite backend: users, todos, and the only owner of the database."""

from reconciler import services

plugin = services.ServicePlugin(
    name=services.ServiceName("backend"),
    context="services/backend",
    dockerfile="services/backend/Dockerfile",
    image="lumina/backend",
    values_key="backend",
    liveness=services.Probe("/api/health", 8000),
    readiness=services.Probe("/api/ready", 8000),
    secrets=(
        services.SecretSpec(
            secret="backend-secrets",
            key="JWT_SECRET_KEY",
            source=services.SecretSource.GENERATED,
            description="signs users' session tokens",
        ),
        services.SecretSpec(
            secret="backend-secrets",
            key="SMTP_PASSWORD",
            required=False,
            description="password of the SMTP account for password-reset mail",
        ),
    ),
    description="FastAPI + SQLModel on SQLite (one replica, Recreate).",
)
