from django.conf import settings
from django.core.checks import Error, Tags, register


@register(Tags.security, deploy=True)
def redis_configured(app_configs, **kwargs):
    if settings.REDIS_URL:
        return []
    return [
        Error(
            "REDIS_URL is not set: the work queue and websockets would run in-process stubs.",
            hint="Set REDIS_URL=redis://host:6379/0 (compose.yaml does).",
            id="slmlab.E001",
        )
    ]


@register(Tags.security, deploy=True)
def secret_key_from_environment(app_configs, **kwargs):
    if settings.SECRET_KEY_FROM_ENV:
        return []
    return [
        Error(
            "SECRET_KEY is not set in the environment (a generated key file is in use).",
            hint="Set SECRET_KEY to a long random string shared by web and worker hosts.",
            id="slmlab.E002",
        )
    ]
