from django.urls import path

from handoff import views

# Under /it-systems/: the pages belong to one IT system.
app_name = "handoff"
urlpatterns = [
    path("<int:pk>/api-tokens/", views.token_list, name="tokens"),
    path("<int:pk>/api-tokens/<int:token_pk>/revoke/", views.token_revoke, name="token_revoke"),
    path("<int:pk>/folders/", views.folder_list, name="folders"),
    path("<int:pk>/folders/watched/", views.watched_folder_edit, name="watched_new"),
    path(
        "<int:pk>/folders/watched/<int:folder_pk>/",
        views.watched_folder_edit,
        name="watched_edit",
    ),
    path(
        "<int:pk>/folders/watched/<int:folder_pk>/remove/",
        views.watched_folder_remove,
        name="watched_remove",
    ),
    path("<int:pk>/folders/delivery/", views.delivery_folder_save, name="delivery_save"),
    path(
        "<int:pk>/folders/delivery/remove/",
        views.delivery_folder_remove,
        name="delivery_remove",
    ),
]
