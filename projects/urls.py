from django.urls import path

from projects import (
    dataset_views,
    generation_views,
    hub_views,
    synthetic_views,
    upload_views,
    views,
)

app_name = "projects"
urlpatterns = [
    path("", views.project_list, name="list"),
    path("new/", views.project_create, name="create"),
    path("<int:project_id>/", views.project_detail, name="detail"),
    path("<int:project_id>/rename/", views.project_rename, name="rename"),
    path("<int:project_id>/delete/", views.project_delete, name="delete"),
    path("<int:project_id>/datasets/upload/", views.dataset_upload, name="dataset_upload"),
    path("<int:project_id>/datasets/sample/", views.dataset_sample, name="dataset_sample"),
    path(
        "<int:project_id>/datasets/generate/",
        synthetic_views.synthetic_dataset,
        name="dataset_synthetic",
    ),
    path(
        "<int:project_id>/datasets/generate/model/",
        generation_views.model_dataset,
        name="dataset_from_model",
    ),
    path(
        "<int:project_id>/datasets/generate/model/<int:generation_id>/",
        generation_views.generation_status,
        name="generation_status",
    ),
    path(
        "<int:project_id>/datasets/generate/model/<int:generation_id>/cancel/",
        generation_views.generation_cancel,
        name="generation_cancel",
    ),
    path("<int:project_id>/datasets/hub/", hub_views.hub_import, name="hub_import"),
    path(
        "<int:project_id>/datasets/hub/<int:import_id>/",
        hub_views.hub_import_status,
        name="hub_import_status",
    ),
    path(
        "<int:project_id>/datasets/hub/<int:import_id>/cancel/",
        hub_views.hub_import_cancel,
        name="hub_import_cancel",
    ),
    path("<int:project_id>/uploads/", upload_views.upload_start, name="upload_start"),
    path("<int:project_id>/uploads/<int:upload_id>/", upload_views.upload_piece, name="upload"),
    path(
        "<int:project_id>/uploads/<int:upload_id>/finish/",
        upload_views.upload_finish,
        name="upload_finish",
    ),
    path(
        "<int:project_id>/datasets/<int:dataset_id>/split/upload/",
        upload_views.validation_upload_start,
        name="validation_upload_start",
    ),
    path(
        "<int:project_id>/datasets/<int:dataset_id>/replace/upload/",
        upload_views.replacement_upload_start,
        name="replacement_upload_start",
    ),
    path(
        "<int:project_id>/datasets/<int:dataset_id>/", dataset_views.dataset_detail, name="dataset"
    ),
    path(
        "<int:project_id>/datasets/<int:dataset_id>/settings/",
        dataset_views.dataset_settings,
        name="dataset_settings",
    ),
    path(
        "<int:project_id>/datasets/<int:dataset_id>/preview/",
        dataset_views.dataset_preview,
        name="dataset_preview",
    ),
    path(
        "<int:project_id>/datasets/<int:dataset_id>/delete/",
        dataset_views.dataset_delete,
        name="dataset_delete",
    ),
    path(
        "<int:project_id>/datasets/<int:dataset_id>/stats/",
        dataset_views.dataset_stats,
        name="dataset_stats",
    ),
    path(
        "<int:project_id>/datasets/<int:dataset_id>/stats/compute/",
        dataset_views.dataset_stats_compute,
        name="dataset_stats_compute",
    ),
    path(
        "<int:project_id>/datasets/<int:dataset_id>/split/",
        dataset_views.dataset_split,
        name="dataset_split",
    ),
    path(
        "<int:project_id>/datasets/<int:dataset_id>/replace/",
        dataset_views.dataset_replace,
        name="dataset_replace",
    ),
    path(
        "<int:project_id>/datasets/<int:dataset_id>/details/",
        dataset_views.dataset_details,
        name="dataset_details",
    ),
]
