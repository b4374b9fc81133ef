from django.urls import path

from portal.accounts import invitation_views

app_name = "invitations"
urlpatterns = [
    # The token is the invitation's only key; the table keeps its SHA-256 alone.
    path("<str:token>/", invitation_views.accept, name="accept"),
]
