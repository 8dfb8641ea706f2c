from django.urls import path

from training import views

app_name = "training"
urlpatterns = [
    path("projects/<int:project_id>/runs/new/", views.run_new, name="new"),
    path("projects/<int:project_id>/runs/estimate/", views.run_estimate, name="estimate"),
    path("projects/<int:project_id>/runs/recommend/", views.run_recommend, name="recommend"),
    path("projects/<int:project_id>/runs/export/", views.run_config_export, name="export"),
    path("projects/<int:project_id>/runs/import/", views.run_config_import, name="import"),
    path("runs/<int:run_id>/", views.run_detail, name="run"),
    path("runs/<int:run_id>.json", views.run_json, name="run_json"),
    path("runs/<int:run_id>/cancel/", views.run_cancel, name="cancel"),
    path("runs/<int:run_id>/chat/", views.run_chat, name="chat"),
    path(
        "runs/<int:run_id>/checkpoints/<int:step>/delete/",
        views.checkpoint_delete,
        name="checkpoint_delete",
    ),
    path("runs/<int:run_id>/generate/", views.run_generate, name="generate"),
    path("runs/<int:run_id>/model.zip", views.run_model, name="model"),
    path("runs/<int:run_id>/tensorboard.zip", views.run_tensorboard, name="tensorboard"),
]
