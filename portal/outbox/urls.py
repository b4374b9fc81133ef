from django.urls import path

from portal.outbox import views

app_name = "outbox"
urlpatterns = [
    path("", views.mail_list, name="list"),
    path("<int:pk>/", views.mail_detail, name="detail"),
    path("<int:pk>/message.eml", views.mail_eml, name="eml"),
    path("<int:pk>/attachments/<int:attachment_pk>/", views.mail_attachment, name="attachment"),
    path("<int:pk>/resend/", views.mail_resend, name="resend"),
]
