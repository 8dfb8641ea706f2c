from django.urls import path

from experiments import views

app_name = "experiments"
urlpatterns = [
    path("projects/<int:project_id>/runs/", views.runs_table, name="table"),
    path("projects/<int:project_id>/runs.json", views.project_runs_json, name="project_json"),
    path("projects/<int:project_id>/runs.csv", views.project_runs_csv, name="project_csv"),
    path("runs.json", views.user_runs_json, name="user_json"),
    path("runs.csv", views.user_runs_csv, name="user_csv"),
    path("runs/compare/", views.runs_compare, name="compare"),
    path("runs/<int:run_id>.csv", views.run_csv, name="run_csv"),
]
