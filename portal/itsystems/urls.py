from django.urls import path

from portal.itsystems import views

app_name = "itsystems"
urlpatterns = [
    path("", views.it_system_list, name="list"),
    path("new/", views.it_system_create, name="create"),
    path("<int:pk>/", views.it_system_detail, name="detail"),
    path("<int:pk>/edit/", views.it_system_edit, name="edit"),
]
