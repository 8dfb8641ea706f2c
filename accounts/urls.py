from django.urls import path

from accounts import views

app_name = "lab_account"
urlpatterns = [
    path("", views.account, name="account"),
    path("delete/", views.account_delete, name="delete"),
]
