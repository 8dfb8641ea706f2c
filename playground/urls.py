from django.urls import path

from playground import chat_views, views

app_name = "playground"
urlpatterns = [
    path("", chat_views.playground, name="playground"),
    path("<int:conversation_id>/", chat_views.conversation, name="conversation"),
    path("<int:conversation_id>/send/", chat_views.send, name="send"),
    path("<int:conversation_id>/stop/", chat_views.stop, name="stop"),
    path("<int:conversation_id>/rename/", chat_views.rename, name="rename"),
    path("<int:conversation_id>/delete/", chat_views.delete, name="delete"),
    path("keys/", views.keys, name="keys"),
    path("keys/<int:key_id>/revoke/", views.key_revoke, name="key_revoke"),
]
