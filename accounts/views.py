"""The user's own account page: what their files take against their storage quota."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


@login_required
def account(request: HttpRequest) -> HttpResponse:
    user = request.user
    used = user.storage_used()
    total = sum(used.values())
    quota = user.storage_quota_bytes
    return render(
        request,
        "account/account.html",
        {
            "storage": [
                {"label": label, "bytes": size, "percent": round(100 * size / quota, 1)}
                for label, size in used.items()
            ],
            "used_bytes": total,
            "quota_bytes": quota,
            "used_percent": min(100, round(100 * total / quota, 1)) if quota else 100,
        },
    )
