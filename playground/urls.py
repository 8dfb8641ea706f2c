from django.urls import path

from playground import views

app_name = "playground"
urlpatterns = [
    path("keys/", views.keys, name="keys"),
    path("keys/<int:key_id>/revoke/", views.key_revoke, name="key_revoke"),
]
