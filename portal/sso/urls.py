from django.urls import path

from portal.sso import views

app_name = "sso"
urlpatterns = [
    path("metadata/", views.metadata, name="metadata"),
    path("login/", views.start, name="login"),
    path("acs/", views.acs, name="acs"),
]
