from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def _create_user(self, email: str, password: str | None, **extra) -> "User":
        if not email:
            raise ValueError("An email address is required")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email: str, password: str | None = None, **extra) -> "User":
        extra.setdefault("is_staff", False)
        extra.setdefault("is_superuser", False)
        return self._create_user(email, password, **extra)

    def create_superuser(self, email: str, password: str | None = None, **extra) -> "User":
        extra.setdefault("is_staff", True)
        extra.setdefault("is_superuser", True)
        if not extra["is_staff"] or not extra["is_superuser"]:
            raise ValueError("A superuser needs is_staff=True and is_superuser=True")
        return self._create_user(email, password, **extra)


class User(AbstractBaseUser, PermissionsMixin):
    """A lab member, identified by email. Owns projects, datasets, runs and exports."""

    email = models.EmailField(_("email address"), unique=True)
    display_name = models.CharField(_("display name"), max_length=80, blank=True)
    is_staff = models.BooleanField(
        _("staff status"), default=False, help_text=_("Can log into the admin site.")
    )
    is_active = models.BooleanField(_("active"), default=True)
    date_joined = models.DateTimeField(_("date joined"), default=timezone.now)

    # Quotas set by operators in the admin.
    max_running_runs = models.PositiveSmallIntegerField(
        _("max running runs"), default=1, help_text=_("Runs of this user training at once.")
    )
    max_queued_runs = models.PositiveSmallIntegerField(
        _("max queued runs"), default=10, help_text=_("Runs of this user waiting in the queue.")
    )
    storage_quota_mb = models.PositiveIntegerField(
        _("storage quota (MB)"), default=20_000, help_text=_("Datasets, adapters and exports.")
    )
    run_time_limit_hours = models.PositiveSmallIntegerField(
        _("run time limit (hours)"),
        default=24,
        help_text=_("Training time after which a new run stops with a checkpoint."),
    )

    objects = UserManager()

    EMAIL_FIELD = "email"
    USERNAME_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        verbose_name = _("user")
        verbose_name_plural = _("users")

    def __str__(self) -> str:
        return self.email

    def storage_used(self) -> dict[str, int]:
        """Bytes this user's files take on the lab's disk, by kind: what the storage quota
        covers. Each kind is (label, reverse relation, field holding an object's bytes,
        which of them still have their files)."""
        return {
            label: getattr(self, relation)
            .filter(**where)
            .aggregate(total=models.Sum(field))["total"]
            or 0
            for label, relation, field, where in STORAGE_KINDS
        }

    @property
    def storage_quota_bytes(self) -> int:
        return self.storage_quota_mb * 2**20

    def get_short_name(self) -> str:
        return self.display_name or self.email.split("@")[0]

    def get_full_name(self) -> str:
        return self.display_name or self.email


# What counts in a user's storage quota, kept by the apps that store files for users.
STORAGE_KINDS = [
    (_("datasets"), "datasets", "size_bytes", {"file_deleted_at": None}),
    (_("runs (adapters, checkpoints, logs)"), "runs", "disk_bytes", {}),
    (_("exports"), "exports", "size_bytes", {}),
]
