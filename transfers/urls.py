from django.urls import path

from transfers import views

app_name = "transfers"
urlpatterns = [
    path("", views.transfer_list, name="list"),
    path("rows/", views.transfer_rows, name="rows"),
    path("export/", views.transfer_export, name="export"),
    path("send/", views.send, name="send"),
    path("<int:pk>/", views.transfer_detail, name="detail"),
    path("<int:pk>/progress/", views.transfer_progress, name="progress"),
    path("<int:pk>/download/", views.transfer_download, name="download"),
    path(
        "<int:pk>/unreadable-receipt/",
        views.transfer_unreadable_receipt,
        name="unreadable_receipt",
    ),
    path("<int:pk>/resubmit/", views.transfer_resubmit, name="resubmit"),
    path("<int:pk>/cancel/", views.transfer_cancel, name="cancel"),
    path("received/", views.received_list, name="received"),
    path("received/<int:pk>/download/", views.received_download, name="received_download"),
    path("routes/", views.route_list, name="routes"),
    path("routes/new/", views.route_create, name="route_create"),
    path("routes/<int:pk>/state/", views.route_state, name="route_state"),
    path("accounts/", views.account_list, name="accounts"),
    path("accounts/new/", views.account_create, name="account_create"),
    path("accounts/<int:pk>/", views.account_detail, name="account"),
    path("accounts/<int:pk>/generate-key/", views.account_generate_key, name="account_generate"),
    path("accounts/<int:pk>/import-key/", views.account_import_key, name="account_import"),
    path("accounts/<int:pk>/host-key/", views.account_probe_host_key, name="account_probe"),
    path(
        "accounts/<int:pk>/host-key/confirm/",
        views.account_confirm_host_key,
        name="account_confirm",
    ),
]
