from django.urls import path

from designer import views

app_name = "designer"
urlpatterns = [
    path("<int:project_id>/designs/", views.design_list, name="list"),
    path("<int:project_id>/designs/import/", views.design_import, name="import"),
    path("<int:project_id>/designs/<int:design_id>/", views.design_edit, name="edit"),
    path(
        "<int:project_id>/designs/<int:design_id>/preview/",
        views.design_preview,
        name="preview",
    ),
    path(
        "<int:project_id>/designs/<int:design_id>/pretrain/",
        views.design_pretrain,
        name="pretrain",
    ),
    path(
        "<int:project_id>/designs/<int:design_id>/design.yaml",
        views.design_export,
        name="export",
    ),
    path("<int:project_id>/tokenizers/", views.tokenizer_list, name="tokenizers"),
    path(
        "<int:project_id>/tokenizers/<int:tokenizer_id>/",
        views.tokenizer_detail,
        name="tokenizer",
    ),
]
