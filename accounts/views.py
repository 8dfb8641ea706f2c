"""The user's own account page: what their files take against their storage quota, and
deleting the account with everything in it."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from accounts import services
from accounts.forms import DeleteAccountForm


@login_required
def account(request: HttpRequest, delete_form: DeleteAccountForm | None = None) -> HttpResponse:
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
            "delete_form": delete_form or DeleteAccountForm(user=user),
            "counts": {
                "projects": user.projects.count(),
                "datasets": user.datasets.count(),
                "runs": user.runs.count(),
            },
        },
        status=400 if delete_form is not None else 200,
    )


@login_required
@require_POST
def account_delete(request: HttpRequest) -> HttpResponse:
    form = DeleteAccountForm(request.POST, user=request.user)
    if not form.is_valid():
        return account(request, delete_form=form)
    services.delete_account(request, request.user)
    messages.success(
        request,
        _(
            "Your account is deleted: its projects, datasets, runs, checkpoints and exports "
            "are being removed from the lab."
        ),
    )
    return redirect("account_login")
