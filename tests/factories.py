"""Plain factory functions: each makes one saved object with sensible defaults."""

import itertools

from accounts.models import User
from projects.models import Project

_seq = itertools.count(1)
PASSWORD = "a-Long-test-passw0rd"


def make_user(email: str | None = None, **extra) -> User:
    return User.objects.create_user(email or f"user{next(_seq)}@example.com", PASSWORD, **extra)


def make_project(owner: User | None = None, name: str | None = None, **extra) -> Project:
    return Project.objects.create(
        owner=owner or make_user(), name=name or f"project {next(_seq)}", **extra
    )
