from django.urls import path

from portal.specs import views

app_name = "specs"
urlpatterns = [
    path("", views.specification_list, name="list"),
    path("integrations/<int:integration_pk>/", views.specification_detail, name="specification"),
    path("integrations/<int:integration_pk>/new/", views.version_create, name="version_create"),
    path("integrations/<int:integration_pk>/diff/", views.version_diff, name="diff"),
    path("versions/<int:pk>/", views.version_detail, name="version"),
    path("versions/<int:pk>/documents/", views.document_upload, name="document_upload"),
    path("versions/<int:pk>/pdf/", views.version_pdf, name="version_pdf"),
    path("documents/<int:pk>/", views.document_download, name="document"),
]
