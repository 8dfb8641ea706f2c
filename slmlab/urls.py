from allauth.account.decorators import secure_admin_login
from django.contrib import admin
from django.http import HttpRequest, JsonResponse
from django.shortcuts import redirect
from django.urls import include, path

from projects import views as project_views
from slmlab import help as help_pages
from slmlab import ops

# The admin login goes through allauth's login view, so its rate limits apply.
admin.site.login = secure_admin_login(admin.site.login)
admin.site.site_header = "SLM Lab administration"
admin.site.site_title = "SLM Lab admin"


def health(request: HttpRequest) -> JsonResponse:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})


def home(request: HttpRequest):
    return redirect("projects:list" if request.user.is_authenticated else "account_login")


urlpatterns = [
    path("", home, name="home"),
    path("health/", health, name="health"),
    path("ready/", ops.ready, name="ready"),
    path("metrics", ops.metrics, name="metrics"),
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("account/", include("accounts.urls")),
    path("playground/", include("playground.urls")),
    path("v1/", include("playground.api_urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("help/", help_pages.help_index, name="help"),
    path("help/glossary/", help_pages.glossary, name="glossary"),
    path("models/", project_views.model_catalog, name="catalog"),
    path("models/download/", project_views.model_download, name="model_download"),
    path(
        "models/downloads/<int:download_id>/",
        project_views.model_download_status,
        name="model_download_status",
    ),
    path("projects/", include("projects.urls")),
    path("", include("experiments.urls")),
    path("projects/", include("designer.urls")),
    path("", include("training.urls")),
    path("", include("exports.urls")),
    path("", include("evaluations.urls")),
]
