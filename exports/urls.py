from django.urls import path

from exports import views

app_name = "exports"
urlpatterns = [
    path("runs/<int:run_id>/exports/", views.export_list, name="list"),
    path("runs/<int:run_id>/exports/new/", views.export_create, name="create"),
    path("runs/<int:run_id>/exports/adapter/", views.export_adapter, name="adapter"),
    path("exports/<int:export_id>/delete/", views.export_delete, name="delete"),
    path("exports/<int:export_id>/download/", views.export_download, name="download"),
    path("exports/<int:export_id>/gguf/", views.export_gguf_file, name="gguf"),
    path("exports/<int:export_id>/push/", views.export_push, name="push"),
    path("hub-token/", views.hub_token, name="hub_token"),
    path("hub-token/delete/", views.hub_token_delete, name="hub_token_delete"),
]
