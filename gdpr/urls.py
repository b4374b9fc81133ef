from django.urls import path

from gdpr import views

app_name = "gdpr"
urlpatterns = [
    path("", views.request_list, name="requests"),
    path("new/", views.request_create, name="request_create"),
    path("<int:pk>/", views.request_detail, name="request"),
    path("<int:pk>/assign/", views.request_assign, name="request_assign"),
    path("<int:pk>/withdraw/", views.request_withdraw, name="request_withdraw"),
    path("<int:pk>/created/", views.request_mark_created, name="request_created"),
    path("<int:pk>/declaration/", views.declaration_open_draft, name="declaration_open"),
    path("declarations/<int:pk>/", views.declaration_detail, name="declaration"),
    path("declarations/<int:pk>/edit/", views.declaration_edit, name="declaration_edit"),
    path("declarations/<int:pk>/pdf/", views.declaration_pdf, name="declaration_pdf"),
]
