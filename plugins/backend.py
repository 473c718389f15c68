"""The FastAPI + SQLite backend: users, todos, and the only owner of the database.

Its database is backed up online (``python -m app.backup`` in the running pod, see
``services/backend/app/backup.py``) before every upgrade that restarts the pod, into
``/data/backups`` on the same volume; ``lumina-reconcile db backups|restore`` lists and
restores those backups.
"""

import json

from reconciler import plugin_api

_BACKUP = ("python", "-m", "app.backup", "--json")
#: Backups kept on the volume; each is a full copy of the database.
KEEP = 5


def back_up_before_upgrade(service: plugin_api.UpgradingService) -> plugin_api.Prepared | str:
    """Back the database up in the pod that still serves it; name the file made.

    The label names the upgrade: the release revision whose data this is, and the
    image tag about to replace it (``rev12-before-3f9a2c1d0e4b``).
    """
    tag = service.image.rpartition(":")[2][:12]
    label = f"rev{service.revision}-before-{tag}" if service.revision else f"before-{tag}"
    try:
        out = service.run([*_BACKUP, "create", "--label", label, "--keep", str(KEEP)], timeout=300)
    except plugin_api.PodCommandError as exc:
        if exc.exit_code == 1 and "No module named app.backup" in exc.output:
            # Only the upgrade that brings backups in meets this; refusing it would
            # keep backups out for good.
            return f"not backed up: the running image ({service.pod}) predates app.backup"
        raise
    made = json.loads(out)
    return plugin_api.Prepared(
        f"backed up the database to {made['path']} ({made['size']} bytes, integrity ok)",
        backup=str(made["path"]),
    )


#: The new image starts once on a copy of the backup just made, migrating it and
#: answering /api/ready, before the running pod is stopped for it. No prepare step:
#: the app's own start copies the backup LUMINA_TRIAL_BACKUP names into the empty
#: /trial (``app.main._copy_trial_data``), a container start sooner than an init step.
TRIAL = plugin_api.TrialStart(
    data_volume="data",
    scratch_path="/trial",
    env={"DATABASE_URL": "sqlite:////trial/lumina.db"},
    timeout_seconds=120.0,
)


plugin = plugin_api.ServicePlugin(
    name=plugin_api.ServiceName("backend"),
    context="services/backend",
    dockerfile="services/backend/Dockerfile",
    image="lumina/backend",
    values_key="backend",
    liveness=plugin_api.Probe("/api/health", 8000),
    readiness=plugin_api.Probe("/api/ready", 8000),
    secrets=(
        plugin_api.SecretSpec(
            secret="backend-secrets",
            key="JWT_SECRET_KEY",
            source=plugin_api.SecretSource.GENERATED,
            description="signs users' session tokens",
        ),
        plugin_api.SecretSpec(
            secret="backend-secrets",
            key="SMTP_PASSWORD",
            required=False,
            description="password of the SMTP account for password-reset mail",
        ),
    ),
    pre_upgrade=back_up_before_upgrade,
    trial_start=TRIAL,
    database=plugin_api.DatabaseCommands(
        list=(*_BACKUP, "list"),
        restore=(*_BACKUP, "restore"),
        revert=(*_BACKUP, "revert"),
        export=(*_BACKUP, "export"),
    ),
    description="FastAPI + SQLModel on SQLite (one replica, Recreate).",
)
