from django.urls import path

from evaluations import views

app_name = "evaluations"
urlpatterns = [
    path("runs/<int:run_id>/evaluations/new/", views.evaluation_new, name="new"),
    path(
        "projects/<int:project_id>/evaluations/new/",
        views.store_evaluation_new,
        name="store_new",
    ),
    path("evaluations/<int:evaluation_id>/", views.evaluation_detail, name="detail"),
    path("evaluations/<int:evaluation_id>.json", views.evaluation_json, name="json"),
    path("evaluations/<int:evaluation_id>.csv", views.evaluation_csv, name="csv"),
    path("evaluations/<int:evaluation_id>/cancel/", views.evaluation_cancel, name="cancel"),
]
